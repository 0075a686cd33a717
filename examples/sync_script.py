"""A plain synchronous script that uses jobqueue through ``SyncQueue`` (no asyncio in sight).

Start a worker for the handler below, then run the script, both on one storage::

    export JOBQUEUE_STORAGE=file:///tmp/jobs        # or redis://localhost:6379/0
    jobqueue worker sync_script:square --queue squares &
    python sync_script.py

The same calls work in a Django view, a Flask route or a notebook cell.
"""

from __future__ import annotations

import os

from jobqueue import Job, JobTimeoutError, SyncQueue, new_id


def square(job: Job[int]) -> int:
    """The handler the worker runs (a plain ``def`` runs in a worker thread)."""
    return job.payload * job.payload


def main() -> None:
    """Enqueue a batch, wait for one result, look at the others, cancel one that has not run."""
    storage = os.environ.get("JOBQUEUE_STORAGE", "file:///tmp/jobs")
    queue: SyncQueue[int, int] = SyncQueue(storage, name="squares")
    with queue:
        print("7 squared is", queue.enqueue_and_wait(f"square-{new_id()}", 7, timeout=30))

        ids = [f"square-{n}-{new_id()}" for n in range(5)]
        results = queue.enqueue_many(zip(ids, range(5), strict=True), result_ttl=600)
        print("enqueued:", ", ".join(result.status for result in results))
        print("squares:", [queue.wait(job_id, timeout=30) for job_id in ids])

        later = queue.enqueue(f"later-{new_id()}", 9, delay=3600)
        print("a job for later:", queue.cancel(later.job_id))
        try:
            queue.wait(ids[0], timeout=0.001)  # already done: returns at once, no timeout
        except JobTimeoutError:
            print("still running")
        status = queue.get_status(ids[0])
        assert status is not None
        print(f"{status.id}: {status.state}, {status.attempts} attempt(s), result {status.result}")


if __name__ == "__main__":
    main()
