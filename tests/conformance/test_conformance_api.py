"""The conformance package's public surface is pinned."""

import jobqueue_conformance


def test_all_is_pinned() -> None:
    assert set(jobqueue_conformance.__all__) == {"QueueSuite", "StorageSuite", "next_event", "wait_until"}
