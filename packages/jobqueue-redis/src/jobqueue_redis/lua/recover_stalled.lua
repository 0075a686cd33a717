-- Puts every job whose lease expired back at the head of the queue, the first to stall first.
-- Returns {id, worker, id, worker, ...}. Also returns to the queue what landed in the landing
-- list of a worker that did not claim it in time (it died between BLMOVE and its claim).
local now = now_ms()
local expired = redis.call('ZRANGEBYSCORE', Z_LEASES, '-inf', now, 'LIMIT', 0, 1000)
local workers = {}
for i = #expired, 1, -1 do
  local id = expired[i]
  local key = job_key(id)
  local fields = redis.call('HMGET', key, 'state', 'worker')
  if fields[1] == 'processing' then
    redis.call('HSET', key, 'state', 'queued', 'updated', now)
    redis.call('HDEL', key, 'worker', 'lease_until', 'abort')
    unhold(id, fields[2])
    redis.call('LPUSH', Q_READY, id)
    workers[i] = fields[2]
  else
    redis.call('ZREM', Z_LEASES, id)
  end
end
local out = {}
for i = 1, #expired do
  if workers[i] then
    publish('stalled', expired[i], now, workers[i], nil)
    publish('requeued', expired[i], now, workers[i], nil)
    out[#out + 1] = expired[i]
    out[#out + 1] = workers[i]
  end
end
local late = redis.call('ZRANGEBYSCORE', Z_LANDINGS, '-inf', '(' .. now)
for _, worker in ipairs(late) do
  while redis.call('LMOVE', P_LANDING .. worker, Q_READY, 'RIGHT', 'LEFT') do
  end
  redis.call('ZREM', Z_LANDINGS, worker)
end
return out
