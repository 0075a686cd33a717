-- ARGV: worker. Its jobs keep their leases (list_workers still shows it while it holds any).
redis.call('ZREM', K_WORKERS, ARGV[N_CH + 1])
redis.call('HDEL', K_HEARTBEATS, ARGV[N_CH + 1])
return 1
