-- Helpers shared by every script; prepended (after the generated header) when loading.
-- Timestamps come from the server clock so that every process agrees on deadlines.
--
-- Records are msgpack maps (cmsgpack) decoded by jobqueue_redis._records. Short field names:
-- st state, m message, c created_at, u updated_at, a attempts, p priority, w worker_id,
-- res result, e error, r run_at, l lease_until, exp expires_at, x abort_requested, g progress.
-- A job not finished lives in the K_LIVE hash (a fixed key, so scripts that find ids in an
-- index never touch an undeclared key); a finished one is the string key KEYS[N_FIXED + i],
-- expiring natively at exp.

local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

-- Exact decimal text of an integer-valued double (Lua's own tostring keeps 14 digits only).
local function int(n)
  return string.format('%.0f', n)
end

-- mirrors rules.later
local function later(now, ms)
  return math.min(now + math.max(ms, 0), MAX_DEADLINE_MS)
end

-- An unreadable record is skipped by every script (get reports it as corrupt, naming the job):
-- one bad value must not stop the claims of a whole namespace.
local function unpack_record(packed)
  if not packed then
    return nil
  end
  local ok, rec = pcall(cmsgpack.unpack, packed)
  if ok and type(rec) == 'table' and type(rec.st) == 'string' then
    return rec
  end
  return nil
end

-- mirrors rules.is_live for a finished record
local function is_live(rec, now)
  return rec ~= nil and (tonumber(rec.exp) or 0) > now
end

-- mirrors rules.owned
local function owned(rec, worker)
  return rec ~= nil and rec.st == 'processing' and rec.w == worker
end

-- Store records {id, rec} in the live hash, one command.
local function store(entries)
  if #entries == 0 then
    return
  end
  local args = {}
  for _, entry in ipairs(entries) do
    args[#args + 1] = entry[1]
    args[#args + 1] = cmsgpack.pack(entry[2])
  end
  redis.call('HSET', K_LIVE, unpack(args))
end

-- msgpack nil: a Lua table cannot hold nil, so the event array is assembled by hand.
local MSGPACK_NIL = string.char(0xc0)
local MSGPACK_ARRAY_5 = string.char(0x95)

local function pack_or_nil(value)
  if value then
    return cmsgpack.pack(value)
  end
  return MSGPACK_NIL
end

-- Whether a channel has a listener: its flag is looked up once per script run (see _listening).
local heard = {}
local function is_heard(channel)
  local flag = HEARD[channel]
  if not flag then
    return true
  end
  if heard[channel] == nil then
    heard[channel] = redis.call('EXISTS', flag) == 1
  end
  return heard[channel]
end

-- Event: [kind, job_id, at_ms, worker_id|nil, data|nil], decoded by jobqueue.storage.decode_event.
-- Published on each channel of its kind that is heard.
local function publish(kind, id, at, worker, data)
  local message = nil
  for _, channel in ipairs(EVENT_CHANNELS[kind]) do
    if is_heard(channel) then
      message = message or MSGPACK_ARRAY_5 .. cmsgpack.pack(kind) .. cmsgpack.pack(id) .. cmsgpack.pack(at)
        .. pack_or_nil(worker) .. pack_or_nil(data)
      redis.call(PUBLISH, channel, message) -- SPUBLISH on a cluster: the event stays on its shard
    end
  end
end

-- The ready set is ordered like rules.claim_order: score = band * 2^40 + position, where the
-- band is PRIORITY_MAX - priority (higher priority, lower band) and positions grow from 2^39
-- at the tail (K_SEQ) and shrink below the band's front at the head. Exact in a double.
local BAND = 1099511627776
local HALF = 549755813888

local function band_of(priority)
  return (PRIORITY_MAX - priority) * BAND
end

-- Place {id, rec} entries at the tail of their band, in order (rules.Place.TAIL).
-- Returns true when the FIFO sequence started afresh (settle drops it with the last live job).
local function place_tail(entries)
  if #entries == 0 then
    return false
  end
  local last = redis.call('INCRBY', K_SEQ, #entries)
  local args = {}
  for i, entry in ipairs(entries) do
    args[#args + 1] = band_of(entry[2].p) + HALF + last - #entries + i
    args[#args + 1] = entry[1]
  end
  redis.call('ZADD', K_READY, unpack(args))
  return last == #entries
end

-- Place one job before every other of its band (rules.Place.HEAD); `fronts` caches band fronts.
local function place_head(id, priority, fronts)
  local base = band_of(priority)
  local front = fronts[base]
  if not front then
    front = base + HALF
    local first = redis.call('ZRANGEBYSCORE', K_READY, base, '(' .. int(base + BAND), 'WITHSCORES', 'LIMIT', 0, 1)
    if first[2] then
      front = math.min(tonumber(first[2]), front)
    end
  end
  front = front - 1
  fronts[base] = front
  redis.call('ZADD', K_READY, front, id)
end

-- Blocked dequeues wait on the marker (BZPOPMIN); one ZADD wakes one of them.
local function wake()
  redis.call('ZADD', K_MARKER, 0, '0')
end

-- mirrors rules.promote: due scheduled jobs and retries become queued at the tail.
local function promote(now)
  local entries = {}
  for _, schedule in ipairs({K_SCHEDULED, K_RETRIES}) do
    local due = redis.call('ZRANGEBYSCORE', schedule, '-inf', now, 'LIMIT', 0, 1000)
    if #due > 0 then
      redis.call('ZREM', schedule, unpack(due))
      local packed = redis.call('HMGET', K_LIVE, unpack(due))
      for i, id in ipairs(due) do
        local rec = unpack_record(packed[i])
        if rec and (rec.st == 'queued' or rec.st == 'failing') and rec.r then
          rec.st, rec.r, rec.u = 'queued', nil, now
          entries[#entries + 1] = {id, rec}
        end
      end
    end
  end
  store(entries)
  place_tail(entries)
  return #entries
end

-- Milliseconds until the earliest scheduled job or retry is due (-1: none).
local function next_due(now)
  local best = -1
  for _, schedule in ipairs({K_SCHEDULED, K_RETRIES}) do
    local first = redis.call('ZRANGE', schedule, 0, 0, 'WITHSCORES')
    if first[2] then
      local wait = math.max(tonumber(first[2]) - now, 0)
      if best < 0 or wait < best then
        best = wait
      end
    end
  end
  return best
end

-- Finished jobs whose record expired leave the indexes (the record itself expires natively).
-- rules.is_live: a record is gone once expires_at <= now (Redis keeps the key one ms longer).
local function prune(index, now, max)
  local gone = redis.call('ZRANGEBYSCORE', index, '-inf', now, 'LIMIT', 0, max)
  if #gone > 0 then
    redis.call('ZREM', K_JOBS, unpack(gone))
    redis.call('ZREM', index, unpack(gone))
  end
  return #gone
end

-- An index of finished jobs expires natively with its longest-lived member.
local function outlive(index, at)
  if redis.call('PEXPIREAT', index, at, 'GT') == 0 then
    redis.call('PEXPIREAT', index, at, 'NX')
  end
end

-- With no live job left, nothing of the namespace may outlive the finished records: the
-- job index expires with the last of them; the FIFO sequence and the wake marker go now.
local function settle()
  if redis.call('EXISTS', K_LIVE) == 1 then
    return
  end
  redis.call('DEL', K_SEQ, K_MARKER)
  local last = math.max(redis.call('PEXPIRETIME', K_COMPLETED), redis.call('PEXPIRETIME', K_FAILED))
  if last > 0 then
    redis.call('PEXPIREAT', K_JOBS, last)
  else
    redis.call('DEL', K_JOBS)
  end
end

-- Lapsed registrations leave the registry, and the registry expires natively with its
-- longest-lived worker: an entry never outlives its ttl by more than the next heartbeat.
local function expire_registry(now)
  local lapsed = redis.call('ZRANGEBYSCORE', K_WORKERS, '-inf', now, 'LIMIT', 0, 100)
  if #lapsed > 0 then
    redis.call('ZREM', K_WORKERS, unpack(lapsed))
    redis.call('HDEL', K_HEARTBEATS, unpack(lapsed))
    redis.call('HDEL', K_WORKERINFO, unpack(lapsed))
  end
  local last = redis.call('ZRANGE', K_WORKERS, -1, -1, 'WITHSCORES')[2]
  if last then
    redis.call('PEXPIREAT', K_WORKERS, tonumber(last))
    redis.call('PEXPIREAT', K_HEARTBEATS, tonumber(last))
    redis.call('PEXPIREAT', K_WORKERINFO, tonumber(last))
  end
end
