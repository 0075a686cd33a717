-- A process (its token) listens on channels of this namespace for ms (0: no more); the
-- scripts publish on a channel only while its flag, a set of such tokens, exists.
-- ARGV: token, ms, channel names (events|done).
local token, ms = ARGV[N_CH + 1], tonumber(ARGV[N_CH + 2])
for i = N_CH + 3, #ARGV do
  local flag = HEARD[ARGV[i] == 'done' and CH_DONE or CH_EVENTS]
  if ms > 0 then
    redis.call('ZADD', flag, 0, token)
    redis.call('PEXPIRE', flag, ms) -- a process that died leaves it for ms at most
  else
    redis.call('ZREM', flag, token)
  end
end
return 1
