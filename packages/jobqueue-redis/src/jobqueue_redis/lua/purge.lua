-- KEYS[N_FIXED + i]: the finished-record key of job i. ARGV: state (completed|failed), id...
-- Deletes those jobs when still finished in that state; every given id leaves the index.
-- Returns how many live records were deleted.
local state = ARGV[N_CH + 1]
local index = state == 'completed' and K_COMPLETED or K_FAILED
local now = now_ms()
local ids = {}
for i = N_CH + 2, #ARGV do
  ids[#ids + 1] = ARGV[i]
end
local live = redis.call('HMGET', K_LIVE, unpack(ids))
local done = redis.call('MGET', unpack(KEYS, N_FIXED + 1))
local deleted, unlisted = 0, {}
for i, id in ipairs(ids) do
  if not live[i] then -- an id enqueued again is no finished job any more
    local rec = unpack_record(done[i])
    if rec and rec.st == state then
      if is_live(rec, now) then
        deleted = deleted + 1
      end
      redis.call('DEL', KEYS[N_FIXED + i])
    end
    unlisted[#unlisted + 1] = id
  end
end
redis.call('ZREM', index, unpack(ids))
if #unlisted > 0 then
  redis.call('ZREM', K_JOBS, unpack(unlisted))
end
return deleted
