-- mirrors rules.finish for a batch of one worker's outcomes; rules.owned decides each.
-- KEYS[N_FIXED + i]: the finished-record key of outcome i's job.
-- ARGV: worker, then id, kind (complete|fail|retry|release), data, ms per outcome.
-- Returns one 1 (stored) or 0 (not the worker's job) per outcome.
local worker = ARGV[N_CH + 1]
local now = now_ms()
local n = #KEYS - N_FIXED
local ids = {}
for i = 1, n do
  ids[i] = ARGV[N_CH + 4 * i - 2]
end
local packed = redis.call('HMGET', K_LIVE, unpack(ids))
local recs = {} -- id -> the record as this batch left it (false: finished)
local out, ended, retries, heads = {}, {}, {}, {}
local indexes = {completed = {K_COMPLETED, {}, 0}, failed = {K_FAILED, {}, 0}}
for i = 1, n do
  local id, kind = ids[i], ARGV[N_CH + 4 * i - 1]
  local data, ms = ARGV[N_CH + 4 * i], tonumber(ARGV[N_CH + 4 * i + 1])
  local rec = recs[id]
  if rec == nil then
    rec = unpack_record(packed[i])
  end
  if rec and owned(rec, worker) then
    rec.w, rec.l, rec.x, rec.u = nil, nil, nil, now
    if kind == 'complete' or kind == 'fail' then
      local state = kind == 'complete' and 'completed' or 'failed'
      rec.st, rec.exp = state, later(now, ms)
      if kind == 'complete' then
        rec.res = data
      else
        rec.e = data
      end
      redis.call('SET', KEYS[N_FIXED + i], cmsgpack.pack(rec), 'PXAT', rec.exp)
      local index = indexes[state]
      index[2][#index[2] + 1] = rec.exp
      index[2][#index[2] + 1] = id
      index[3] = math.max(index[3], rec.exp)
      recs[id] = false
      publish(state, id, now, worker, #data <= INLINE_LIMIT and data or nil)
    elseif kind == 'retry' then
      rec.st, rec.e, rec.r = 'failing', data, later(now, ms)
      retries[#retries + 1] = rec.r
      retries[#retries + 1] = id
      recs[id] = rec
      publish('failing', id, now, worker, nil)
    else
      rec.st, rec.a = 'queued', math.max(rec.a - 1, 0)
      heads[#heads + 1] = {id, rec}
      recs[id] = rec
      publish('requeued', id, now, worker, nil)
    end
    ended[#ended + 1] = id
    out[i] = 1
  else
    out[i] = 0
  end
end
if #ended == 0 then
  return out
end
redis.call('ZREM', K_LEASES, unpack(ended))
local gone, kept = {}, {}
for id, rec in pairs(recs) do
  if rec then
    kept[#kept + 1] = {id, rec}
  else
    gone[#gone + 1] = id
  end
end
store(kept)
if #retries > 0 then
  redis.call('ZADD', K_RETRIES, unpack(retries))
end
local fronts = {}
for _, head in ipairs(heads) do
  place_head(head[1], head[2].p, fronts) -- in order: the last released ends up in front
end
if #retries > 0 or #heads > 0 then
  wake()
end
if #gone > 0 then
  redis.call('HDEL', K_LIVE, unpack(gone))
  for _, index in pairs(indexes) do
    if #index[2] > 0 then
      redis.call('ZADD', index[1], unpack(index[2]))
      outlive(index[1], index[3])
      prune(index[1], now, 100)
    end
  end
  settle()
end
return out
