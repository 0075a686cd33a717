"""The conformance plugin tested from outside, with pytester: what a backend author sees.

The storages under test derive from the worked example (``examples/sqlite_storage``):
each broken variant breaks one rule, and the suite must fail naming it.
"""

from __future__ import annotations

import textwrap

import pytest

pytest_plugins = ["pytester"]

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
from jobqueue.storage import EnqueueOutcome, Finish, FinishKind, Storage, now_ms, rules
from jobqueue_conformance import StorageSuite

from examples.sqlite_storage import SqliteStorage
"""

FIXTURE = """
    @pytest.fixture
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
    """A fresh directory whose pytest config is strict (markers, warnings), in pytest-asyncio's strict mode."""
    pytester.makeini(INI)
    return pytester


@pytest.mark.timeout(600)  # the whole suite, on a loaded machine
def test_a_correct_storage_passes_the_whole_suite(conformance: pytest.Pytester) -> None:
    conformance.makepyfile(suite_module("SqliteStorage"))
    result = conformance.runpytest("-q")
    outcomes = result.parseoutcomes()
    assert result.ret == pytest.ExitCode.OK, result.stdout.str()
    assert outcomes.get("passed", 0) >= 100, outcomes
    assert set(outcomes) == {"passed"}, f"nothing skipped or failed for a complete storage: {outcomes}"


def test_a_pytest_asyncio_fixture_works_too(conformance: pytest.Pytester) -> None:
    module = suite_module("SqliteStorage").replace("@pytest.fixture", "@pytest_asyncio.fixture")
    conformance.makepyfile("import pytest_asyncio\n" + module)
    result = conformance.runpytest("-k", "first_in_first_out or exactly_one")
    result.assert_outcomes(passed=2, deselected=result.parseoutcomes()["deselected"])


def test_the_marker_selects_the_suite_under_strict_markers(conformance: pytest.Pytester) -> None:
    conformance.makepyfile(suite_module("SqliteStorage") + "\n\ndef test_unrelated():\n    pass\n")
    result = conformance.runpytest("-m", "jobqueue_conformance", "-k", "first_in_first_out or exactly_one")
    result.assert_outcomes(passed=2, deselected=result.parseoutcomes()["deselected"])
    assert "test_unrelated" not in result.stdout.str()


