-- Returns {queued, processing, failing, completed, failed}, promoting due jobs and pruning
-- expired records first.
local now = now_ms()
if promote(now) > 0 then
  wake()
end
while prune(K_COMPLETED, now, 1000) + prune(K_FAILED, now, 1000) > 0 do
end
return {
  redis.call('ZCARD', K_READY) + redis.call('ZCARD', K_SCHEDULED),
  redis.call('ZCARD', K_LEASES),
  redis.call('ZCARD', K_RETRIES),
  redis.call('ZCARD', K_COMPLETED),
  redis.call('ZCARD', K_FAILED),
}
