-- mirrors rules.update_ttl. KEYS[N_FIXED + 1]: the finished-record key. ARGV: id, ttl_ms.
-- Returns 'updated', 'not_found' or 'not_terminal'.
local id, ttl = ARGV[N_CH + 1], tonumber(ARGV[N_CH + 2])
if redis.call('HEXISTS', K_LIVE, id) == 1 then
  return 'not_terminal'
end
local now = now_ms()
local packed = redis.call('GET', KEYS[N_FIXED + 1])
local rec = unpack_record(packed)
if not is_live(rec, now) then
  return 'not_found'
end
rec.exp = later(now, ttl)
redis.call('SET', KEYS[N_FIXED + 1], cmsgpack.pack(rec), 'PXAT', rec.exp)
local index = rec.st == 'completed' and K_COMPLETED or K_FAILED
redis.call('ZADD', index, rec.exp, id)
outlive(index, rec.exp)
redis.call('PEXPIREAT', K_JOBS, rec.exp, 'GT') -- a job index with no live job outlives this record
return 'updated'
