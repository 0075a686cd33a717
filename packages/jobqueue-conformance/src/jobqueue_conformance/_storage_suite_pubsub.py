"""Storage suite, notifications group: the events, done and control channels."""

from __future__ import annotations

from jobqueue.storage import Channel, EventKind, Storage, now_ms, rules

from ._helpers import (
    CLOCK_SKEW_MS,
    LEASE_MS,
    LONG_TTL_MS,
    claim,
    next_event,
    require_control_channel,
    wait_until,
)

__all__ = ["StoragePubSubTests"]


class StoragePubSubTests:
    """``subscribe`` and what each operation publishes."""

    async def test_events_channel_reports_the_life_cycle_in_order(self, storage: Storage) -> None:
        async with storage.subscribe(Channel.EVENTS) as events:
            before = now_ms()
            await claim(storage, "job-1", "worker-1")
            await storage.complete("job-1", "worker-1", b"r", LONG_TTL_MS)
            seen = [await next_event(events, message=f"rule: events carries {kind}") for kind in range(3)]
        assert [(e.kind, e.job_id) for e in seen] == [
            (EventKind.ENQUEUED, "job-1"),
            (EventKind.PROCESSING, "job-1"),
            (EventKind.COMPLETED, "job-1"),
        ], "rule: events publishes enqueued, processing, completed in order"
        assert seen[1].worker_id == "worker-1", "rule: a processing event names the worker"
        assert seen[2].worker_id == "worker-1", "rule: a completed event names the worker"
        assert all(abs(e.at - before) < CLOCK_SKEW_MS for e in seen), "rule: event.at is epoch milliseconds"

    async def test_events_channel_reports_retries_releases_failures_and_cancels(
        self, storage: Storage
    ) -> None:
        async with storage.subscribe(Channel.EVENTS) as events:
            await claim(storage, "job-1", "worker-1")
            await storage.retry("job-1", "worker-1", b"e", 0)
            await storage.dequeue("worker-1", lease_ms=LEASE_MS, timeout_ms=2_000)
            await storage.release("job-1", "worker-1")
            await storage.dequeue("worker-1", lease_ms=LEASE_MS, timeout_ms=0)
            await storage.fail("job-1", "worker-1", b"e", LONG_TTL_MS)
            await storage.enqueue("job-2", b"m")
            await storage.cancel("job-2")
            kinds = [(await next_event(events, message=f"rule: events carries event #{i}")) for i in range(9)]
        assert [(e.kind, e.job_id) for e in kinds] == [
            (EventKind.ENQUEUED, "job-1"),
            (EventKind.PROCESSING, "job-1"),
            (EventKind.FAILING, "job-1"),
            (EventKind.PROCESSING, "job-1"),
            (EventKind.REQUEUED, "job-1"),
            (EventKind.PROCESSING, "job-1"),
            (EventKind.FAILED, "job-1"),
            (EventKind.ENQUEUED, "job-2"),
            (EventKind.CANCELLED, "job-2"),
        ], "rule: retry publishes failing, release requeued, fail failed, cancel cancelled, in order"

    async def test_stalled_jobs_publish_stalled_then_requeued(self, storage: Storage) -> None:
        await claim(storage, "job-1", "worker-1", lease_ms=1)
        async with storage.subscribe(Channel.EVENTS) as events:

            async def recovered() -> bool:
                return bool((await storage.recover_stalled()).stalled)

            await wait_until(recovered, message="rule: recover_stalled recovers a job whose lease ran out")
            first = await next_event(events, message="rule: recover_stalled publishes stalled")
            second = await next_event(events, message="rule: recover_stalled publishes requeued")
        assert (first.kind, first.job_id, first.worker_id) == (EventKind.STALLED, "job-1", "worker-1"), (
            "rule: recover_stalled publishes stalled naming the worker that lost the job"
        )
        assert (second.kind, second.job_id) == (EventKind.REQUEUED, "job-1"), (
            "rule: recover_stalled publishes requeued after stalled"
        )

    async def test_worker_events_report_joining_and_leaving(self, storage: Storage) -> None:
        async with storage.subscribe(Channel.EVENTS) as events:
            await storage.register_worker("worker-1", LONG_TTL_MS)
            await storage.register_worker("worker-1", LONG_TTL_MS)  # a renewal
            await storage.renew_leases("worker-1", [], LEASE_MS)  # a heartbeat that does not register
            await storage.unregister_worker("worker-1")
            await storage.unregister_worker("worker-1")  # no longer registered
            await storage.register_worker("worker-1", LONG_TTL_MS)  # joins again
            seen = [await next_event(events, message=f"rule: worker events, event #{i}") for i in range(3)]
        assert [(e.kind, e.job_id, e.worker_id) for e in seen] == [
            (EventKind.WORKER_JOINED, "", "worker-1"),
            (EventKind.WORKER_LEFT, "", "worker-1"),
            (EventKind.WORKER_JOINED, "", "worker-1"),
        ], (
            "rule: worker_joined is published when a worker registers and was not registered, never on a "
            "renewal (rules.register_worker); worker_left when a registered worker unregisters "
            "(rules.unregister_worker); both name the worker, with job_id ''"
        )

    async def test_done_channel_carries_small_results_inline(self, storage: Storage) -> None:
        async with storage.subscribe(Channel.DONE) as done:
            await claim(storage, "job-1", "worker-1")
            await storage.complete("job-1", "worker-1", b"small result", LONG_TTL_MS)
            event = await next_event(done, message="rule: complete publishes completed on done")
        assert (event.kind, event.job_id) == (EventKind.COMPLETED, "job-1"), (
            "rule: done carries terminal outcomes only (not enqueued or processing)"
        )
        assert event.data == b"small result", "rule: a small result rides along on the done event"

    async def test_done_channel_carries_small_errors_inline(self, storage: Storage) -> None:
        async with storage.subscribe(Channel.DONE) as done:
            await claim(storage, "job-1", "worker-1")
            await storage.retry("job-1", "worker-1", b"not yet", 0)
            await storage.dequeue("worker-1", lease_ms=LEASE_MS, timeout_ms=2_000)
            await storage.fail("job-1", "worker-1", b"the error", LONG_TTL_MS)
            event = await next_event(done, message="rule: fail publishes failed on done")
        assert (event.kind, event.job_id) == (EventKind.FAILED, "job-1"), (
            "rule: done carries terminal outcomes only (not failing)"
        )
        assert event.data == b"the error", "rule: a small error rides along on the done event"

    async def test_done_channel_inlines_results_up_to_the_limit(self, storage: Storage) -> None:
        at_limit = b"a" * rules.INLINE_RESULT_LIMIT
        too_big = b"b" * (rules.INLINE_RESULT_LIMIT + 1)
        async with storage.subscribe(Channel.DONE) as done:
            await claim(storage, "at-limit", "worker-1")
            await storage.complete("at-limit", "worker-1", at_limit, LONG_TTL_MS)
            await claim(storage, "too-big", "worker-1")
            await storage.complete("too-big", "worker-1", too_big, LONG_TTL_MS)
            first = await next_event(done, message="rule: complete publishes completed on done")
            second = await next_event(done, message="rule: complete publishes completed on done")
        assert first.data == at_limit, "rule: a result of INLINE_RESULT_LIMIT bytes rides along"
        assert second.job_id == "too-big" and second.data is None, (
            "rule: a result over INLINE_RESULT_LIMIT bytes is not inlined on done"
        )
        record = await storage.get("too-big")
        assert record is not None and record.result == too_big, "rule: a large result is stored whole"

    async def test_done_channel_reports_cancellations(self, storage: Storage) -> None:
        async with storage.subscribe(Channel.DONE) as done:
            await storage.enqueue("job-1", b"m")
            await storage.cancel("job-1")
            event = await next_event(done, message="rule: cancel publishes cancelled on done")
        assert (event.kind, event.job_id) == (EventKind.CANCELLED, "job-1"), "rule: cancel publishes on done"

    async def test_control_channel_carries_abort_requests(self, storage: Storage) -> None:
        require_control_channel(storage)
        async with storage.subscribe(Channel.CONTROL) as control:
            await claim(storage, "job-1", "worker-1")
            await storage.request_abort("job-1")
            event = await next_event(control, message="rule: request_abort publishes abort on control")
        assert (event.kind, event.job_id) == (EventKind.ABORT, "job-1"), (
            "rule: control carries abort requests only"
        )

    async def test_set_progress_publishes_progress_with_the_data(self, storage: Storage) -> None:
        await claim(storage, "job-1", "worker-1")
        async with storage.subscribe(Channel.EVENTS) as events:
            await storage.set_progress("job-1", "worker-1", b"half way")
            await storage.set_progress("job-1", "worker-2", b"not mine")
            await storage.complete("job-1", "worker-1", b"r", LONG_TTL_MS)
            first = await next_event(events, message="rule: set_progress publishes progress")
            second = await next_event(events, message="rule: complete publishes completed")
        assert (first.kind, first.job_id, first.data) == (EventKind.PROGRESS, "job-1", b"half way"), (
            "rule: set_progress publishes a progress event carrying the data"
        )
        assert second.kind == EventKind.COMPLETED, "rule: a refused set_progress publishes nothing"

    async def test_a_subscriber_to_two_channels_gets_an_event_once_per_channel(
        self, storage: Storage
    ) -> None:
        await claim(storage, "job-1", "worker-1")
        async with storage.subscribe(Channel.EVENTS, Channel.DONE) as events:
            await storage.complete("job-1", "worker-1", b"r", LONG_TTL_MS)
            await storage.enqueue("job-2", b"m")
            seen = [await next_event(events, message=f"rule: events #{i} is delivered") for i in range(3)]
        assert sorted((e.kind, e.job_id) for e in seen) == [
            (EventKind.COMPLETED, "job-1"),
            (EventKind.COMPLETED, "job-1"),
            (EventKind.ENQUEUED, "job-2"),
        ], "rule: a subscriber to several channels receives an event once per channel it was published on"

    async def test_events_before_subscribing_are_not_delivered(self, storage: Storage) -> None:
        await storage.enqueue("before", b"m")
        async with storage.subscribe(Channel.EVENTS) as events:
            await storage.enqueue("after", b"m")
            event = await next_event(events, message="rule: events published after subscribe are delivered")
        assert event.job_id == "after", "rule: events published before subscribe are not delivered"

    async def test_every_subscriber_gets_every_event(self, storage: Storage) -> None:
        async with storage.subscribe(Channel.EVENTS) as first, storage.subscribe(Channel.EVENTS) as second:
            await storage.enqueue("job-1", b"m")
            one = await next_event(first, message="rule: every subscriber receives the event")
            two = await next_event(second, message="rule: every subscriber receives the event")
        assert one.job_id == two.job_id == "job-1", "rule: every subscriber receives the event"
