-- ARGV: worker, lease_ms, job_id... Returns the ids the worker must stop.
local worker, lease = ARGV[1], tonumber(ARGV[2])
local now = now_ms()
local stop = {}
for i = 3, #ARGV do
  local id = ARGV[i]
  local key = job_key(id)
  local fields = redis.call('HMGET', key, 'state', 'worker', 'abort')
  if fields[1] == 'processing' and fields[2] == worker then
    redis.call('HSET', key, 'lease_until', now + lease)
    redis.call('ZADD', Z_LEASES, now + lease, id)
    if fields[3] then
      stop[#stop + 1] = id
    end
  else
    stop[#stop + 1] = id
  end
end
return stop
