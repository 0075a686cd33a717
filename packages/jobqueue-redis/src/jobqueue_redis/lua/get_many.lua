-- KEYS[N_FIXED + i]: the finished-record key of job i. ARGV: job id...
-- Returns {now, live record or false per id..., finished record or false per id...}; a
-- finished record is live while expires_at > now (rules.is_live), checked by the caller.
local now = now_ms()
local ids = {}
for i = N_CH + 1, #ARGV do
  ids[#ids + 1] = ARGV[i]
end
local out = {now}
local live = redis.call('HMGET', K_LIVE, unpack(ids))
local done = redis.call('MGET', unpack(KEYS, N_FIXED + 1))
for i = 1, #ids do
  out[#out + 1] = live[i]
end
for i = 1, #ids do
  out[#out + 1] = done[i]
end
return out
