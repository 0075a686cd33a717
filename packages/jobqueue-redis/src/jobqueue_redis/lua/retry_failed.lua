-- ARGV: job_id. Queues a failed job again with its attempts reset.
local id = ARGV[1]
local key = job_key(id)
if redis.call('HGET', key, 'state') ~= 'failed' then
  return 0
end
local now = now_ms()
redis.call('HSET', key, 'state', 'queued', 'attempts', 0, 'updated', now)
redis.call('HDEL', key, 'error', 'expires_at', 'worker')
redis.call('PERSIST', key)
redis.call('ZREM', Z_FAILED, id)
redis.call('RPUSH', Q_READY, id)
publish('enqueued', id, now, nil, nil)
return 1
