"""The handler the dashboard tests run, in this process (memory) or in ``jobqueue worker`` (Redis).

What it does depends on the payload, so that one handler serves every test. A plain
``def``: the worker runs it in a thread.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from jobqueue import Job


def handle(job: Job[dict[str, Any]]) -> dict[str, Any]:
    payload = job.payload
    if "customer" in payload:
        raise KeyError(f"no customer {payload['customer']}")
    if payload.get("fail"):
        raise ValueError("bad payload")
    marker = payload.get("fail_once")
    if marker is not None and not Path(marker).exists():
        Path(marker).touch()
        raise RuntimeError("first run fails")
    return {"double": payload.get("x", 0) * 2}
