-- ARGV: worker, lease_ms, limit, landing_ms. Claims what the worker's BLMOVE dropped in its
-- landing list, then fills up to `limit` from the queue. Same reply as dequeue.lua.
local worker, lease, limit, landing = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
local now = now_ms()
promote(now)
local out = {-1}
local landed = P_LANDING .. worker
local claimed = 0
while true do
  local id = redis.call('LPOP', landed)
  if not id then
    break
  end
  if claimed >= limit then
    redis.call('LPUSH', Q_READY, id)
  elseif claim(id, worker, now, lease, out) then
    claimed = claimed + 1
  end
end
claimed = claimed + claim_ready(worker, now, lease, limit - claimed, out)
if claimed > 0 then
  redis.call('SADD', S_HOLDERS, worker)
  redis.call('ZREM', Z_LANDINGS, worker)
  return out
end
if landing > 0 then
  redis.call('ZADD', Z_LANDINGS, now + landing, worker)
else
  redis.call('ZREM', Z_LANDINGS, worker)
end
out[1] = next_due(now)
return out
