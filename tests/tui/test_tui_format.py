"""What the dashboard shows for stored bytes, URLs and durations, and how it counts throughput."""

from __future__ import annotations

import json

import pytest
from jobqueue import MemoryStorage
from jobqueue.storage import EventKind, redact_url
from jobqueue_tui import DashboardApp
from jobqueue_tui._format import decode_bytes, decode_error, format_age, one_line
from jobqueue_tui._throughput import Throughput

from .tui_helpers import msgpack_bytes


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("redis://:s3cret@localhost:6379/0", "redis://:***@localhost:6379/0"),
        ("redis://alice:s3cret@localhost:6379/0?prefix=jq", "redis://alice:***@localhost:6379/0?prefix=jq"),
        ("rediss://s3cret@cache.example:6380", "rediss://***@cache.example:6380"),
        ("redis://localhost:6379/0", "redis://localhost:6379/0"),
        ("memory://", "memory://"),
        ("file:///var/lib/jobqueue", "file:///var/lib/jobqueue"),
        ("redis://h/0?password=s3cret&prefix=a", "redis://h/0?password=***&prefix=a"),
    ],
)
def test_the_dashboard_shows_urls_redacted(url: str, shown: str) -> None:
    """The header shows ``redact_url`` of the URL it was given (the one redaction of the project)."""
    assert DashboardApp(MemoryStorage(), url=url).display_url == shown
    assert "s3cret" not in redact_url(url)


def test_decode_bytes_prefers_json_then_msgpack_then_hex() -> None:
    as_json = decode_bytes(b'{"b": [1, 2], "a": "\xc3\xa9"}')
    assert as_json.kind == "json"
    assert json.loads(as_json.text) == {"a": "é", "b": [1, 2]}
    assert as_json.text.startswith('{\n  "a": "é"')  # indented, keys sorted, unicode kept

    as_msgpack = decode_bytes(msgpack_bytes({"id": 7, "raw": b"\x01\x02"}))
    assert as_msgpack.kind == "msgpack"
    assert json.loads(as_msgpack.text) == {"id": 7, "raw": "<2 bytes: 01 02>"}

    as_hex = decode_bytes(b"\x00\x01\x02\xff" * 5)  # msgpack: several objects, not one
    assert as_hex.kind == "hex"
    assert as_hex.text.splitlines() == ["00 01 02 ff " * 3 + "00 01 02 ff", "00 01 02 ff"]

    assert decode_bytes(b"").kind == "empty"
    assert decode_bytes(None).kind == "empty"


def test_one_line_decodes_like_a_result_on_one_line() -> None:
    assert one_line(None) == ""
    assert one_line(b"") == ""
    assert one_line(b'{"done": 40, "total": 100}') == "40/100"
    assert one_line(msgpack_bytes({"done": 2, "total": 5})) == "2/5"
    assert one_line(b'{"done": true, "total": 1}') == '{"done":true,"total":1}'
    assert one_line(b'{"stage": "upload",\n "pct": 40}') == '{"pct":40,"stage":"upload"}'
    assert one_line(b"0.5") == "0.5"
    assert one_line(msgpack_bytes(["a", 1])) == '["a",1]'
    assert one_line(b"\xc1\xff\x00\x01\x02\x03\x04\x05\x06") == "c1 ff 00 01 02 03 04 05 …"
    assert one_line(json.dumps("x" * 500).encode(), limit=10) == '"xxxxxxxxx'
    assert one_line(json.dumps("\u202e\x85").encode()) == '"\\u202e\\u0085"'


def test_decode_bytes_caps_huge_binary() -> None:
    shown = decode_bytes(b"\xc1" * 10_000)
    assert shown.kind == "hex"
    assert shown.text.endswith("... 5904 more bytes")
    assert len(shown.text.splitlines()) == 4096 // 16 + 1


def test_decode_error_reads_the_core_format_and_survives_garbage() -> None:
    error = decode_error(
        json.dumps(
            {"message": "boom", "type": "ValueError", "code": "MAX_RETRIES", "traceback": "tb"}
        ).encode()
    )
    assert (error.message, error.type, error.code, error.traceback) == (
        "boom",
        "ValueError",
        "MAX_RETRIES",
        "tb",
    )
    garbage = decode_error(b"\xff\x00")
    assert garbage.code == "UNREADABLE"
    assert garbage.message == "ff 00"
    partial = decode_error(b'{"message": "only a message"}')
    assert (partial.type, partial.code, partial.traceback) == ("Error", "", "")


@pytest.mark.parametrize(
    ("ms", "text"),
    [
        (0, "0s"),
        (999, "0s"),
        (12_500, "12s"),
        (245_000, "4m05s"),
        (3 * 3_600_000 + 12 * 60_000, "3h12m"),
        (2 * 86_400_000 + 4 * 3_600_000, "2d04h"),
        (-5_000, "in 5s"),
    ],
)
def test_format_age(ms: int, text: str) -> None:
    assert format_age(ms) == text


def test_throughput_counts_completed_and_failed_per_second() -> None:
    tracker = Throughput(window_s=60)
    start = 1_000_000_000_000
    tracker.record(EventKind.COMPLETED, start)
    tracker.record(EventKind.COMPLETED, start + 400)
    tracker.record(EventKind.FAILED, start + 900)
    tracker.record(EventKind.ENQUEUED, start + 900)  # not throughput
    tracker.record(EventKind.COMPLETED, start + 2_000)
    completed, failed = tracker.series(start + 2_500)
    assert len(completed) == len(failed) == 60
    assert completed[-3:] == [2.0, 0.0, 1.0]
    assert failed[-3:] == [1.0, 0.0, 0.0]
    assert tracker.totals() == (3, 1)
    done_rate, failed_rate = tracker.rate(start + 2_500, over_s=10)
    assert done_rate == pytest.approx(0.2)  # the current second is not counted yet
    assert failed_rate == pytest.approx(0.1)


def test_throughput_forgets_what_left_the_window() -> None:
    tracker = Throughput(window_s=10)
    tracker.record(EventKind.COMPLETED, 0)
    tracker.record(EventKind.FAILED, 5_000)
    assert tracker.totals() == (1, 1)
    completed, failed = tracker.series(12_000)
    assert sum(completed) == 0
    assert sum(failed) == 1
    assert tracker.totals() == (0, 1)
    tracker.clear()
    assert tracker.totals() == (0, 0)
    with pytest.raises(ValueError, match="window_s"):
        Throughput(window_s=0)
