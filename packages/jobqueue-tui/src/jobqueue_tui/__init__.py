"""jobqueue_tui."""
