-- ARGV: state ('' any), id prefix, max_score ('+inf' or ms), after_id ('' none), wanted, budget.
-- Walks the job index newest first (ties: id descending) from (max_score, after_id), exclusive,
-- looking at most `budget` entries. Returns {exhausted, last_score, last_id, id, fields, ...}.
local want, prefix, max_score, after, wanted, budget =
  ARGV[1], ARGV[2], ARGV[3], ARGV[4], tonumber(ARGV[5]), tonumber(ARGV[6])
local now = now_ms()
promote(now)
prune(now, 1000)

local function bytes_before(a, b)
  local n = math.min(#a, #b)
  for i = 1, n do
    local x, y = string.byte(a, i), string.byte(b, i)
    if x ~= y then
      return x < y
    end
  end
  return #a < #b
end

local out = {0, '', ''}
local found, looked, offset = 0, 0, 0
local top = tonumber(max_score)
while found < wanted and looked < budget do
  local page = redis.call('ZREVRANGEBYSCORE', Z_JOBS, max_score, '-inf', 'WITHSCORES', 'LIMIT', offset, 100)
  if #page == 0 then
    out[1] = 1
    break
  end
  offset = offset + #page / 2
  for i = 1, #page, 2 do
    local id, score = page[i], tonumber(page[i + 1])
    local seen = after ~= '' and score == top and not bytes_before(id, after)
    if not seen then
      looked = looked + 1
      out[2], out[3] = page[i + 1], id
      if string.sub(id, 1, #prefix) == prefix then
        local fields = redis.call('HGETALL', job_key(id))
        if #fields > 0 and (want == '' or redis.call('HGET', job_key(id), 'state') == want) then
          out[#out + 1] = id
          out[#out + 1] = fields
          found = found + 1
        end
      end
      if found >= wanted or looked >= budget then
        break
      end
    end
  end
end
return out
