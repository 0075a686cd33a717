-- ARGV: worker, announce ('1': publish worker_left; '': a partition other than the first).
-- Its jobs keep their leases (list_workers still shows it while it holds any); the registry's
-- expiry follows the workers that remain.
local worker, announce = ARGV[N_CH + 1], ARGV[N_CH + 2] == '1'
local now = now_ms()
local before = tonumber(redis.call('ZSCORE', K_WORKERS, worker))
redis.call('ZREM', K_WORKERS, worker)
redis.call('HDEL', K_HEARTBEATS, worker)
redis.call('HDEL', K_WORKERINFO, worker)
expire_registry(now)
-- mirrors rules.unregister_worker: worker_left when the registration was live
if announce and before and before > now then
  publish('worker_left', '', now, worker, nil)
end
return 1
