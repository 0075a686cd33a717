-- Helpers shared by every script; prepended (after the generated key header) when loading.
-- Timestamps come from the server clock so that every process agrees on deadlines.

local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

local function job_key(id)
  return P_JOB .. id
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

-- Event: [kind, job_id, at_ms, worker_id|nil, data|nil], decoded by jobqueue.decode_event.
local function publish(kind, id, at, worker, data)
  local message = MSGPACK_ARRAY_5 .. cmsgpack.pack(kind) .. cmsgpack.pack(id) .. cmsgpack.pack(at)
    .. pack_or_nil(worker) .. pack_or_nil(data)
  for _, channel in ipairs(EVENT_CHANNELS[kind]) do
    redis.call('PUBLISH', channel, message)
  end
end

-- Due scheduled jobs and retries become ready (tail of the queue).
local function promote(now)
  for _, schedule in ipairs({Z_SCHEDULED, Z_RETRIES}) do
    local due = redis.call('ZRANGEBYSCORE', schedule, '-inf', now, 'LIMIT', 0, 1000)
    if #due > 0 then
      for _, id in ipairs(due) do
        local key = job_key(id)
        local state = redis.call('HGET', key, 'state')
        if state == 'queued' or state == 'failing' then
          redis.call('HSET', key, 'state', 'queued', 'updated', now)
          redis.call('HDEL', key, 'run_at')
          redis.call('RPUSH', Q_READY, id)
        end
      end
      redis.call('ZREM', schedule, unpack(due))
    end
  end
end

-- Finished jobs whose record expired leave the indexes (the record itself expired natively).
-- A key lives while now <= expires_at, so only scores strictly before now are gone.
local function prune_index(index, now, max)
  local gone = redis.call('ZRANGEBYSCORE', index, '-inf', '(' .. now, 'LIMIT', 0, max)
  if #gone > 0 then
    redis.call('ZREM', Z_JOBS, unpack(gone))
    redis.call('ZREM', index, unpack(gone))
  end
  return #gone
end

local function prune(now, max)
  return prune_index(Z_COMPLETED, now, max) + prune_index(Z_FAILED, now, max)
end

-- Milliseconds until the earliest scheduled job or retry is due (-1: none).
local function next_due(now)
  local best = -1
  for _, schedule in ipairs({Z_SCHEDULED, Z_RETRIES}) do
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

-- Claim one id popped from the queue or a landing list. Queue entries are hints; the record
-- decides: an id whose record is gone (cancelled), not queued, or scheduled is dropped.
local function claim(id, worker, now, lease, out)
  local key = job_key(id)
  local fields = redis.call('HMGET', key, 'state', 'run_at', 'message', 'attempts')
  if fields[1] ~= 'queued' or fields[2] then
    return false
  end
  local attempt = tonumber(fields[4] or '0') + 1
  redis.call('HSET', key, 'state', 'processing', 'attempts', attempt, 'worker', worker,
    'lease_until', now + lease, 'updated', now)
  redis.call('ZADD', Z_LEASES, now + lease, id)
  redis.call('SADD', P_PROCESSING .. worker, id)
  publish('processing', id, now, worker, nil)
  out[#out + 1] = id
  out[#out + 1] = fields[3]
  out[#out + 1] = attempt
  return true
end

-- Claim up to `limit` ready jobs from the head of the queue.
local function claim_ready(worker, now, lease, limit, out)
  local claimed = 0
  while claimed < limit do
    local ids = redis.call('LPOP', Q_READY, limit - claimed)
    if not ids then
      break
    end
    for _, id in ipairs(ids) do
      if claim(id, worker, now, lease, out) then
        claimed = claimed + 1
      end
    end
  end
  return claimed
end

local function owned(id, worker)
  local fields = redis.call('HMGET', job_key(id), 'state', 'worker')
  return fields[1] == 'processing' and fields[2] == worker
end

-- Take a job out of its worker's processing set and the lease index. The worker stays in
-- S_HOLDERS (list_workers and unregister_worker drop it once its set is empty): one command
-- less per job.
local function unhold(id, worker)
  redis.call('SREM', P_PROCESSING .. worker, id)
  redis.call('ZREM', Z_LEASES, id)
end

-- complete / fail: the terminal record expires natively at expires_at.
local function finish(id, worker, state, index, field, other, data, ttl, inline)
  local now = now_ms()
  local key = job_key(id)
  local expires = now + ttl
  redis.call('HSET', key, 'state', state, field, data, 'updated', now, 'expires_at', expires)
  redis.call('HDEL', key, 'lease_until', 'abort', other)
  redis.call('PEXPIREAT', key, expires)
  unhold(id, worker)
  redis.call('ZADD', index, expires, id)
  prune_index(index, now, 100)
  if inline then
    publish(state, id, now, worker, data)
  else
    publish(state, id, now, worker, nil)
  end
end

-- Remove every trace of a job that is not processing.
local function drop(id, state, run_at)
  redis.call('DEL', job_key(id))
  redis.call('ZREM', Z_JOBS, id)
  if state == 'queued' then
    if run_at then
      redis.call('ZREM', Z_SCHEDULED, id)
    else
      redis.call('LREM', Q_READY, 1, id)
    end
  elseif state == 'failing' then
    redis.call('ZREM', Z_RETRIES, id)
  elseif state == 'completed' then
    redis.call('ZREM', Z_COMPLETED, id)
  elseif state == 'failed' then
    redis.call('ZREM', Z_FAILED, id)
  end
end

-- Cancel a job that has not started; a failed record is deleted. Returns the state it had.
local function cancel(id)
  local fields = redis.call('HMGET', job_key(id), 'state', 'run_at')
  local state = fields[1]
  if not state then
    return false
  end
  if state == 'queued' or state == 'failing' then
    drop(id, state, fields[2])
    publish('cancelled', id, now_ms(), nil, nil)
  elseif state == 'failed' then
    drop(id, state, nil)
  end
  return state
end
