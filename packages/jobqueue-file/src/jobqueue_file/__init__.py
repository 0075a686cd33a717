"""jobqueue_file: a filesystem storage for jobqueue, durable, crash-safe and shared by processes.

``FileStorage("/var/lib/app/queue")`` or ``storage_from_url("file:///var/lib/app/queue")``.
"""

from ._storage import FileStorage

__all__ = [
    "FileStorage",
]
