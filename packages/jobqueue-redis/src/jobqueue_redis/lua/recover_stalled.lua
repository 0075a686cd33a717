-- mirrors rules.is_stalled and rules.recover for every job whose lease ran out, oldest lease
-- first (each goes to the head of its band, in that order), then sweeps expired entries from
-- the finished-job indexes. Returns {next_expiry_ms (-1: nothing processing), id, worker, ...}.
local now = now_ms()
local out = {-1}
local expired = redis.call('ZRANGEBYSCORE', K_LEASES, '-inf', now, 'LIMIT', 0, 1000)
if #expired > 0 then
  redis.call('ZREM', K_LEASES, unpack(expired))
  local packed = redis.call('HMGET', K_LIVE, unpack(expired))
  local entries, fronts, renewed = {}, {}, {}
  for i, id in ipairs(expired) do
    local rec = unpack_record(packed[i])
    if rec and rec.st == 'processing' then
      if rec.l and rec.l > now then -- renewed meanwhile: the index is only a hint
        renewed[#renewed + 1] = rec.l
        renewed[#renewed + 1] = id
      else
        local worker = rec.w
        rec.st, rec.w, rec.l, rec.x, rec.u = 'queued', nil, nil, nil, now
        entries[#entries + 1] = {id, rec}
        place_head(id, rec.p, fronts)
        publish('stalled', id, now, worker, nil)
        publish('requeued', id, now, worker, nil)
        out[#out + 1] = id
        out[#out + 1] = worker
      end
    end
  end
  store(entries)
  if #renewed > 0 then
    redis.call('ZADD', K_LEASES, unpack(renewed))
  end
  if #entries > 0 then
    wake()
  end
end
prune(K_COMPLETED, now, 1000)
prune(K_FAILED, now, 1000)
local first = redis.call('ZRANGE', K_LEASES, 0, 0, 'WITHSCORES')
if first[2] then
  out[1] = math.max(tonumber(first[2]) - now, 0)
end
return out
