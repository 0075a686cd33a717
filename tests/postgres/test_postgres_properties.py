"""Property tests: any valid id, namespace and worker id is data, stored and returned intact."""

from __future__ import annotations

import uuid

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from jobqueue import JobState
from jobqueue.storage import Channel, EventKind
from jobqueue_postgres import PostgresStorage

pytestmark = pytest.mark.postgres

SEPARATORS = st.sampled_from(
    [":", "{", "}", "/", "..", " ", "\n", "\x00", "\\", "%", "_", "'", '"', "$1", ";"]
)
TEXT = st.text(st.characters(exclude_categories=["Cs"]), max_size=40)
NAMES = (
    st.lists(st.one_of(SEPARATORS, TEXT), min_size=1, max_size=8)
    .map("".join)
    .filter(lambda text: 0 < len(text.encode()) <= 1024)
)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(job_id=NAMES, namespace=NAMES, worker=NAMES, message=st.binary(max_size=64))
@example(job_id="a\x00b", namespace="\x00", worker="'; DROP TABLE jobs; --", message=b"\x00")
async def test_names_round_trip_through_every_call(
    storage: PostgresStorage, job_id: str, namespace: str, worker: str, message: bytes
) -> None:
    view = storage.namespace(f"{namespace}/{uuid.uuid4().hex}")  # a fresh namespace per example
    async with view.subscribe(Channel.EVENTS) as events:
        assert (await view.enqueue(job_id, message)).accepted
        assert (await anext(events)).job_id == job_id
    record = await view.get(job_id)
    assert record is not None and (record.id, record.message) == (job_id, message)
    assert [r.id for r in (await view.list_jobs(prefix=job_id)).records] == [job_id]
    (claim,) = await view.dequeue(worker, lease_ms=60_000, timeout_ms=0)
    assert (claim.id, claim.message) == (job_id, message)
    assert await view.heartbeat(worker, ttl_ms=60_000, job_ids=[job_id], lease_ms=60_000) == {}
    assert [(w.id, w.jobs) for w in await view.list_workers()] == [(worker, (job_id,))]
    async with view.subscribe(Channel.DONE) as done:
        assert await view.complete(job_id, worker, message, 60_000)
        event = await anext(done)
    assert (event.kind, event.job_id, event.worker_id, event.data) == (
        EventKind.COMPLETED,
        job_id,
        worker,
        message,
    )
    finished = await view.get(job_id)
    assert finished is not None and (finished.state, finished.result) == (JobState.COMPLETED, message)
    assert view.name in await view.list_namespaces()
    assert await view.cancel(job_id) is JobState.COMPLETED
