-- Returns {id, last_seen, expires_at, {job_id...}, info, ...}: live registrations, and lapsed
-- workers that still hold jobs (last_seen and expires_at 0, info '' once their registration is
-- gone). Lapsed registrations without jobs are removed.
local now = now_ms()
local holding = {}
local leased = redis.call('ZRANGE', K_LEASES, 0, -1)
for start = 1, #leased, 1000 do
  local chunk = {unpack(leased, start, math.min(start + 999, #leased))}
  local packed = redis.call('HMGET', K_LIVE, unpack(chunk))
  for i, id in ipairs(chunk) do
    local rec = unpack_record(packed[i])
    if rec and rec.st == 'processing' then
      holding[rec.w] = holding[rec.w] or {}
      table.insert(holding[rec.w], id)
    end
  end
end
local seen = {}
local beats = {}
local flat = redis.call('HGETALL', K_HEARTBEATS)
for i = 1, #flat, 2 do
  beats[flat[i]] = tonumber(flat[i + 1])
end
local infos = {}
flat = redis.call('HGETALL', K_WORKERINFO)
for i = 1, #flat, 2 do
  infos[flat[i]] = flat[i + 1]
end
local out = {}
local registered = redis.call('ZRANGE', K_WORKERS, 0, -1, 'WITHSCORES')
for i = 1, #registered, 2 do
  local worker, expires = registered[i], tonumber(registered[i + 1])
  seen[worker] = true
  if expires > now or holding[worker] then
    out[#out + 1] = worker
    out[#out + 1] = beats[worker] or 0
    out[#out + 1] = expires
    out[#out + 1] = holding[worker] or {}
    out[#out + 1] = infos[worker] or ''
  else
    redis.call('ZREM', K_WORKERS, worker)
    redis.call('HDEL', K_HEARTBEATS, worker)
    redis.call('HDEL', K_WORKERINFO, worker)
  end
end
for worker, jobs in pairs(holding) do
  if not seen[worker] then
    out[#out + 1] = worker
    out[#out + 1] = beats[worker] or 0
    out[#out + 1] = 0
    out[#out + 1] = jobs
    out[#out + 1] = infos[worker] or ''
  end
end
return out
