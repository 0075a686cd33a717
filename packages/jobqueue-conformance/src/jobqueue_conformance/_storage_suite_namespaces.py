"""Storage suite, namespace group: views, isolation, shared connections."""

from __future__ import annotations

from jobqueue import JobState
from jobqueue.storage import DEFAULT_NAMESPACE, Channel, Storage

from ._helpers import LEASE_MS, monitoring_of, next_event, require_monitoring

__all__ = ["StorageNamespaceTests"]


class StorageNamespaceTests:
    """``name``, ``namespace``, and the isolation of jobs, events and workers."""

    async def test_the_fixture_storage_is_the_default_namespace(self, storage: Storage) -> None:
        assert storage.name == DEFAULT_NAMESPACE, "rule: the storage fixture yields the default namespace"
        assert storage.namespace("other").name == "other", "rule: namespace(name) is bound to name"
        assert storage.namespace("other").namespace(DEFAULT_NAMESPACE).name == DEFAULT_NAMESPACE, (
            "rule: a view can return to the default namespace"
        )

    async def test_views_share_the_connection(self, storage: Storage) -> None:
        view = storage.namespace("other")
        await view.connect()
        await view.enqueue("job-1", b"m")
        await view.disconnect()
        assert (await storage.enqueue("job-1", b"m")).accepted, (
            "rule: connect/disconnect are ref-counted across views (a view's disconnect keeps others open)"
        )
        assert await storage.namespace("other").get("job-1") is not None, (
            "rule: namespace views share one store"
        )

    async def test_jobs_are_isolated(self, storage: Storage) -> None:
        async with storage.namespace("other") as other:
            assert (await storage.enqueue("job-1", b"default")).accepted, "rule: enqueue of a new id"
            assert (await other.enqueue("job-1", b"other")).accepted, (
                "rule: namespaces are isolated: one id can exist in each"
            )
            await storage.enqueue("only-default", b"m")
            claims = await other.dequeue("w", lease_ms=LEASE_MS, timeout_ms=0, limit=10)
            assert [(c.id, c.message) for c in claims] == [("job-1", b"other")], (
                "rule: namespaces are isolated: dequeue sees only its namespace's jobs"
            )
            assert await other.get("only-default") is None, "rule: namespaces are isolated: get"
            assert await other.cancel("only-default") is None, "rule: namespaces are isolated: cancel"
            here, there = monitoring_of(storage), monitoring_of(other)
            if here is not None and there is not None:
                assert (await here.counts())[JobState.QUEUED] == 2, "rule: namespaces are isolated: counts"
                page = await there.list_jobs()
                assert [r.id for r in page.records] == ["job-1"], "rule: namespaces are isolated: list_jobs"

    async def test_events_are_isolated(self, storage: Storage) -> None:
        async with storage.namespace("other") as other, storage.subscribe(Channel.EVENTS) as events:
            await other.enqueue("elsewhere", b"m")
            await other.register_worker("worker-elsewhere", 60_000)
            await storage.enqueue("here", b"m")
            event = await next_event(events, message="rule: enqueue publishes on its namespace")
        assert event.job_id == "here", "rule: namespaces are isolated: events of one are not heard in another"

    async def test_workers_are_isolated(self, storage: Storage) -> None:
        here = require_monitoring(storage)
        async with storage.namespace("other") as other:
            await other.register_worker("worker-1", 60_000)
            assert await here.list_workers() == [], "rule: namespaces are isolated: workers"
            there = require_monitoring(other)
            assert [w.id for w in await there.list_workers()] == ["worker-1"], "rule: a worker is listed"
