"""What only FileStorage promises: safe names, persistence, priorities, the event log, URLs.

The sweep of expired records is in test_file_sweep, disk errors in
test_file_errors, symlinks and file modes in test_file_hardening.
"""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

import msgpack
import pytest
from hypothesis import given
from hypothesis import strategies as st
from jobqueue import JobState, StorageError, storage_from_url
from jobqueue.storage import Channel, EventKind, StorageEvent, rules
from jobqueue_conformance import wait_until
from jobqueue_file import FileStorage
from jobqueue_file._events import EventLog, EventTail
from jobqueue_file._names import MAX_KEY, decode_key, encode_key, is_digest

pytestmark = pytest.mark.file

HOSTILE_IDS = [
    "../../etc/passwd",
    "a/b",
    ".",
    "..",
    "CON",
    "con",
    "Job",
    "job",
    "JOB",
    "x" * 1024,
    "é" * 512,
    "ключ/../../ü",
    "\x00nul",
    "~digest-looking",
    "%2e%2e",
    " space ",
    "\\windows\\path",
]


# ------------------------------------------------------------------- names


def escaped(top: Path, root: Path) -> list[Path]:
    """Files under ``top`` that are not under ``root``."""
    return [path for path in top.rglob("*") if not path.resolve().is_relative_to(root.resolve())]


def registrations(top: Path) -> dict[str, list[object]]:
    """The registration files under ``top``, decoded, by file name."""
    return {path.name: msgpack.unpackb(path.read_bytes()) for path in top.glob("*/workers/*")}


def files(top: Path, pattern: str) -> list[Path]:
    return sorted(top.rglob(pattern))


@given(st.text(min_size=1, max_size=300))
def test_every_id_becomes_one_safe_reversible_file_name(job_id: str) -> None:
    key = encode_key(job_id)
    assert "/" not in key and "\x00" not in key
    assert key not in (".", "..") and not key.startswith(".")
    assert key == key.lower(), "names must not depend on case (case-insensitive file systems)"
    assert len(key.encode()) <= max(MAX_KEY, 65)
    if is_digest(key):
        assert len(encode_key(job_id).encode()) == 65
    else:
        assert decode_key(key) == job_id


def test_ids_that_differ_only_in_case_get_different_names() -> None:
    assert len({encode_key(job_id) for job_id in ("Job", "job", "JOB", "jOb")}) == 4


async def test_hostile_ids_stay_inside_the_directory_and_round_trip(tmp_path: Path) -> None:
    root = tmp_path / "queue"
    async with FileStorage(root) as storage:
        for job_id in HOSTILE_IDS:
            assert (await storage.enqueue(job_id, job_id.encode("utf-8", "surrogatepass"))).accepted, job_id
        claimed = []
        while claims := await storage.dequeue("w", lease_ms=30_000, timeout_ms=0, limit=5):
            for claim in claims:
                claimed.append(claim.id)
                assert claim.message == claim.id.encode("utf-8", "surrogatepass")
                assert await storage.complete(claim.id, "w", b"ok", 600_000)
        assert claimed == HOSTILE_IDS, "ids must round-trip exactly, in FIFO order"
        for job_id in HOSTILE_IDS:
            record = await storage.get(job_id)
            assert record is not None and record.id == job_id and record.state is JobState.COMPLETED
        page = await storage.list_jobs(limit=100)
        assert sorted(record.id for record in page.records) == sorted(HOSTILE_IDS)
    assert escaped(tmp_path, root) == [], "files escaped the storage directory"


async def test_hostile_worker_ids_and_namespaces_stay_inside(tmp_path: Path) -> None:
    root = tmp_path / "queue"
    async with FileStorage(root, name="../../ns") as storage:
        await storage.enqueue("job", b"x")
        assert await storage.dequeue("../../w", lease_ms=30_000, timeout_ms=0)
        await storage.register_worker("../../w", 60_000)
        assert [w.id for w in await storage.list_workers()] == ["../../w"]
        assert await storage.list_namespaces() == ["../../ns"]
    assert escaped(tmp_path, root) == [], "files escaped the storage directory"


# ------------------------------------------------------------- persistence


