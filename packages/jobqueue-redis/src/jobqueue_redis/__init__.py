"""jobqueue_redis."""
