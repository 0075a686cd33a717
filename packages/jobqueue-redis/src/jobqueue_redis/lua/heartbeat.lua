-- Registers the worker (when ttl_ms is given), then mirrors rules.renew for each of its jobs:
-- a lease only moves forward. Lapsed registrations are pruned here, and the registry expires
-- natively with its longest-lived worker, so nothing needs list_workers to clean up.
-- ARGV: worker, ttl_ms ('' : registration untouched), lease_ms, announce ('1': publish the
-- worker events; '': a partition other than the first, so a worker joins once), info (opaque,
-- '' : none), job id...
-- Returns {id, reason, ...} for the jobs the worker must stop (reason: lost | aborted).
local worker, ttl, lease = ARGV[N_CH + 1], tonumber(ARGV[N_CH + 2]), tonumber(ARGV[N_CH + 3])
local announce, info = ARGV[N_CH + 4] == '1', ARGV[N_CH + 5]
local now = now_ms()
if ttl then
  local before = tonumber(redis.call('ZSCORE', K_WORKERS, worker))
  redis.call('ZADD', K_WORKERS, later(now, ttl), worker)
  redis.call('HSET', K_HEARTBEATS, worker, now)
  if info == '' then
    redis.call('HDEL', K_WORKERINFO, worker)
  else
    redis.call('HSET', K_WORKERINFO, worker, info)
  end
  expire_registry(now)
  -- mirrors rules.register_worker: worker_joined unless the registration was live
  if announce and not (before and before > now) then
    publish('worker_joined', '', now, worker, nil)
  end
end
local out = {}
if #ARGV == N_CH + 5 then
  return out
end
local ids = {}
for i = N_CH + 6, #ARGV do
  ids[#ids + 1] = ARGV[i]
end
local packed = redis.call('HMGET', K_LIVE, unpack(ids))
local entries, leases = {}, {}
for i, id in ipairs(ids) do
  local rec = unpack_record(packed[i])
  if not owned(rec, worker) then
    out[#out + 1] = id
    out[#out + 1] = 'lost'
  else
    local until_ = later(now, lease)
    if not rec.l or until_ > rec.l then
      rec.l = until_
      entries[#entries + 1] = {id, rec}
      leases[#leases + 1] = until_
      leases[#leases + 1] = id
    end
    if rec.x then
      out[#out + 1] = id
      out[#out + 1] = 'aborted'
    end
  end
end
store(entries)
if #leases > 0 then
  redis.call('ZADD', K_LEASES, unpack(leases))
end
return out