async def test_everything_survives_a_restart(tmp_path: Path) -> None:
    async with FileStorage(tmp_path) as storage:
        for job_id in ("queued", "scheduled", "done", "broken"):
            await storage.enqueue(job_id, job_id.encode(), delay_ms=60_000 if job_id == "scheduled" else 0)
        claims = await storage.dequeue("w", lease_ms=30_000, timeout_ms=0, limit=3)
        assert [claim.id for claim in claims] == ["queued", "done", "broken"]
        assert await storage.release("queued", "w")
        assert await storage.complete("done", "w", b"result", 600_000)
        assert await storage.fail("broken", "w", b"error", 600_000)

    async with FileStorage(tmp_path) as reopened:
        states = {job_id: await reopened.get(job_id) for job_id in ("queued", "scheduled", "done", "broken")}
        assert {job_id: r.state for job_id, r in states.items() if r} == {
            "queued": JobState.QUEUED,
            "scheduled": JobState.QUEUED,
            "done": JobState.COMPLETED,
            "broken": JobState.FAILED,
        }
        assert states["done"] is not None and states["done"].result == b"result"
        assert states["broken"] is not None and states["broken"].error == b"error"
        assert states["scheduled"] is not None and states["scheduled"].run_at is not None
        claims = await reopened.dequeue("w2", lease_ms=30_000, timeout_ms=0, limit=5)
        assert [(claim.id, claim.message) for claim in claims] == [("queued", b"queued")]


async def test_higher_priority_first_then_fifo_and_released_jobs_first_within_their_priority(
    tmp_path: Path,
) -> None:
    async with FileStorage(tmp_path) as storage:
        for job_id, priority in (("low-1", -5), ("mid-1", 0), ("high-1", 7), ("mid-2", 0), ("high-2", 7)):
            await storage.enqueue(job_id, b"x", priority=priority)
        first = await storage.dequeue("w", lease_ms=30_000, timeout_ms=0, limit=3)
        assert [claim.id for claim in first] == ["high-1", "high-2", "mid-1"]
        assert await storage.release("mid-1", "w")
        await storage.enqueue("mid-3", b"x")
        rest = await storage.dequeue("w", lease_ms=30_000, timeout_ms=0, limit=10)
        assert [claim.id for claim in rest] == ["mid-1", "mid-2", "mid-3", "low-1"]
        record = await storage.get("low-1")
        assert record is not None and record.priority == -5


async def test_new_record_fields_survive_a_restart(tmp_path: Path) -> None:
    async with FileStorage(tmp_path) as storage:
        await storage.enqueue("job", b"x", priority=3)
        assert await storage.dequeue("w", lease_ms=30_000, timeout_ms=0)
        assert await storage.set_progress("job", "w", b"half")
        assert await storage.request_abort("job") is JobState.PROCESSING
    async with FileStorage(tmp_path) as reopened:
        record = await reopened.get("job")
        assert record is not None
        assert (record.priority, record.progress, record.abort_requested) == (3, b"half", True)


async def test_a_registration_without_info_keeps_the_three_fields_of_earlier_versions(tmp_path: Path) -> None:
    async with FileStorage(tmp_path) as storage:
        await storage.register_worker("plain", 60_000)
        await storage.register_worker("scheduler", 60_000, b"schedules")
        stored = registrations(tmp_path)
        assert [len(stored["plain"]), len(stored["scheduler"])] == [3, 4]
        assert stored["scheduler"][3] == b"schedules"
        listed = {worker.id: worker.info for worker in await storage.list_workers()}
        assert listed == {"plain": b"", "scheduler": b"schedules"}


async def test_the_event_log_rotates_without_losing_events(tmp_path: Path) -> None:
    log = EventLog(str(tmp_path), str(tmp_path / "lock"), 0o600, rotate_bytes=20_000)
    tail = EventTail(log)
    tail.open()
    sent = [StorageEvent(EventKind.ENQUEUED, f"job-{i}", i) for i in range(3_000)]
    received: list[StorageEvent] = []

    def publish() -> None:
        for event in sent:
            log.publish([event])

    publisher = threading.Thread(target=publish)
    publisher.start()
    while publisher.is_alive():
        received += tail.read()
    publisher.join()
    received += tail.read()
    tail.close()
    log.close()
    assert received == sent
    logs = files(tmp_path, "*.log")
    assert len(logs) <= 3, f"old generations are not deleted: {logs}"
    assert sum(path.stat().st_size for path in logs) <= 3 * (20_000 + 100)


def test_a_reader_far_behind_skips_ahead_and_keeps_reading(tmp_path: Path) -> None:
    log = EventLog(str(tmp_path), str(tmp_path / "lock"), 0o600, rotate_bytes=1_000)
    tail = EventTail(log)
    tail.open()
    for i in range(1_000):  # many generations while the reader sleeps: the oldest are deleted
        log.publish([StorageEvent(EventKind.ENQUEUED, f"old-{i}", i)])
    caught_up = tail.read()
    assert 0 < len(caught_up) < 1_000 and caught_up[-1].job_id == "old-999"
    fresh = [StorageEvent(EventKind.ENQUEUED, f"new-{i}", i) for i in range(5)]
    log.publish(fresh)
    assert tail.read() == fresh
    tail.close()
    log.close()


