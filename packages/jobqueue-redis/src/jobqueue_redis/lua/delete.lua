-- ARGV: job_id. Removes every trace of a job that is not processing; 1 when something went.
local id = ARGV[1]
local fields = redis.call('HMGET', job_key(id), 'state', 'run_at')
if not fields[1] or fields[1] == 'processing' then
  return 0
end
drop(id, fields[1], fields[2])
return 1
