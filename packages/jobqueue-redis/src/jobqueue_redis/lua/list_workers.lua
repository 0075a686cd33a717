-- Returns {id, last_seen, expires_at, {job_id...}, ...} for registered workers and lapsed ones
-- that hold jobs; lapsed registrations without jobs are removed.
local now = now_ms()
local seen = {}
local out = {}
local function add(worker, expires)
  local jobs = redis.call('SMEMBERS', P_PROCESSING .. worker)
  if #jobs == 0 then
    redis.call('SREM', S_HOLDERS, worker)
  end
  if expires <= now and #jobs == 0 then
    redis.call('ZREM', Z_WORKERS, worker)
    redis.call('HDEL', H_HEARTBEATS, worker)
    return
  end
  out[#out + 1] = worker
  out[#out + 1] = tonumber(redis.call('HGET', H_HEARTBEATS, worker) or '0')
  out[#out + 1] = expires
  out[#out + 1] = jobs
end
local registered = redis.call('ZRANGE', Z_WORKERS, 0, -1, 'WITHSCORES')
for i = 1, #registered, 2 do
  seen[registered[i]] = true
  add(registered[i], tonumber(registered[i + 1]))
end
for _, worker in ipairs(redis.call('SMEMBERS', S_HOLDERS)) do
  if not seen[worker] then
    add(worker, 0)
  end
end
return out