async def test_subscribers_in_this_process_hear_only_their_channels(tmp_path: Path) -> None:
    async with FileStorage(tmp_path) as storage, storage.subscribe(Channel.DONE) as done:
        await storage.enqueue("j", b"x")
        await storage.dequeue("w", lease_ms=30_000, timeout_ms=0)
        await storage.complete("j", "w", b"small", 600_000)
        event = await asyncio.wait_for(anext(aiter(done)), 2)
        assert (event.kind, event.job_id, event.data) == (EventKind.COMPLETED, "j", b"small")


# -------------------------------------------------------------------- urls


def test_from_url_reads_the_path_and_the_options(tmp_path: Path) -> None:
    storage = FileStorage.from_url(f"file://{tmp_path}/q%20dir?durable=false&mode=0660")
    assert storage.path == str(tmp_path / "q dir") and storage.name == "default"
    assert storage._root.durable is False and storage._root.mode == 0o660
    assert FileStorage.from_url(f"file://{tmp_path}?mode=0o640")._root.mode == 0o640
    default = FileStorage.from_url(f"file://localhost{tmp_path}")
    assert default._root.durable is True and default._root.mode == 0o600
    assert isinstance(storage_from_url(f"file://{tmp_path}"), FileStorage)


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("file:///tmp/q?prefix=x", "unknown storage url option"),
        ("file:///tmp/q?durable=maybe", "durable must be true or false"),
        ("file:///tmp/q?mode=rw", "octal file mode"),
        ("file:///tmp/q?mode=0440", "owner read and write"),
        ("file:///tmp/q?mode=01777", "within 0o777"),
        ("file://host/tmp/q", "take no host"),
        ("file://", "needs a directory path"),
        ("redis://localhost", "not a file:// url"),
    ],
)
def test_from_url_rejects_bad_urls_naming_the_problem(url: str, problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        FileStorage.from_url(url)


def test_the_constructor_rejects_bad_arguments() -> None:
    with pytest.raises(ValueError, match="namespace name"):
        FileStorage("/tmp/q", name="")
    with pytest.raises(ValueError, match="cleanup_interval"):
        FileStorage("/tmp/q", cleanup_interval=0)
    with pytest.raises(TypeError, match="durable"):
        FileStorage("/tmp/q", durable="yes")  # type: ignore[arg-type]  # the wrong type on purpose
    with pytest.raises(TypeError, match="mode"):
        FileStorage("/tmp/q", mode="0600")  # type: ignore[arg-type]  # the wrong type on purpose
    with pytest.raises(ValueError, match="owner read and write"):
        FileStorage("/tmp/q", mode=0o400)


async def test_calls_before_connect_raise_a_storage_error(tmp_path: Path) -> None:
    with pytest.raises(StorageError, match="not connected"):
        await FileStorage(tmp_path).get("x")


async def test_a_worker_that_leaves_leaves_no_directory(tmp_path: Path) -> None:
    async with FileStorage(tmp_path) as storage:
        for worker in ("stops", "lapses"):
            await storage.register_worker(worker, 10 if worker == "lapses" else 60_000)
            await storage.enqueue(f"job-{worker}", b"x")
            assert await storage.dequeue(worker, lease_ms=30_000, timeout_ms=0)
            assert await storage.complete(f"job-{worker}", worker, b"r", 60_000)
        await storage.unregister_worker("stops")

        async def only_lapsed_pruned() -> bool:
            return await storage.list_workers() == []

        await wait_until(only_lapsed_pruned, message="a lapsed worker holding nothing is still listed")
        assert worker_dirs(tmp_path) == [], "processing/<worker>/ directories were left behind"
        await storage.enqueue("again", b"x")
        assert await storage.dequeue("stops", lease_ms=30_000, timeout_ms=0), "a returning worker can claim"


def worker_dirs(root: Path) -> list[Path]:
    return sorted((root / "default" / "processing").iterdir())


async def test_huge_durations_mean_forever_not_an_overflow(tmp_path: Path) -> None:
    huge = 2**70
    async with FileStorage(tmp_path) as storage:
        assert (await storage.enqueue("later", b"x", delay_ms=huge)).accepted
        await storage.enqueue("now", b"x")
        claims = await storage.dequeue("w", lease_ms=huge, timeout_ms=0, limit=5)
        assert [claim.id for claim in claims] == ["now"], "a job delayed for ever is not due"
        assert await storage.renew_leases("w", ["now"], huge) == {}
        assert await storage.complete("now", "w", b"r", huge)
        assert await storage.update_ttl("now", huge) == "updated"
        record = await storage.get("now")
        assert record is not None and record.expires_at == rules.MAX_DEADLINE_MS
