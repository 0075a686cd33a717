"""The examples run: the FastAPI service under uvicorn, called over HTTP, and the SyncQueue script."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from tests.e2e.cli_support import JOBQUEUE, cli_env, spawn, storage_args

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
SERVICE = EXAMPLES / "fastapi_service"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@contextmanager
def service(storage_url: str) -> Iterator[str]:
    """The example service under uvicorn on a free port; its base URL once it answers."""
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "app:app", "--port", str(port), "--log-level", "warning"],
        cwd=SERVICE,
        env=cli_env(JOBQUEUE_STORAGE=storage_url),
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            assert proc.poll() is None, "uvicorn exited"
            try:
                httpx.get(f"{base}/openapi.json", timeout=5)
                break
            except httpx.TransportError:
                assert time.monotonic() < deadline, "the service did not start"
                time.sleep(0.1)
        yield base
        proc.send_signal(signal.SIGTERM)
        # uvicorn shuts down gracefully (lifespan: the queue stops), then re-raises the signal
        assert proc.wait(timeout=30) in (0, -signal.SIGTERM)
    finally:
        proc.kill()
        proc.wait()


def exercise(base: str) -> None:
    with httpx.Client(base_url=base, timeout=30) as http:
        answer = http.post("/count", json={"text": "the cat and the hat"})
        assert answer.status_code == 200, answer.text
        body = answer.json()
        assert body["result"] == {"words": 5, "most_common": [["the", 2], ["cat", 1], ["and", 1]]}
        again = http.post("/count", json={"text": "the cat and the hat"}).json()
        assert again["job_id"] == body["job_id"]  # same text, same job: counted once
        status = http.get(f"/jobs/{body['job_id']}").json()
        assert status["state"] == "completed"
        assert status["progress"] == {"words": 5}
        failed = http.post("/count", json={"text": "   "})
        assert failed.status_code == 422
        assert failed.json()["detail"]["message"] == "nothing to count: the text is empty"
        assert http.get("/jobs/nope").status_code == 404


@pytest.mark.memory
def test_fastapi_service_with_its_own_worker() -> None:
    with service("memory://") as base:
        exercise(base)


def test_fastapi_service_with_separate_workers(store_url: str) -> None:
    worker = ["worker", "tasks:word_count", *storage_args(store_url, "words"), "--max-attempts", "1"]
    with spawn(*worker, cwd=SERVICE) as (proc, reader):
        reader.wait_for("handler tasks:word_count")
        with service(store_url) as base:
            exercise(base)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0


def test_sync_script(store_url: str) -> None:
    worker = ["worker", "sync_script:square", *storage_args(store_url, "squares"), "--concurrency", "4"]
    with spawn(*worker, cwd=EXAMPLES) as (proc, reader):
        reader.wait_for("handler sync_script:square")
        script = subprocess.run(
            [sys.executable, "sync_script.py"],
            cwd=EXAMPLES,
            env=cli_env(JOBQUEUE_STORAGE=store_url),
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert script.returncode == 0, script.stderr
        lines = script.stdout.splitlines()
        assert lines[0] == "7 squared is 49"
        assert lines[1] == "enqueued: queued, queued, queued, queued, queued"
        assert lines[2] == "squares: [0, 1, 4, 9, 16]"
        assert lines[3] == "a job for later: cancelled"
        assert lines[4].endswith(": completed, 1 attempt(s), result 0")
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
    assert JOBQUEUE.exists()
