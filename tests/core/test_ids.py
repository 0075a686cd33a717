"""``new_id``, ``content_id`` and ``__version__``."""

from __future__ import annotations

import re
import subprocess
import sys
import threading
from importlib.metadata import version

import jobqueue
import pytest
from jobqueue import JsonSerde, MsgpackSerde, SerializationError, content_id, new_id


def test_new_ids_are_unique_and_time_ordered_within_a_process() -> None:
    ids = [new_id() for _ in range(20_000)]
    assert len(set(ids)) == len(ids)
    assert ids == sorted(ids)
    assert all(re.fullmatch(r"[0-9A-HJKMNP-TV-Z]{26}", job_id) for job_id in ids)


def test_new_ids_from_many_threads_are_unique() -> None:
    found: list[list[str]] = [[] for _ in range(8)]

    def make(slot: list[str]) -> None:
        slot.extend(new_id() for _ in range(2_000))

    threads = [threading.Thread(target=make, args=(slot,)) for slot in found]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    every = [job_id for slot in found for job_id in slot]
    assert len(set(every)) == len(every)
    assert all(slot == sorted(slot) for slot in found)


def test_new_ids_of_separate_processes_sort_by_time() -> None:
    code = "import jobqueue; print(jobqueue.new_id())"
    first = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    second = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    mine = new_id()
    assert first.stdout.strip() < second.stdout.strip() < mine


def test_content_id_is_a_stable_hash_of_the_encoded_payload() -> None:
    payload = {"user": 42, "report": "monthly"}
    assert content_id(payload) == content_id({"user": 42, "report": "monthly"})
    # pinned: the same payload gives the same id in every process and release
    assert content_id({"a": 1}) == "015abd7f5cc57a2dd94b7590f04ad8084273905ee33ec5cebeae62276a97f862"
    assert content_id(payload) != content_id({"user": 43, "report": "monthly"})
    assert content_id(payload, JsonSerde()) == content_id(payload)
    assert content_id(payload, MsgpackSerde()) != content_id(payload)
    assert len(content_id(b"x", MsgpackSerde())) == 64


def test_content_id_refuses_what_the_serde_cannot_encode() -> None:
    with pytest.raises(SerializationError, match="payload"):
        content_id({1, 2})


async def test_content_ids_deduplicate_equal_payloads() -> None:
    queue: jobqueue.Queue[dict[str, int], None] = jobqueue.Queue(jobqueue.MemoryStorage())
    async with queue:
        payload = {"invoice": 7}
        assert (await queue.enqueue(content_id(payload), payload)).status == "queued"
        assert (await queue.enqueue(content_id(payload), payload)).status == "duplicate"


def test_version_comes_from_the_package_metadata() -> None:
    assert jobqueue.__version__ == version("jobqueue-core")
