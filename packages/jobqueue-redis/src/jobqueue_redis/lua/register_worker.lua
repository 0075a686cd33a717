-- ARGV: worker, ttl_ms.
local now = now_ms()
redis.call('ZADD', Z_WORKERS, now + tonumber(ARGV[2]), ARGV[1])
redis.call('HSET', H_HEARTBEATS, ARGV[1], now)
return 1
