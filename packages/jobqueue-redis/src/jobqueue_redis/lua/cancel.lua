-- ARGV: job_id. Returns the state the job had (nil: no record).
return cancel(ARGV[1])
