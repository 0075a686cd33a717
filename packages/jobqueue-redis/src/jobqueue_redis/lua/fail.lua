-- ARGV: job_id, worker, error, ttl_ms, inline ('1': the error rides on the event).
local id, worker = ARGV[1], ARGV[2]
if not owned(id, worker) then
  return 0
end
finish(id, worker, 'failed', Z_FAILED, 'error', 'result', ARGV[3], tonumber(ARGV[4]), ARGV[5] == '1')
return 1
