-- ARGV: job_id. Flags a processing job (renew_leases reports it) or cancels one not started.
local id = ARGV[1]
local key = job_key(id)
local fields = redis.call('HMGET', key, 'state', 'worker')
local state = fields[1]
if not state then
  return false
end
if state == 'processing' then
  redis.call('HSET', key, 'abort', 1)
  publish('abort', id, now_ms(), fields[2], nil)
  return state
end
if state == 'completed' or state == 'failed' then
  return state
end
return cancel(id)
