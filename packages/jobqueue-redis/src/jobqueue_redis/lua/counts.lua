-- Returns {queued, processing, failing, completed, failed}, pruning expired records first.
local now = now_ms()
promote(now)
while prune(now, 1000) > 0 do
end
return {
  redis.call('LLEN', Q_READY) + redis.call('ZCARD', Z_SCHEDULED),
  redis.call('ZCARD', Z_LEASES),
  redis.call('ZCARD', Z_RETRIES),
  redis.call('ZCARD', Z_COMPLETED),
  redis.call('ZCARD', Z_FAILED),
}
