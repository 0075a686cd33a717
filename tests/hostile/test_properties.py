"""Property-based tests of the public API on every storage.

Each generated case either round-trips exactly (enqueue, a worker returns the
payload, ``enqueue_and_wait``/``get_result``/``get_status`` give it back, the
id intact) or is refused with ``ValueError``/``TypeError``/``SerializationError``
leaving no trace in storage.
"""

from __future__ import annotations

import math
from collections.abc import AsyncIterator, Awaitable
from datetime import timedelta
from typing import Any

import pytest
from hypothesis import example, given
from hypothesis import strategies as st
from jobqueue import JobState, MsgpackSerde, Queue, SerializationError, Storage
from jobqueue._durations import MAX_SECONDS as LONGEST_ACCEPTED

from tests.hostile.conftest import (
    QUICK,
    THOROUGH,
    assert_no_trace,
    forget,
    monitor,
    wait_until,
    warm_up,
    worker_queue,
)

MAX_ID_BYTES = 1024


def _utf8_len(text: str) -> int:
    return len(text.encode("utf-8", "surrogatepass"))


def _is_valid_id(text: str) -> bool:
    try:
        size = len(text.encode("utf-8"))
    except UnicodeEncodeError:
        return False
    return 0 < size <= MAX_ID_BYTES


SEPARATORS = st.sampled_from([":", "{", "}", "/", "..", " ", "\n", "\x00", "\\", "%", "~", "*", "?", "["])
VALID_IDS = (
    st.lists(
        st.one_of(SEPARATORS, st.text(st.characters(exclude_categories=["Cs"]), max_size=40)), min_size=1
    )
    .map("".join)
    .filter(lambda text: 0 < _utf8_len(text) <= MAX_ID_BYTES)
)
TOO_LONG_IDS = st.integers(1, 300).flatmap(
    lambda n: st.sampled_from(["x", "é", "€", "🙂"]).map(
        lambda ch: ch * (MAX_ID_BYTES // len(ch.encode()) + n)
    )
)
SURROGATE_IDS = st.tuples(st.text(max_size=5), st.characters(categories=["Cs"]), st.text(max_size=5)).map(
    "".join
)
INVALID_IDS = st.one_of(st.just(""), TOO_LONG_IDS, SURROGATE_IDS)
NOT_STR_IDS = st.one_of(st.none(), st.integers(), st.binary(max_size=8), st.lists(st.text(), max_size=2))

JSON_LEAVES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(),
)
JSON_VALUES = st.recursive(
    JSON_LEAVES, lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(), inner, max_size=5)
)
MSGPACK_LEAVES = st.one_of(
    JSON_LEAVES.filter(lambda v: not isinstance(v, int) or -(2**63) <= v < 2**64),
    st.binary(max_size=300),
    st.text(st.characters(exclude_categories=["Cs"])),
)
MSGPACK_VALUES = st.recursive(
    MSGPACK_LEAVES,
    lambda inner: (
        st.lists(inner, max_size=5)
        | st.dictionaries(st.text(st.characters(exclude_categories=["Cs"])), inner, max_size=5)
    ),
)


@pytest.fixture
async def queue(storage: Storage) -> AsyncIterator[Queue[Any, Any]]:
    """A running queue with an echo worker, shared by every example of a test."""
    async with worker_queue(storage) as running:
        await warm_up(running)
        yield running


@pytest.fixture
async def msgpack_queue(storage: Storage) -> AsyncIterator[Queue[Any, Any]]:
    """Like ``queue``, with msgpack for payloads and results."""
    async with worker_queue(storage, payload_serde=MsgpackSerde(), result_serde=MsgpackSerde()) as running:
        await warm_up(running)
        yield running


async def outcome_of(call: Awaitable[Any]) -> tuple[str, Any]:
    """``("ok", value)`` or ``(error type name, message)``.

    Expected failures are compared as text: a live exception's traceback keeps the
    queue's frames alive into teardown (seen to stall the fixture's stop on Redis).
    """
    try:
        return ("ok", await call)
    except Exception as exc:
        return (type(exc).__name__, str(exc))


