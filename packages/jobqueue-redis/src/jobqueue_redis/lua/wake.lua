-- Passes on a wake-up that a cancelled dequeue took from the marker, while jobs are ready
-- (an empty namespace keeps no marker).
if redis.call('EXISTS', K_READY) == 1 then
  wake()
end
return 1
