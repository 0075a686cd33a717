-- KEYS[N_FIXED + 1]: the lock. ARGV: owner, ttl_ms. Takes the lock, or renews it when `owner` holds it.
if redis.call('SET', KEYS[N_FIXED + 1], ARGV[N_CH + 1], 'NX', 'PX', ARGV[N_CH + 2]) then
  return 1
end
if redis.call('GET', KEYS[N_FIXED + 1]) == ARGV[N_CH + 1] then
  redis.call('PEXPIRE', KEYS[N_FIXED + 1], ARGV[N_CH + 2])
  return 1
end
return 0
