-- ARGV: lock name, owner, ttl_ms. Takes the lock, or renews it when `owner` holds it.
local key = P_LOCK .. ARGV[1]
if redis.call('SET', key, ARGV[2], 'NX', 'PX', ARGV[3]) then
  return 1
end
if redis.call('GET', key) == ARGV[2] then
  redis.call('PEXPIRE', key, ARGV[3])
  return 1
end
return 0
