-- ARGV: job_id... Returns one HGETALL reply per id (empty: no live record).
local now = now_ms()
promote(now)
local out = {}
for i = 1, #ARGV do
  out[i] = redis.call('HGETALL', job_key(ARGV[i]))
end
return out
