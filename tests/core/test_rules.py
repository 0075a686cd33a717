"""The rules of a job's life, as pure functions: every backend applies or mirrors these."""

from dataclasses import replace
from typing import Any

import pytest
from jobqueue import JobState
from jobqueue.storage import Channel, EventKind, Finish, JobRecord, NewJob, Revoked, rules

CancelAction = rules.CancelAction
Place = rules.Place

NOW = 1_000_000


def queued(job_id: str = "j", **changes: Any) -> JobRecord:
    step = rules.new_record(NewJob(job_id, b"m"), NOW)
    assert step.record is not None
    return replace(step.record, **changes)


def running(worker: str = "w", lease_ms: int = 1000, **changes: Any) -> JobRecord:
    step = rules.claim(queued(**changes), worker, NOW, lease_ms)
    assert step.record is not None
    return step.record


def test_a_new_job_is_queued_at_the_tail_or_scheduled() -> None:
    now_step = rules.new_record(NewJob("a", b"m", priority=3), NOW)
    later_step = rules.new_record(NewJob("b", b"m", delay_ms=500), NOW)
    assert (now_step.place, now_step.event) == (Place.TAIL, EventKind.ENQUEUED)
    assert now_step.record is not None and now_step.record.priority == 3
    assert later_step.place is Place.SCHEDULE
    assert later_step.record is not None and later_step.record.run_at == NOW + 500


def test_a_claim_counts_an_attempt_and_leases_the_job() -> None:
    record = running(lease_ms=2000)
    assert (record.state, record.worker_id, record.attempts, record.lease_until) == (
        JobState.PROCESSING,
        "w",
        1,
        NOW + 2000,
    )


@pytest.mark.parametrize(
    ("outcome", "state", "place"),
    [
        (Finish.complete("j", b"r", 10), JobState.COMPLETED, Place.NONE),
        (Finish.fail("j", b"e", 10), JobState.FAILED, Place.NONE),
        (Finish.retry("j", b"e", 10), JobState.FAILING, Place.SCHEDULE),
        (Finish.release("j"), JobState.QUEUED, Place.HEAD),
    ],
)
def test_every_end_of_an_attempt_clears_the_abort_flag_and_the_lease(
    outcome: Finish, state: JobState, place: rules.Place
) -> None:
    step = rules.finish(replace(running(), abort_requested=True), outcome, NOW + 1)
    assert step.record is not None and step.place is place
    assert step.record.state is state
    assert (
        not step.record.abort_requested and step.record.lease_until is None and step.record.worker_id is None
    )


def test_recovery_clears_the_abort_flag_and_requeues_at_the_head() -> None:
    record = replace(running(), abort_requested=True)
    assert rules.is_stalled(record, NOW + 1000) and not rules.is_stalled(record, NOW + 999)
    step = rules.recover(record, NOW + 1000)
    assert step.record is not None and not step.record.abort_requested
    assert (step.place, step.event, step.record.attempts) == (Place.HEAD, EventKind.STALLED, 1)


def test_release_does_not_count_the_attempt() -> None:
    step = rules.finish(running(), Finish.release("j"), NOW)
    assert step.record is not None and step.record.attempts == 0


def test_a_lease_only_moves_forward() -> None:
    record = running(lease_ms=60_000)
    step, reason = rules.renew(record, "w", NOW + 10, 500)
    assert step is None and reason is None, "a shorter renewal leaves the longer lease"
    step, _ = rules.renew(record, "w", NOW + 10, 120_000)
    assert step is not None and step.record is not None and step.record.lease_until == NOW + 120_010


def test_renew_reports_lost_and_aborted_jobs() -> None:
    assert rules.renew(running(), "other", NOW, 10)[1] is Revoked.LOST
    assert rules.renew(None, "w", NOW, 10)[1] is Revoked.LOST
    assert rules.renew(replace(running(), abort_requested=True), "w", NOW, 10)[1] is Revoked.ABORTED


@pytest.mark.parametrize(
    ("state", "abort", "action"),
    [
        (JobState.QUEUED, False, CancelAction.DELETE),
        (JobState.FAILING, False, CancelAction.DELETE),
        (JobState.QUEUED, True, CancelAction.DELETE),
        (JobState.PROCESSING, False, CancelAction.NOTHING),
        (JobState.PROCESSING, True, CancelAction.FLAG),
        (JobState.COMPLETED, False, CancelAction.NOTHING),
        (JobState.COMPLETED, True, CancelAction.NOTHING),
        (JobState.FAILED, False, CancelAction.CLEAR),
        (JobState.FAILED, True, CancelAction.NOTHING),
    ],
)
def test_the_cancel_and_abort_table(state: JobState, abort: bool, action: rules.CancelAction) -> None:
    assert rules.cancel_action(state, abort=abort) is action


def test_only_finished_states_can_be_purged() -> None:
    assert rules.purgeable([JobState.COMPLETED]) == {JobState.COMPLETED}
    with pytest.raises(ValueError, match="queued"):
        rules.purgeable([JobState.COMPLETED, JobState.QUEUED])


def test_reset_failed_clears_attempts_and_error() -> None:
    failed = rules.finish(running(), Finish.fail("j", b"e", 10), NOW).record
    step = rules.reset_failed(failed, NOW + 1)
    assert step is not None and step.record is not None
    assert (step.record.state, step.record.attempts, step.record.error, step.record.expires_at) == (
        JobState.QUEUED,
        0,
        None,
        None,
    )
    assert rules.reset_failed(running(), NOW) is None


def test_expired_records_are_invisible_and_deadlines_are_capped() -> None:
    done = rules.finish(running(), Finish.complete("j", b"r", 10), NOW).record
    assert done is not None
    assert rules.is_live(done, NOW + 9) and not rules.is_live(done, NOW + 10)
    assert rules.later(NOW, 10**30) == rules.MAX_DEADLINE_MS


def test_small_results_ride_along_and_large_ones_do_not() -> None:
    assert rules.inline(b"x" * rules.INLINE_RESULT_LIMIT) is not None
    assert rules.inline(b"x" * (rules.INLINE_RESULT_LIMIT + 1)) is None


def test_higher_priority_is_claimed_first_then_fifo() -> None:
    low, high = queued(priority=-1), queued(priority=5)
    order = sorted(
        [
            (rules.claim_order(low, 1), "low"),
            (rules.claim_order(high, 2), "high"),
            (rules.claim_order(high, 3), "high2"),
        ]
    )
    assert [name for _, name in order] == ["high", "high2", "low"]


def test_evolve_copies_every_field_and_changes_only_those_given() -> None:
    from dataclasses import fields

    record = running()
    assert rules.evolve(record) == record
    for field in fields(JobRecord):
        marker = object()
        changed = rules.evolve(record, **{field.name: marker})
        assert getattr(changed, field.name) is marker, f"evolve ignores {field.name}"


def test_a_worker_joins_unless_its_registration_was_live_and_leaves_only_if_it_was() -> None:
    joined, left = EventKind.WORKER_JOINED, EventKind.WORKER_LEFT
    assert rules.register_worker(None, NOW) is joined  # never registered, or unregistered
    assert rules.register_worker(NOW, NOW) is joined  # lapsed this very millisecond
    assert rules.register_worker(NOW + 1, NOW) is None  # a renewal
    assert rules.unregister_worker(NOW + 1, NOW) is left
    assert rules.unregister_worker(NOW, NOW) is None  # lapsed: it had left already
    assert rules.unregister_worker(None, NOW) is None
    assert joined.channels == left.channels == (Channel.EVENTS,)  # never on done: waiters ignore them
