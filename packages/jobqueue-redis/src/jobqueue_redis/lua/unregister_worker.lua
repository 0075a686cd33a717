-- ARGV: worker. A worker that still holds jobs stays listed as lapsed; its processing set stays.
local worker = ARGV[1]
if redis.call('SCARD', P_PROCESSING .. worker) > 0 then
  local now = now_ms()
  local expires = tonumber(redis.call('ZSCORE', Z_WORKERS, worker) or now)
  redis.call('ZADD', Z_WORKERS, math.min(expires, now), worker)
else
  redis.call('SREM', S_HOLDERS, worker)
  redis.call('ZREM', Z_WORKERS, worker)
  redis.call('HDEL', H_HEARTBEATS, worker)
end
return 1
