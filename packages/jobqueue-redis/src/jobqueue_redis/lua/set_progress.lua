-- mirrors rules.set_progress. ARGV: id, worker, data. Returns 1 (stored) or 0 (not owned).
local id, worker, data = ARGV[N_CH + 1], ARGV[N_CH + 2], ARGV[N_CH + 3]
local rec = unpack_record(redis.call('HGET', K_LIVE, id))
if not owned(rec, worker) then
  return 0
end
rec.g = data
store({{id, rec}})
publish('progress', id, now_ms(), worker, data)
return 1
