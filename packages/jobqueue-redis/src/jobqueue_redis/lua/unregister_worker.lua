-- ARGV: worker. Its jobs keep their leases (list_workers still shows it while it holds any);
-- the registry's expiry follows the workers that remain.
redis.call('ZREM', K_WORKERS, ARGV[N_CH + 1])
redis.call('HDEL', K_HEARTBEATS, ARGV[N_CH + 1])
redis.call('HDEL', K_WORKERINFO, ARGV[N_CH + 1])
expire_registry(now_ms())
return 1
