-- ARGV: job_id, ttl_ms. Returns 'updated', 'not_found' or 'not_terminal'.
local id, ttl = ARGV[1], tonumber(ARGV[2])
local key = job_key(id)
local state = redis.call('HGET', key, 'state')
if not state then
  return 'not_found'
end
local index
if state == 'completed' then
  index = Z_COMPLETED
elseif state == 'failed' then
  index = Z_FAILED
else
  return 'not_terminal'
end
local expires = now_ms() + ttl
redis.call('HSET', key, 'expires_at', expires)
redis.call('PEXPIREAT', key, expires)
redis.call('ZADD', index, expires, id)
return 'updated'
