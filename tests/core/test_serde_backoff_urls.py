"""Serdes, backoff maths, storage URLs and the envelope codec."""

import random
from datetime import timedelta

import pytest
from jobqueue import (
    Backoff,
    CorruptDataError,
    JsonSerde,
    MemoryStorage,
    MsgpackSerde,
    SerializationError,
    available_schemes,
    storage_from_url,
)
from jobqueue._backoff import backoff_from
from jobqueue.storage import (
    Envelope,
    EventKind,
    StorageEvent,
    decode_envelope,
    decode_event,
    encode_envelope,
    encode_event,
)


@pytest.mark.parametrize("serde", [JsonSerde(), MsgpackSerde()])
@pytest.mark.parametrize("value", [None, 0, -1.5, "ünï", [1, [2, {"a": None}]], {"k": True}])
def test_serdes_round_trip(serde: JsonSerde[object], value: object) -> None:
    assert serde.deserialize(serde.serialize(value)) == value


def test_msgpack_carries_bytes() -> None:
    serde: MsgpackSerde[object] = MsgpackSerde()
    assert serde.deserialize(serde.serialize({"blob": b"\x00\xff"})) == {"blob": b"\x00\xff"}


def test_serde_errors_are_serialization_errors() -> None:
    json_serde: JsonSerde[object] = JsonSerde()
    with pytest.raises(SerializationError, match="JSON cannot encode"):
        json_serde.serialize({1, 2})
    with pytest.raises(SerializationError, match="invalid JSON"):
        JsonSerde().deserialize(b"{nope")
    with pytest.raises(SerializationError, match="invalid msgpack"):
        MsgpackSerde().deserialize(b"\xc1")


def test_backoff_doubles_and_caps_without_jitter() -> None:
    backoff = Backoff(base=1, factor=2, max=10, jitter=0)
    assert [backoff.delay(n) for n in range(1, 7)] == [1, 2, 4, 8, 10, 10]
    assert backoff.delay(10_000) == 10, "huge attempts must not overflow"


def test_backoff_jitter_stays_in_range() -> None:
    backoff = Backoff(base=1, factor=2, max=100, jitter=0.5)
    rng = random.Random(7)
    delays = [backoff.delay(3, rng) for _ in range(200)]
    assert all(2.0 <= d <= 4.0 for d in delays)
    assert max(delays) - min(delays) > 1.0, "jitter spreads the delays"


def test_retry_backoff_forms() -> None:
    assert backoff_from(0)(5) == 0
    assert 0.5 <= backoff_from(timedelta(seconds=1))(1) <= 1.0
    assert backoff_from(lambda attempt: attempt * 10.0)(3) == 30.0
    with pytest.raises(ValueError, match="factor"):
        Backoff(factor=0.5)
    with pytest.raises(ValueError, match="jitter"):
        Backoff(jitter=2)


def test_envelope_round_trip_and_corruption() -> None:
    envelope = Envelope(b"payload", 1_700_000_000_000, 3, 60_000)
    assert decode_envelope(encode_envelope(envelope)) == envelope
    with pytest.raises(CorruptDataError, match="not valid msgpack"):
        decode_envelope(b"\xc1")
    with pytest.raises(CorruptDataError, match="not valid msgpack"):
        decode_envelope(encode_envelope(envelope)[:-3])  # truncated
    with pytest.raises(CorruptDataError, match="wrong type"):
        decode_envelope(b"\x95\x01\xa1x\x02\x03\x04")  # payload is a str, not bytes
    with pytest.raises(CorruptDataError, match="unknown layout"):
        decode_envelope(b"\x93\x01\x02\x03")


@pytest.mark.parametrize("job_id", ["user:42", "a b {c}", "ünïcødé", "x" * 1024])
def test_events_round_trip_any_id(job_id: str) -> None:
    event = StorageEvent(EventKind.COMPLETED, job_id, 123, "worker:1", b"\x00result")
    assert decode_event(encode_event(event)) == event
    with pytest.raises(CorruptDataError):
        decode_event(b"garbage")


def test_storage_from_url_memory() -> None:
    assert "memory" in available_schemes()
    assert isinstance(storage_from_url("memory://"), MemoryStorage)


@pytest.mark.parametrize(
    ("url", "error", "match"),
    [
        ("nothing-here", ValueError, "has no scheme"),
        ("ftp://host/x", ValueError, r"no storage backend handles ftp://.*installed: "),
        ("memory://?colour=blue", ValueError, "unknown storage url option"),
        ("memory://?colour=blue&token=s3cret", ValueError, r"in 'memory://\?colour=blue&token=\*\*\*'"),
        (
            "redis://u:s3cret@localhost:99999/0",
            ValueError,
            r"bad storage url 'redis://u:\*\*\*@localhost:99999/0': its port",
        ),
        (42, TypeError, "storage url must be a str"),
    ],
)
def test_storage_from_url_errors(url: object, error: type, match: str) -> None:
    with pytest.raises(error, match=match):
        storage_from_url(url)  # type: ignore[arg-type]


def test_msgpack_maps_with_int_keys_round_trip() -> None:
    serde: MsgpackSerde[object] = MsgpackSerde()
    assert serde.deserialize(serde.serialize({1: "one", 2: [3]})) == {1: "one", 2: [3]}
