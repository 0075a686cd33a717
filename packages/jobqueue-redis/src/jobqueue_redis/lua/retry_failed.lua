-- mirrors rules.reset_failed. KEYS[N_FIXED + 1]: the finished-record key. ARGV: id.
-- Returns 1 (queued again) or 0 (not a failed job).
local id = ARGV[N_CH + 1]
local now = now_ms()
local rec = unpack_record(redis.call('GET', KEYS[N_FIXED + 1]))
if not is_live(rec, now) or rec.st ~= 'failed' or redis.call('HEXISTS', K_LIVE, id) == 1 then
  return 0
end
redis.call('DEL', KEYS[N_FIXED + 1])
redis.call('ZREM', K_FAILED, id)
rec.st, rec.a, rec.e, rec.exp, rec.r, rec.u = 'queued', 0, nil, nil, nil, now
store({{id, rec}})
place_tail({{id, rec}})
redis.call('ZADD', K_JOBS, rec.c, id)
redis.call('PERSIST', K_JOBS)
wake()
publish('enqueued', id, now, nil, nil)
return 1
