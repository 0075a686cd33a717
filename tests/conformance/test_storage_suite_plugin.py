"""The conformance plugin tested from outside, with pytester: what a backend author sees."""

from __future__ import annotations

import textwrap

import pytest

pytest_plugins = ["pytester"]

pytestmark = pytest.mark.memory

INI = """
[pytest]
asyncio_default_fixture_loop_scope = function
filterwarnings = error
addopts = --strict-markers -p no:cacheprovider
"""

HEADER = """
import asyncio
from dataclasses import replace

import pytest
import pytest_asyncio
from jobqueue import EnqueueOutcome, MemoryStorage, Storage
from jobqueue_conformance import StorageSuite
"""

FIXTURE = """
    @pytest_asyncio.fixture
    async def storage(self):
        async with {cls}() as storage:
            yield storage
"""


def suite_module(storage_class: str, body: str = "") -> str:
    """A test module: an optional storage class, then a StorageSuite subclass using it."""
    return (
        HEADER
        + textwrap.dedent(body)
        + "\n\nclass TestStorage(StorageSuite):"
        + FIXTURE.format(cls=storage_class)
    )


@pytest.fixture
def conformance(pytester: pytest.Pytester) -> pytest.Pytester:
    pytester.makeini(INI)
    return pytester


def test_a_correct_storage_passes_the_whole_suite(conformance: pytest.Pytester) -> None:
    conformance.makepyfile(suite_module("MemoryStorage"))
    result = conformance.runpytest("-q")
    outcomes = result.parseoutcomes()
    assert result.ret == pytest.ExitCode.OK, result.stdout.str()
    assert outcomes.get("passed", 0) >= 80, outcomes
    assert set(outcomes) == {"passed"}, f"nothing skipped or failed for a complete storage: {outcomes}"


def test_the_marker_selects_the_suite_under_strict_markers(conformance: pytest.Pytester) -> None:
    conformance.makepyfile(suite_module("MemoryStorage") + "\n\ndef test_unrelated():\n    pass\n")
    result = conformance.runpytest("-m", "jobqueue_conformance", "-k", "first_in_first_out or exactly_one")
    result.assert_outcomes(passed=2, deselected=result.parseoutcomes()["deselected"])
    assert "test_unrelated" not in result.stdout.str()


BROKEN = {
    "enqueue-accepts-duplicates": (
        """
        class BrokenStorage(MemoryStorage):
            async def enqueue(self, job_id, message, *, delay_ms=0):
                await self.delete(job_id)  # forgets the job it replaces: no dedup at all
                return await super().enqueue(job_id, message, delay_ms=delay_ms)
        """,
        "exactly_one",
        "rule: enqueue-with-dedup accepts exactly one of concurrent enqueues of one id (accepted 50 of 50)",
    ),
    "dequeue-polls-slowly": (
        """
        class BrokenStorage(MemoryStorage):
            async def dequeue(self, worker_id, *, lease_ms, timeout_ms, limit=1):
                loop = asyncio.get_running_loop()
                deadline = loop.time() + timeout_ms / 1000
                while True:
                    claims = await super().dequeue(worker_id, lease_ms=lease_ms, timeout_ms=0, limit=limit)
                    if claims or loop.time() >= deadline:
                        return claims
                    await asyncio.sleep(0.5)  # a polling backend
        """,
        "wakes_when_a_job_is_enqueued",
        "rule: a blocked dequeue wakes as soon as a job is enqueued (took *",
    ),
    "results-never-expire": (
        """
        class BrokenStorage(MemoryStorage):
            async def complete(self, job_id, worker_id, result, ttl_ms):
                return await super().complete(job_id, worker_id, result, 10**9)
        """,
        "expires_after_its_ttl and completed",
        "*rule: a completed record expires after its ttl_ms (still not true after *",
    ),
    "stalled-jobs-go-to-the-tail": (
        """
        class BrokenStorage(MemoryStorage):
            async def recover_stalled(self):
                stalled = await super().recover_stalled()
                for item in stalled:
                    state = self._state()
                    state.ready.remove(item.id)
                    state.ready.append(item.id)
                return stalled
        """,
        "recover_stalled_requeues",
        "rule: a stalled job goes back to the head of the queue",
    ),
    "namespaces-share-events": (
        """
        class BrokenStorage(MemoryStorage):
            def namespace(self, name):
                view = super().namespace(name)
                view._store.state(name).subscribers = self._store.state(self.name).subscribers
                return view
        """,
        "events_are_isolated",
        "rule: namespaces are isolated: events of one are not heard in another",
    ),
}


@pytest.mark.parametrize("case", list(BROKEN))
def test_a_broken_storage_fails_naming_the_rule(conformance: pytest.Pytester, case: str) -> None:
    body, selection, rule = BROKEN[case]
    conformance.makepyfile(suite_module("BrokenStorage", body))
    result = conformance.runpytest("-k", selection)
    assert result.parseoutcomes().get("failed", 0) >= 1, result.stdout.str()
    result.stdout.fnmatch_lines([f"*{rule}*"])


def test_a_storage_without_leader_lock_skips_those_tests_with_the_reason(
    conformance: pytest.Pytester,
) -> None:
    body = """
    class NoLockStorage(Storage):
        # Delegates the whole Storage contract to a MemoryStorage, without the LeaderLock capability.
        def __init__(self, inner=None):
            self._inner = inner or MemoryStorage()

        @property
        def name(self):
            return self._inner.name

        def namespace(self, name):
            return NoLockStorage(self._inner.namespace(name))

        def subscribe(self, *channels):
            return self._inner.subscribe(*channels)

    def _delegate(method):
        async def call(self, *args, **kwargs):
            return await getattr(self._inner, method)(*args, **kwargs)
        return call

    for _method in Storage.__abstractmethods__ - {"name", "namespace", "subscribe"}:
        setattr(NoLockStorage, _method, _delegate(_method))
    NoLockStorage.__abstractmethods__ = frozenset()
    """
    conformance.makepyfile(suite_module("NoLockStorage", body))
    result = conformance.runpytest("-rs")
    outcomes = result.parseoutcomes()
    assert "failed" not in outcomes and "errors" not in outcomes, result.stdout.str()
    assert outcomes.get("skipped") == 5 and outcomes.get("passed", 0) >= 75, outcomes
    result.stdout.fnmatch_lines(["*storage does not implement the LeaderLock capability*"])


def test_a_subclass_without_a_storage_fixture_is_told_what_to_write(conformance: pytest.Pytester) -> None:
    conformance.makepyfile(HEADER + "\n\nclass TestStorage(StorageSuite):\n    pass\n")
    result = conformance.runpytest("-k", "first_in_first_out")
    result.assert_outcomes(errors=1, deselected=result.parseoutcomes()["deselected"])
    result.stdout.fnmatch_lines(["*TestStorage must define an async `storage` fixture*"])
