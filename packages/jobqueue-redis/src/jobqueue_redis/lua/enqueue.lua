-- ARGV: job_id, message, delay_ms. Returns 1 (stored) or the existing record (HGETALL).
local id, message, delay = ARGV[1], ARGV[2], tonumber(ARGV[3])
local now = now_ms()
promote(now)
local key = job_key(id)
local existing = redis.call('HGETALL', key)
if #existing > 0 then
  return existing
end
if redis.call('ZSCORE', Z_JOBS, id) then
  -- index entries left by an expired record with this id
  redis.call('ZREM', Z_COMPLETED, id)
  redis.call('ZREM', Z_FAILED, id)
end
redis.call('HSET', key, 'state', 'queued', 'message', message, 'created', now, 'updated', now, 'attempts', 0)
redis.call('ZADD', Z_JOBS, now, id)
if delay > 0 then
  redis.call('HSET', key, 'run_at', now + delay)
  redis.call('ZADD', Z_SCHEDULED, now + delay, id)
else
  redis.call('RPUSH', Q_READY, id)
end
publish('enqueued', id, now, nil, nil)
return 1
