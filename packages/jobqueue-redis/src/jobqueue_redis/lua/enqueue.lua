-- mirrors rules.new_record, with the dedup of rules.is_live, for a batch of jobs.
-- KEYS[N_FIXED + i]: the finished-record key of job i. ARGV: id, message, delay_ms, priority per job.
-- Returns one reply per job: 1 (stored) or the packed record of the live job with that id.
local now = now_ms()
local n = #KEYS - N_FIXED
local ids = {}
for i = 1, n do
  ids[i] = ARGV[N_CH + 4 * i - 3]
end
local live = redis.call('HMGET', K_LIVE, unpack(ids))
local done = redis.call('MGET', unpack(KEYS, N_FIXED + 1))
local stored = {} -- id -> packed record accepted earlier in this batch
local out, entries, tail, scheduled, index = {}, {}, {}, {}, {}
for i = 1, n do
  local id, message = ids[i], ARGV[N_CH + 4 * i - 2]
  local delay, priority = tonumber(ARGV[N_CH + 4 * i - 1]), tonumber(ARGV[N_CH + 4 * i])
  local existing = stored[id] or live[i]
  if not existing and done[i] and is_live(unpack_record(done[i]), now) then
    existing = done[i]
  end
  if existing then
    out[i] = existing
  else
    local rec = {st = 'queued', m = message, c = now, u = now, a = 0, p = priority}
    if delay > 0 then
      rec.r = later(now, delay)
      scheduled[#scheduled + 1] = rec.r
      scheduled[#scheduled + 1] = id
    else
      tail[#tail + 1] = {id, rec}
    end
    entries[#entries + 1] = {id, rec}
    stored[id] = cmsgpack.pack(rec)
    index[#index + 1] = now
    index[#index + 1] = id
    out[i] = 1
  end
end
if #entries > 0 then
  store(entries)
  place_tail(tail)
  if #scheduled > 0 then
    redis.call('ZADD', K_SCHEDULED, unpack(scheduled))
  end
  if redis.call('ZADD', K_JOBS, unpack(index)) < #entries then
    -- an id seen before: drop what its expired record left in the finished indexes
    local reused = {}
    for i = 2, #index, 2 do
      reused[#reused + 1] = index[i]
    end
    redis.call('ZREM', K_COMPLETED, unpack(reused))
    redis.call('ZREM', K_FAILED, unpack(reused))
  end
  redis.call('PERSIST', K_JOBS)
  wake()
  for _, entry in ipairs(entries) do
    publish('enqueued', entry[1], now, nil, nil)
  end
end
return out
