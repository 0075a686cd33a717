-- ARGV: job_id, worker, error, delay_ms. Stores the error and schedules the retry.
local id, worker, err, delay = ARGV[1], ARGV[2], ARGV[3], tonumber(ARGV[4])
if not owned(id, worker) then
  return 0
end
local now = now_ms()
local key = job_key(id)
local run_at = now + math.max(delay, 0)
redis.call('HSET', key, 'state', 'failing', 'error', err, 'updated', now, 'run_at', run_at)
redis.call('HDEL', key, 'worker', 'lease_until', 'abort')
unhold(id, worker)
redis.call('ZADD', Z_RETRIES, run_at, id)
publish('failing', id, now, worker, nil)
return 1