BROKEN = {
    "enqueue-accepts-duplicates": (
        """
        class BrokenStorage(SqliteStorage):
            async def _enqueue(self, jobs):
                for job in jobs:  # forgets the job it replaces: no dedup at all
                    self._ns("DELETE FROM jobs WHERE ns = ? AND id = ?", job.id)
                return await super()._enqueue(jobs)
        """,
        "exactly_one",
        "rule: enqueue-with-dedup accepts exactly one of concurrent enqueues of one id (accepted 50 of 50)",
    ),
    "dequeue-polls-slowly": (
        """
        class BrokenStorage(SqliteStorage):
            async def _claim(self, worker_id, lease_ms, limit, timeout_ms):
                loop = asyncio.get_running_loop()
                deadline = loop.time() + timeout_ms / 1000
                while True:
                    claims = await super()._claim(worker_id, lease_ms, limit, 0)
                    if claims or loop.time() >= deadline:
                        return claims
                    await asyncio.sleep(5.0)  # a polling backend (slower than the suite's 2 s bound)
        """,
        "wakes_when_a_job_is_enqueued",
        "rule: a blocked dequeue wakes as soon as a job is enqueued (took *",
    ),
    "results-never-expire": (
        """
        class BrokenStorage(SqliteStorage):
            async def _finish(self, worker_id, outcomes):
                forever = [replace(o, ms=10**9) if o.kind is FinishKind.COMPLETE else o for o in outcomes]
                return await super()._finish(worker_id, forever)
        """,
        "expires_after_its_ttl and completed",
        "*rule: a completed record expires after its ttl_ms (still not true after *",
    ),
    "stalled-jobs-go-to-the-tail": (
        """
        class BrokenStorage(SqliteStorage):
            async def _recover_stalled(self):
                recovery = await super()._recover_stalled()
                for item in recovery.stalled:
                    self._ns("UPDATE jobs SET seq = ?3 WHERE ns = ?1 AND id = ?2", item.id, 10**9)
                return recovery
        """,
        "recover_stalled_requeues",
        "rule: a stalled job goes back to the head of the queue",
    ),
    "namespaces-share-events": (
        """
        class BrokenStorage(SqliteStorage):
            def _publish(self, event):
                for name in list(self._shared.subscribers):  # every namespace hears every event
                    SqliteStorage._publish(self._view(name), event)
        """,
        "events_are_isolated",
        "rule: namespaces are isolated: events of one are not heard in another",
    ),
    "abort-flag-survives-the-attempt": (
        """
        class BrokenStorage(SqliteStorage):
            async def _finish(self, worker_id, outcomes):
                flagged = [o.job_id for o in outcomes if (r := self._get(o.job_id, now_ms())) and r.abort_requested]
                done = await super()._finish(worker_id, outcomes)
                for job_id in flagged:
                    self._ns("UPDATE jobs SET abort_requested = 1 WHERE ns = ? AND id = ?", job_id)
                return done
        """,
        "abort_flag_is_cleared and retry",
        "rule: the abort flag is cleared whenever an attempt ends (retry)",
    ),
    "lease-moves-backward": (
        """
        class BrokenStorage(SqliteStorage):
            async def _heartbeat(self, worker_id, ttl_ms, job_ids, lease_ms, info):
                revoked = await super()._heartbeat(worker_id, ttl_ms, job_ids, lease_ms, info)
                for job_id in job_ids:
                    until = now_ms() + lease_ms
                    self._ns("UPDATE jobs SET lease_until = ?3 WHERE ns = ?1 AND id = ?2", job_id, until)
                return revoked
        """,
        "only_moves_forward",
        "rule: a lease only moves forward: renewing with a shorter lease keeps the longer deadline",
    ),
    "priorities-ignored": (
        """
        class BrokenStorage(SqliteStorage):
            async def _enqueue(self, jobs):
                return await super()._enqueue([replace(job, priority=0) for job in jobs])
        """,
        "higher_priority_is_claimed_first",
        "rule: priorities: higher priority is claimed first, FIFO within a priority",
    ),
    "duplicates-inside-a-batch-accepted": (
        """
        class BrokenStorage(SqliteStorage):
            async def _enqueue(self, jobs):
                now = now_ms()
                live = {job.id: self._get(job.id, now) for job in jobs}  # looked up once, before the batch
                outcomes = []
                for job in jobs:
                    if live[job.id] is not None:
                        outcomes.append(EnqueueOutcome(False, live[job.id]))
                    else:
                        self._apply(job.id, rules.new_record(job, now), now)
                        outcomes.append(EnqueueOutcome(True))
                return outcomes
        """,
        "dedups_inside_one_batch",
        "rule: enqueue_many dedups per id, including duplicates inside one batch",
    ),
    "progress-not-stored": (
        """
        class BrokenStorage(SqliteStorage):
            async def _set_progress(self, job_id, worker_id, data):
                return rules.owned(self._get(job_id, now_ms()), worker_id)  # says yes, stores nothing
        """,
        "stores_the_value_on_the_record",
        "rule: set_progress stores JobRecord.progress",
    ),
    "registrations-never-lapse": (
        """
        class BrokenStorage(SqliteStorage):
            async def _list_workers(self):
                self._ns("UPDATE workers SET expires_at = ?2 WHERE ns = ?1", now_ms() + 60_000)
                return await super()._list_workers()
        """,
        "disappears_within_its_ttl",
        "rule: a worker's registration disappears at most ttl_ms (+1000 ms) after its last heartbeat*",
    ),
    "emptied-namespace-still-listed": (
        """
        class BrokenStorage(SqliteStorage):
            async def _list_namespaces(self):
                return {*(await super()._list_namespaces()), self.name}
        """,
        "nothing_is_left",
        "rule: physical cleanliness: an emptied namespace is not listed by list_namespaces",
    ),
}


