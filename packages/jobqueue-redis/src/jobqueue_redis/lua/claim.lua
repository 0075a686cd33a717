-- mirrors rules.promote, then rules.claim for up to `limit` ready jobs in rules.claim_order.
-- ARGV: worker, lease_ms, limit, woken ('1': the caller just popped the wake marker).
-- Returns {next_due_ms, id, message, attempt, ...}; next_due_ms is -1 unless a job is scheduled
-- and the claim emptied `ready` (it took fewer than `limit`, or nothing). Afterwards the marker
-- exists while jobs are ready, so a caller whose claim emptied `ready` may block on the marker
-- without claiming first (RedisStorage._claim).
local worker, lease = ARGV[N_CH + 1], tonumber(ARGV[N_CH + 2])
local limit, woken = tonumber(ARGV[N_CH + 3]), ARGV[N_CH + 4] == '1'
local now = now_ms()
local promoted = promote(now)
local out = {-1}
local entries, leases = {}, {}
local drained = false
while #entries < limit and not drained do
  local want = limit - #entries
  local popped = redis.call('ZPOPMIN', K_READY, want)
  drained = #popped < 2 * want
  if #popped > 0 then
    local ids = {}
    for i = 1, #popped, 2 do
      ids[#ids + 1] = popped[i]
    end
    local packed = redis.call('HMGET', K_LIVE, unpack(ids))
    for i, id in ipairs(ids) do
      local rec = unpack_record(packed[i])
      -- a ready entry always has a queued record (cancel removes both at once); else it is dropped
      if rec and rec.st == 'queued' and not rec.r then
        rec.st, rec.w, rec.a, rec.l, rec.r, rec.x, rec.u = 'processing', worker, (tonumber(rec.a) or 0) + 1, later(now, lease), nil, nil, now
        entries[#entries + 1] = {id, rec}
        leases[#leases + 1] = rec.l
        leases[#leases + 1] = id
        publish('processing', id, now, worker, nil)
        out[#out + 1] = id
        out[#out + 1] = rec.m
        out[#out + 1] = rec.a
      end
    end
  end
end
if #entries > 0 then
  store(entries)
  redis.call('ZADD', K_LEASES, unpack(leases))
end
if drained then
  redis.call('DEL', K_MARKER)
elseif woken or promoted > 0 then
  wake() -- more jobs are ready (passed on, or promoted): the next blocked worker wakes
end
if #entries == 0 or drained then
  out[1] = next_due(now)
end
return out
