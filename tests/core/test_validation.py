"""Bad input raises before anything is written, with a message that names the argument."""

import math
from collections.abc import AsyncIterator
from datetime import datetime, timedelta

import pytest
from jobqueue import MemoryStorage, Queue, SerializationError
from jobqueue.storage import Monitoring

pytestmark = pytest.mark.memory


@pytest.fixture
async def queue() -> AsyncIterator[Queue[object, object]]:
    storage = MemoryStorage()
    queue: Queue[object, object] = Queue(storage)
    async with queue:
        yield queue


async def assert_nothing_stored(queue: Queue[object, object]) -> None:
    assert isinstance(queue.storage, Monitoring)
    counts = await queue.storage.counts()
    assert sum(counts.values()) == 0, f"something was written: {counts}"


@pytest.mark.parametrize(
    ("job_id", "error", "match"),
    [
        ("", ValueError, "job_id must not be empty"),
        (None, TypeError, "job_id must be a str"),
        (42, TypeError, "job_id must be a str"),
        (b"bytes-id", TypeError, "job_id must be a str"),
        ("x" * 1025, ValueError, "job_id must be at most 1024 bytes"),
        ("é" * 513, ValueError, "job_id must be at most 1024 bytes"),
        ("\ud800", ValueError, "job_id must be valid unicode"),
    ],
)
async def test_bad_job_ids(queue: Queue[object, object], job_id: object, error: type, match: str) -> None:
    with pytest.raises(error, match=match):
        await queue.enqueue(job_id, {})  # type: ignore[arg-type]
    with pytest.raises(error, match=match):
        await queue.enqueue_and_wait(job_id, {}, timeout=1)  # type: ignore[arg-type]
    await assert_nothing_stored(queue)


async def test_longest_job_id_is_accepted(queue: Queue[object, object]) -> None:
    assert (await queue.enqueue("x" * 1024, {})).status == "queued"


BAD_DURATIONS = [0, -1, -0.5, math.nan, math.inf, -math.inf, timedelta(seconds=-1)]


@pytest.mark.parametrize("value", BAD_DURATIONS)
async def test_bad_result_ttl(queue: Queue[object, object], value: object) -> None:
    with pytest.raises(ValueError, match="result_ttl"):
        await queue.enqueue("j", {}, result_ttl=value)  # type: ignore[arg-type]
    await assert_nothing_stored(queue)


@pytest.mark.parametrize("value", BAD_DURATIONS)
async def test_bad_wait_timeout(queue: Queue[object, object], value: object) -> None:
    with pytest.raises(ValueError, match="timeout"):
        await queue.enqueue_and_wait("j", {}, timeout=value)  # type: ignore[arg-type]
    await assert_nothing_stored(queue)


@pytest.mark.parametrize("value", [-1, -0.001, math.nan, math.inf])
async def test_bad_delay(queue: Queue[object, object], value: float) -> None:
    with pytest.raises(ValueError, match="delay"):
        await queue.enqueue("j", {}, delay=value)
    await assert_nothing_stored(queue)


async def test_delay_of_wrong_type(queue: Queue[object, object]) -> None:
    with pytest.raises(TypeError, match="delay must be seconds"):
        await queue.enqueue("j", {}, delay="5")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="delay must be seconds"):
        await queue.enqueue("j", {}, delay=True)  # bool is an int to mypy; refused at run time


async def test_naive_run_at_is_refused(queue: Queue[object, object]) -> None:
    with pytest.raises(ValueError, match="run_at must be a timezone-aware datetime"):
        await queue.enqueue("j", {}, run_at=datetime(2030, 1, 1))  # naive on purpose
    await assert_nothing_stored(queue)


@pytest.mark.parametrize(
    ("value", "error"), [(0, ValueError), (-3, ValueError), (1.5, TypeError), (True, TypeError)]
)
async def test_bad_max_attempts(queue: Queue[object, object], value: object, error: type) -> None:
    with pytest.raises(error, match="max_attempts"):
        await queue.enqueue("j", {}, max_attempts=value)  # type: ignore[arg-type]
    await assert_nothing_stored(queue)


async def test_unserializable_payload_writes_nothing(queue: Queue[object, object]) -> None:
    with pytest.raises(SerializationError, match="payload of job 'j'"):
        await queue.enqueue("j", {"when": datetime.now()})  # any non-JSON value
    with pytest.raises(SerializationError, match="payload"):
        await queue.enqueue("j", {"x": math.nan})
    await assert_nothing_stored(queue)


def test_execute_twice_is_refused() -> None:
    queue: Queue[object, object] = Queue(MemoryStorage())
    queue.execute(lambda job: None)
    with pytest.raises(ValueError, match="execute"):
        queue.execute(lambda job: None)


@pytest.mark.parametrize(
    ("option", "value", "error", "match"),
    [
        ("concurrency", 0, ValueError, "concurrency"),
        ("max_attempts", 0, ValueError, "max_attempts"),
        ("visibility_timeout", 0, ValueError, "visibility_timeout"),
        ("block_timeout", -1, ValueError, "block_timeout"),
        ("job_timeout", math.nan, ValueError, "job_timeout"),
        ("result_ttl", math.inf, ValueError, "result_ttl"),
        ("retry_backoff", -1, ValueError, "retry_backoff"),
        ("retry_backoff", "fast", TypeError, "retry_backoff"),
        ("payload_serde", object(), TypeError, "payload_serde"),
        ("name", "", ValueError, "name"),
        ("worker_id", "", ValueError, "worker_id"),
    ],
)
def test_bad_queue_options(option: str, value: object, error: type, match: str) -> None:
    with pytest.raises(error, match=match):
        Queue(MemoryStorage(), **{option: value})  # type: ignore[arg-type]


def test_storage_must_be_a_storage() -> None:
    with pytest.raises(TypeError, match=r"storage must be a jobqueue\.Storage"):
        Queue("redis://localhost")  # type: ignore[arg-type]


def test_unknown_event_name() -> None:
    queue: Queue[object, object] = Queue(MemoryStorage())
    with pytest.raises(ValueError, match="unknown event 'complete'"):
        queue.on("complete", lambda *args: None)  # type: ignore[call-overload]  # the typo mypy also catches


@pytest.mark.parametrize("value", [1e14, 1e17, timedelta(days=365 * 101)])
async def test_durations_over_a_century_are_refused(queue: Queue[object, object], value: object) -> None:
    with pytest.raises(ValueError, match="result_ttl must be at most"):
        await queue.enqueue("j", {}, result_ttl=value)  # type: ignore[arg-type]
    await assert_nothing_stored(queue)
