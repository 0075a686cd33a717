"""jobqueue_file."""