@pytest.mark.parametrize("case", list(BROKEN))
def test_a_broken_storage_fails_naming_the_rule(conformance: pytest.Pytester, case: str) -> None:
    body, selection, rule = BROKEN[case]
    conformance.makepyfile(suite_module("BrokenStorage", body))
    result = conformance.runpytest("-k", selection)
    assert result.parseoutcomes().get("failed", 0) >= 1, result.stdout.str()
    result.stdout.fnmatch_lines([f"*{rule}*"])


OVERRIDE = """
    async def assert_namespace_empty(self, storage):
        await storage.recover_stalled()  # the reaper's sweep
        rows = storage._shared.db.execute("SELECT count(*) FROM jobs WHERE ns = ?", (storage.name,)).fetchone()
        assert rows == (0,), "rule: physical cleanliness: no row is left once every result has expired"
"""


def test_a_backend_checks_physical_cleanliness_by_overriding_the_hook(conformance: pytest.Pytester) -> None:
    leaky = """
    class LeakyStorage(SqliteStorage):
        def _sweep(self, now):  # never deletes expired rows: they stay invisible, but stored forever
            pass
    """
    conformance.makepyfile(suite_module("LeakyStorage", leaky) + OVERRIDE)
    result = conformance.runpytest("-k", "nothing_is_left")
    result.assert_outcomes(failed=1, deselected=result.parseoutcomes()["deselected"])
    result.stdout.fnmatch_lines(
        ["*rule: physical cleanliness: no row is left once every result has expired*"]
    )
    conformance.makepyfile(suite_module("SqliteStorage") + OVERRIDE)
    result = conformance.runpytest("-k", "nothing_is_left")
    result.assert_outcomes(passed=1, deselected=result.parseoutcomes()["deselected"])


BARE = """
class BareStorage(Storage):
    # The required contract only: every primitive delegated to the example, no capability declared.
    def __init__(self, inner=None):
        self._inner = inner or SqliteStorage()

    @property
    def name(self):
        return self._inner.name

    def _view(self, name):
        return BareStorage(self._inner.namespace(name))

    def _subscribe(self, channels):
        return self._inner._subscribe(channels)

def _delegate(method):
    async def call(self, *args, **kwargs):
        return await getattr(self._inner, method)(*args, **kwargs)
    return call

for _method in Storage.__abstractmethods__ - {"name", "_view", "_subscribe"}:
    setattr(BareStorage, _method, _delegate(_method))
BareStorage.__abstractmethods__ = frozenset()
"""


@pytest.mark.timeout(600)  # both whole suites, on a loaded machine
def test_a_storage_without_capabilities_skips_those_tests_naming_them(conformance: pytest.Pytester) -> None:
    queue_suite = "\n\nfrom jobqueue_conformance import QueueSuite\n\nclass TestQueue(QueueSuite):"
    conformance.makepyfile(
        suite_module("BareStorage", BARE) + queue_suite + FIXTURE.format(cls="BareStorage")
    )
    result = conformance.runpytest("-rs")
    outcomes = result.parseoutcomes()
    assert "failed" not in outcomes and "errors" not in outcomes, result.stdout.str()
    assert outcomes.get("skipped", 0) >= 20 and outcomes.get("passed", 0) >= 75, outcomes
    result.stdout.fnmatch_lines_random(
        [
            "*BareStorage lacks the optional capability 'monitoring' (jobqueue.storage.Monitoring)*",
            "*BareStorage lacks the optional capability 'leader_lock' (jobqueue.storage.LeaderLock)*",
            "*BareStorage lacks the optional capability 'control_channel' (jobqueue.storage.ControlChannel)*",
        ]
    )


def test_a_subclass_without_a_storage_fixture_is_told_what_to_write(conformance: pytest.Pytester) -> None:
    conformance.makepyfile(HEADER + "\n\nclass TestStorage(StorageSuite):\n    pass\n")
    result = conformance.runpytest("-k", "first_in_first_out")
    result.assert_outcomes(errors=1, deselected=result.parseoutcomes()["deselected"])
    result.stdout.fnmatch_lines(["*TestStorage must define an async `storage` fixture*"])
