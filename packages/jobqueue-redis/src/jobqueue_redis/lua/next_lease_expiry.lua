-- Milliseconds until the earliest lease expires (nil: no lease).
local first = redis.call('ZRANGE', Z_LEASES, 0, 0, 'WITHSCORES')
if not first[2] then
  return false
end
return tonumber(first[2]) - now_ms()
