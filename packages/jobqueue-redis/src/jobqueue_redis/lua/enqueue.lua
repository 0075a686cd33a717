-- mirrors rules.new_record, with the dedup of rules.is_live, for a batch of jobs.
-- KEYS[N_FIXED + i]: the finished-record key of job i. ARGV[N_CH + 1]: one msgpack array,
-- id, message, delay_ms, priority per job (one argument per batch: the client packs one value
-- instead of four per job). Returns one reply per job: 1 (stored) or the packed record of the
-- live job with that id.
--
-- Every job with a live record (or a finished one not yet expired) is in the job index, so
-- when ZADD NX adds every id of the batch, none is known: no record needs reading (the
-- usual case). Otherwise each id is looked up in the live hash and its finished-record key.
local now = now_ms()
local n = #KEYS - N_FIXED
local batch = cmsgpack.unpack(ARGV[N_CH + 1])
local ids, index = {}, {}
for i = 1, n do
  ids[i] = batch[4 * i - 3]
  index[#index + 1] = now
  index[#index + 1] = ids[i]
end
local fresh = redis.call('ZADD', K_JOBS, 'NX', unpack(index)) == n
local live, done = {}, {}
if not fresh then
  live = redis.call('HMGET', K_LIVE, unpack(ids))
  done = redis.call('MGET', unpack(KEYS, N_FIXED + 1))
end
local stored = {} -- id -> packed record accepted earlier in this batch
local out, entries, tail, scheduled, reused, hash = {}, {}, {}, {}, {}, {}
for i = 1, n do
  local id, message = ids[i], batch[4 * i - 2]
  local delay, priority = batch[4 * i - 1], batch[4 * i]
  local existing = stored[id] or live[i]
  if not existing and done[i] and is_live(unpack_record(done[i]), now) then
    existing = done[i]
  end
  if existing then
    out[i] = existing
  else
    local rec = {st = 'queued', m = message, c = now, u = now, a = 0, p = priority}
    if delay > 0 then
      rec.r = later(now, delay)
      scheduled[#scheduled + 1] = rec.r
      scheduled[#scheduled + 1] = id
    else
      tail[#tail + 1] = {id, rec}
    end
    entries[#entries + 1] = {id, rec}
    stored[id] = cmsgpack.pack(rec)
    hash[#hash + 1] = id
    hash[#hash + 1] = stored[id]
    reused[#reused + 1] = now
    reused[#reused + 1] = id
    out[i] = 1
  end
end
if #entries > 0 then
  redis.call('HSET', K_LIVE, unpack(hash)) -- store(entries), without packing each record again
  local first = place_tail(tail)
  if #scheduled > 0 then
    redis.call('ZADD', K_SCHEDULED, unpack(scheduled))
  end
  if not fresh then
    -- an id seen before: its creation time is now, and what its expired record left in the
    -- finished indexes goes
    redis.call('ZADD', K_JOBS, unpack(reused))
    local gone = {}
    for i = 2, #reused, 2 do
      gone[#gone + 1] = reused[i]
    end
    redis.call('ZREM', K_COMPLETED, unpack(gone))
    redis.call('ZREM', K_FAILED, unpack(gone))
  end
  -- settle may have set the job index to expire with the last finished record; it also drops
  -- the FIFO sequence, so a sequence that did not start afresh proves the index persistent
  if first or #scheduled > 0 or not fresh then
    redis.call('PERSIST', K_JOBS)
  end
  wake()
  for _, entry in ipairs(entries) do
    publish('enqueued', entry[1], now, nil, nil)
  end
end
return out
