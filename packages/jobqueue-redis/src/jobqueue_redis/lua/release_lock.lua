-- ARGV: lock name, owner. Releases the lock only when `owner` holds it.
local key = P_LOCK .. ARGV[1]
if redis.call('GET', key) == ARGV[2] then
  redis.call('DEL', key)
  return 1
end
return 0
