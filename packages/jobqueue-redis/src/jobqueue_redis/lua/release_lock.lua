-- KEYS[N_FIXED + 1]: the lock. ARGV: owner. Releases the lock only when `owner` holds it.
if redis.call('GET', KEYS[N_FIXED + 1]) == ARGV[N_CH + 1] then
  redis.call('DEL', KEYS[N_FIXED + 1])
  return 1
end
return 0
