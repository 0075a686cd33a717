-- ARGV: state... (completed / failed). Deletes every live job in them; returns how many.
local now = now_ms()
while prune(now, 1000) > 0 do
end
local indexes = {completed = Z_COMPLETED, failed = Z_FAILED}
local total = 0
for _, state in ipairs(ARGV) do
  local index = indexes[state]
  while true do
    local ids = redis.call('ZRANGE', index, 0, 999)
    if #ids == 0 then
      break
    end
    for _, id in ipairs(ids) do
      total = total + redis.call('DEL', job_key(id))
    end
    redis.call('ZREM', Z_JOBS, unpack(ids))
    redis.call('ZREM', index, unpack(ids))
  end
end
return total
