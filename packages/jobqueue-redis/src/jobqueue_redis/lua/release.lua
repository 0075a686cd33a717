-- ARGV: job_id, worker. Gives a claimed job back to the head of the queue, attempt not counted.
local id, worker = ARGV[1], ARGV[2]
if not owned(id, worker) then
  return 0
end
local now = now_ms()
local key = job_key(id)
local attempts = tonumber(redis.call('HGET', key, 'attempts') or '0')
redis.call('HSET', key, 'state', 'queued', 'attempts', math.max(attempts - 1, 0), 'updated', now)
redis.call('HDEL', key, 'worker', 'lease_until', 'abort')
unhold(id, worker)
redis.call('LPUSH', Q_READY, id)
publish('requeued', id, now, worker, nil)
return 1
