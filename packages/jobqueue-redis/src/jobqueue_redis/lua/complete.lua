-- ARGV: job_id, worker, result, ttl_ms, inline ('1': the result rides on the event).
local id, worker = ARGV[1], ARGV[2]
if not owned(id, worker) then
  return 0
end
finish(id, worker, 'completed', Z_COMPLETED, 'result', 'error', ARGV[3], tonumber(ARGV[4]), ARGV[5] == '1')
return 1