async def round_trip(queue: Queue[Any, Any], job_id: str, payload: Any) -> None:
    """Run one job to completion; every read gives the payload back; then remove it."""
    assert await queue.enqueue_and_wait(job_id, payload, timeout=20) == payload
    status = await queue.get_status(job_id)
    assert status is not None
    assert (status.id, status.state, status.result) == (job_id, JobState.COMPLETED, payload)
    assert await queue.get_result(job_id) == payload
    page = await monitor(queue.storage).list_jobs(prefix=job_id)
    assert job_id in [record.id for record in page.records]
    again = await queue.enqueue(job_id, payload)
    assert (again.status, again.job_id, again.result) == ("completed", job_id, payload)
    await forget(queue.storage, job_id)
    await assert_no_trace(queue.storage, job_id)


# ------------------------------------------------------------------------ ids


@THOROUGH
@given(job_id=VALID_IDS)
@example(job_id=":")
@example(job_id="{jq}:job:x")
@example(job_id="../../etc/passwd")
@example(job_id="..")
@example(job_id=" ")
@example(job_id="\n")
@example(job_id="\x00")
@example(job_id="a\x00b")
@example(job_id="Job-1")
@example(job_id="job-1")
@example(job_id="x" * MAX_ID_BYTES)
@example(job_id="é" * (MAX_ID_BYTES // 2))
@example(job_id="🙂" * (MAX_ID_BYTES // 4))
@example(job_id="%41")
@example(job_id="~" + "0" * 64)
async def test_any_valid_id_round_trips(queue: Queue[Any, Any], job_id: str) -> None:
    await round_trip(queue, job_id, {"id": job_id})


@QUICK
@given(job_id=st.one_of(INVALID_IDS, NOT_STR_IDS))
@example(job_id="")
@example(job_id="x" * (MAX_ID_BYTES + 1))
@example(job_id="é" * (MAX_ID_BYTES // 2) + "x")
@example(job_id="\ud800")
@example(job_id=b"job")
async def test_invalid_ids_are_refused_by_every_call(queue: Queue[Any, Any], job_id: Any) -> None:
    expected = TypeError if not isinstance(job_id, str) else ValueError
    with pytest.raises(expected, match="job_id"):
        await queue.enqueue(job_id, {"x": 1})
    with pytest.raises(expected, match="job_id"):
        await queue.enqueue_and_wait(job_id, {"x": 1}, timeout=5)
    for call in (queue.get_status, queue.get_result, queue.cancel, queue.abort):
        with pytest.raises(expected, match="job_id"):
            await call(job_id)
    await assert_no_trace(queue.storage, job_id)


# ------------------------------------------------------------------- payloads


@THOROUGH
@given(payload=JSON_VALUES)
@example(payload={"nested": [[[[[{"deep": [1, 2.5, None, True, "é"]}]]]]]})
@example(payload=2**200)
@example(payload=-0.0)
@example(payload=1e308)
@example(payload="\ud800 lone surrogate survives JSON's escapes")
@example(payload="x" * 9000)
async def test_json_payloads_round_trip(queue: Queue[Any, Any], payload: Any) -> None:
    await round_trip(queue, "payload", payload)


@QUICK
@given(
    payload=st.one_of(
        st.sampled_from([math.nan, math.inf, -math.inf]),
        st.binary(max_size=20),
        st.sets(st.integers(), max_size=3),
        st.builds(object),
        st.lists(JSON_LEAVES, max_size=3).map(lambda items: [*items, {"bad": math.nan}]),
    )
)
async def test_non_json_payloads_are_refused(queue: Queue[Any, Any], payload: Any) -> None:
    with pytest.raises(SerializationError, match="payload of job 'p'"):
        await queue.enqueue("p", payload)
    with pytest.raises(SerializationError, match="payload of job 'p'"):
        await queue.enqueue_and_wait("p", payload, timeout=5)
    await assert_no_trace(queue.storage, "p")


@THOROUGH
@given(payload=MSGPACK_VALUES)
@example(payload=b"\x00\xff" * 1000)
@example(payload={"blob": bytes(range(256)), "list": [b"", b"\xc1"], "n": 2**64 - 1})
@example(payload=-(2**63))
@example(payload=b"x" * 8192)  # around the size a result rides along on the done event
@example(payload=b"x" * 8189)
@example(payload=b"x" * 8190)
async def test_msgpack_payloads_round_trip(msgpack_queue: Queue[Any, Any], payload: Any) -> None:
    await round_trip(msgpack_queue, "binary", payload)


@QUICK
@given(
    payload=st.one_of(
        st.integers(min_value=2**64),
        st.integers(max_value=-(2**63) - 1),
        SURROGATE_IDS,
        st.builds(object),
        st.sets(st.integers(), min_size=1, max_size=3),
    )
)
async def test_payloads_msgpack_cannot_encode_are_refused(
    msgpack_queue: Queue[Any, Any], payload: Any
) -> None:
    with pytest.raises(SerializationError, match="payload of job 'p'"):
        await msgpack_queue.enqueue("p", payload)
    await assert_no_trace(msgpack_queue.storage, "p")


async def test_msgpack_maps_with_int_keys_are_refused_or_round_trip(msgpack_queue: Queue[Any, Any]) -> None:
    payload = {1: "one"}
    outcome = await outcome_of(msgpack_queue.enqueue_and_wait("int-keys", payload, timeout=20))
    if outcome[0] == "SerializationError":
        await assert_no_trace(msgpack_queue.storage, "int-keys")
        return
    assert outcome == ("ok", payload)


# ------------------------------------------------------------------ durations

# Seconds as the public API takes them: the valid ones (up to ~30 years), and every kind of bad one.
# Larger values: test_hundred_years_* and test_huge_durations_* below.
LARGEST_GENERATED = 1e9
DURATIONS = st.one_of(
    st.floats(max_value=LARGEST_GENERATED),  # negatives, 0, subnormals, -inf
    st.sampled_from([math.nan, math.inf, -math.inf, 0.0, -0.0, 5e-324]),
    st.integers(min_value=-(2**70), max_value=int(LARGEST_GENERATED)),
    st.timedeltas(max_value=timedelta(seconds=LARGEST_GENERATED)),
    st.sampled_from([None, True, "1", b"1", [1]]),
)


def _seconds(value: Any) -> float | None:
    """What ``to_ms`` accepts, in seconds; None for what it must refuse as a type."""
    if isinstance(value, timedelta):
        return value.total_seconds()
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    return None


def _expect_refusal(value: Any, *, allow_zero: bool, none_ok: bool = True) -> type[Exception] | None:
    """The error ``value`` must be refused with (None: accepted). ``None`` means the default."""
    if value is None and none_ok:
        return None
    seconds = _seconds(value)
    if seconds is None:
        return TypeError
    if math.isnan(seconds) or math.isinf(seconds) or seconds < 0 or (seconds == 0 and not allow_zero):
        return ValueError
    if seconds > LONGEST_ACCEPTED:  # deadlines must stay exact integers in every backend
        return ValueError
    return None


@THOROUGH
@given(ttl=DURATIONS)
@example(ttl=0.0)
@example(ttl=-1)
@example(ttl=math.nan)
@example(ttl=math.inf)
@example(ttl=5e-324)
@example(ttl=timedelta(0))
@example(ttl=timedelta(days=-1))
@example(ttl=86400 * 365 * 100)
async def test_result_ttl_is_validated(queue: Queue[Any, Any], ttl: Any) -> None:
    refused = _expect_refusal(ttl, allow_zero=False)
    seconds = _seconds(ttl)
    if refused is not None:
        with pytest.raises(refused, match="result_ttl"):
            await queue.enqueue("ttl", {"ttl": 1}, result_ttl=ttl)
        await assert_no_trace(queue.storage, "ttl")
        return
    assert await queue.enqueue_and_wait("ttl", {"ttl": 1}, result_ttl=ttl, timeout=20) == {"ttl": 1}
    if seconds is None or seconds >= 2:  # a shorter TTL may already have expired the record
        assert await queue.get_result("ttl") == {"ttl": 1}
    await forget(queue.storage, "ttl")
    await assert_no_trace(queue.storage, "ttl")


async def test_hundred_years_is_the_longest_result_ttl(queue: Queue[Any, Any]) -> None:
    """100 years is kept (every backend's clock arithmetic stays exact); a millisecond more is refused."""
    assert await queue.enqueue_and_wait("century", {"x": 1}, result_ttl=LONGEST_ACCEPTED, timeout=10) == {
        "x": 1
    }
    assert await queue.get_result("century") == {"x": 1}
    await forget(queue.storage, "century")
    with pytest.raises(ValueError, match="result_ttl"):
        await queue.enqueue("century", {"x": 1}, result_ttl=LONGEST_ACCEPTED + 0.001)
    await assert_no_trace(queue.storage, "century")


@pytest.mark.parametrize("seconds", [1e14, 1e17, 1e300])
@pytest.mark.parametrize("option", ["result_ttl", "delay", "timeout"])
async def test_huge_durations_are_refused(queue: Queue[Any, Any], option: str, seconds: float) -> None:
    """Beyond 100 years: a ValueError naming the argument, not an OverflowError or a broken record.

    (Without the bound, 1e17 s overflowed msgpack in encode_envelope and, on
    Redis 7, 1e14 s made complete.lua send PEXPIREAT a double in exponent
    notation, leaving a completed record with no expiry and an unparsable
    ``expires_at``.)
    """
    with pytest.raises(ValueError, match=option):
        await queue.enqueue_and_wait("huge", {"x": 1}, **{option: seconds})  # type: ignore[arg-type]  # one duration option
    await assert_no_trace(queue.storage, "huge")


@THOROUGH
@given(delay=DURATIONS)
@example(delay=0)
@example(delay=0.0)
@example(delay=-0.001)
@example(delay=math.nan)
@example(delay=1e-9)
@example(delay=3600.0)
async def test_delay_is_validated(queue: Queue[Any, Any], delay: Any) -> None:
    refused = _expect_refusal(delay, allow_zero=True)
    seconds = _seconds(delay)
    if refused is not None:
        with pytest.raises(refused, match="delay"):
            await queue.enqueue("later", {"d": 1}, delay=delay)
        await assert_no_trace(queue.storage, "later")
        return
    if seconds is None or seconds <= 0.05:
        assert await queue.enqueue_and_wait("later", {"d": 1}, delay=delay, timeout=20) == {"d": 1}
        await forget(queue.storage, "later")
    else:
        assert (await queue.enqueue("later", {"d": 1}, delay=delay)).status == "queued"
        status = await queue.get_status("later")
        assert status is not None and status.state is JobState.QUEUED and status.attempts == 0
        assert await queue.cancel("later") == "cancelled"
    await assert_no_trace(queue.storage, "later")


@THOROUGH
@given(timeout=DURATIONS)
@example(timeout=0)
@example(timeout=-1.0)
@example(timeout=math.inf)
@example(timeout=1e-6)
@example(timeout=1e300)
@example(timeout=LONGEST_ACCEPTED)
async def test_wait_timeout_is_validated(queue: Queue[Any, Any], timeout: Any) -> None:
    refused = _expect_refusal(timeout, allow_zero=False, none_ok=False)
    if refused is not None:
        with pytest.raises(refused, match="timeout"):
            await queue.enqueue_and_wait("wait", {"w": 1}, timeout=timeout)
        await assert_no_trace(queue.storage, "wait")
        return
    try:
        assert await queue.enqueue_and_wait("wait", {"w": 1}, timeout=timeout) == {"w": 1}
    except TimeoutError:  # a tiny timeout: the job goes on and completes all the same
        await wait_until(lambda: _completed(queue, "wait"))
    assert await queue.get_result("wait") == {"w": 1}
    await forget(queue.storage, "wait")
    await assert_no_trace(queue.storage, "wait")


async def _completed(queue: Queue[Any, Any], job_id: str) -> bool:
    status = await queue.get_status(job_id)
    return status is not None and status.state is JobState.COMPLETED


@THOROUGH
@given(
    option=st.sampled_from(["block_timeout", "visibility_timeout", "job_timeout", "result_ttl"]),
    value=DURATIONS,
)
async def test_queue_durations_are_validated(storage: Storage, option: str, value: Any) -> None:
    refused = _expect_refusal(value, allow_zero=False, none_ok=option == "job_timeout")
    if refused is not None:
        with pytest.raises(refused, match=option):
            Queue(storage, **{option: value})
        return
    queue: Queue[Any, Any] = Queue(storage, **{option: value})
    assert queue.config is not None
