"""A FastAPI service that offloads work to jobqueue workers and answers with the result.

Run it (one process, in-memory queue, the worker inside the service)::

    uvicorn app:app

or with workers of their own, sharing a storage::

    export JOBQUEUE_STORAGE=redis://localhost:6379/0    # or file:///tmp/jobs
    jobqueue worker tasks:word_count --queue words &
    uvicorn app:app

Then ``curl -X POST localhost:8000/count -H 'content-type: application/json' -d '{"text": "a b a"}'``.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, HTTPException
from jobqueue import JobFailedError, JobTimeoutError, Queue, content_id, storage_from_url
from pydantic import BaseModel
from tasks import word_count

STORAGE = os.environ.get("JOBQUEUE_STORAGE", "memory://")

queue: Queue[dict[str, Any], dict[str, Any]] = Queue(storage_from_url(STORAGE), name="words")
if STORAGE.startswith("memory://"):  # a memory queue lives in this process: run its worker here too
    queue.execute(word_count)


@asynccontextmanager
async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
    """Start the queue with the service, stop it gracefully on shutdown."""
    async with queue:
        yield


app = FastAPI(title="word counter", lifespan=lifespan)


class CountRequest(BaseModel):
    """The text to count; ``slow`` makes the work take that many seconds."""

    text: str
    slow: float = 0.0


@app.post("/count")
async def count(request: CountRequest) -> dict[str, Any]:
    """Count words in a worker; the same text is counted once (its hash is the job id)."""
    payload = request.model_dump()
    job_id = f"count-{content_id(payload)[:32]}"
    try:
        result = await queue.enqueue_and_wait(job_id, payload, timeout=10)
    except JobTimeoutError:
        raise HTTPException(
            504, detail={"job_id": job_id, "message": "still running: GET /jobs/{job_id}"}
        ) from None
    except JobFailedError as exc:
        raise HTTPException(422, detail={"job_id": job_id, "message": exc.error.get("message")}) from exc
    return {"job_id": job_id, "result": result}


@app.get("/jobs/{job_id}")
async def job_status(job_id: str) -> dict[str, Any]:
    """A job's state, progress and result."""
    status = await queue.get_status(job_id)
    if status is None:
        raise HTTPException(404, detail=f"no job {job_id!r}")
    return {"job_id": job_id, "state": status.state, "progress": status.progress, "result": status.result}
