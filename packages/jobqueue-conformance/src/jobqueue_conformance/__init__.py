"""jobqueue_conformance."""
