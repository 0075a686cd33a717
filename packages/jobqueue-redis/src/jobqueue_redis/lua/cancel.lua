-- mirrors rules.cancel (the table of rules.cancel_action), atomic with respect to claims.
-- KEYS[N_FIXED + 1]: the job's finished-record key. ARGV: id, abort ('1' or '0').
-- Returns the state the job had (nil: no live record).
local id, abort = ARGV[N_CH + 1], ARGV[N_CH + 2] == '1'
local now = now_ms()
local rec = unpack_record(redis.call('HGET', K_LIVE, id))
if rec then
  if rec.st == 'queued' or rec.st == 'failing' then -- CancelAction.DELETE
    local place = K_READY
    if rec.st == 'failing' then
      place = K_RETRIES
    elseif rec.r then
      place = K_SCHEDULED
    end
    redis.call('HDEL', K_LIVE, id)
    redis.call('ZREM', place, id)
    redis.call('ZREM', K_JOBS, id)
    publish('cancelled', id, now, nil, nil)
    settle()
  elseif rec.st == 'processing' and abort then -- CancelAction.FLAG
    rec.x = 1
    store({{id, rec}})
    publish('abort', id, now, rec.w, nil)
  end
  return rec.st
end
rec = unpack_record(redis.call('GET', KEYS[N_FIXED + 1]))
if not is_live(rec, now) then
  return false
end
if rec.st == 'failed' and not abort then -- CancelAction.CLEAR
  redis.call('DEL', KEYS[N_FIXED + 1])
  redis.call('ZREM', K_FAILED, id)
  redis.call('ZREM', K_JOBS, id)
end
return rec.st
