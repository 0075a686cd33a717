"""after_execution: a hook that raises changes nothing that is stored."""

from typing import Any

import pytest
from jobqueue import ExecutionContext, Job, MemoryStorage, Queue

pytestmark = pytest.mark.memory


async def test_a_raising_hook_leaves_the_outcome_as_it_was() -> None:
    errors: list[BaseException] = []

    def hook(ctx: ExecutionContext[Any]) -> None:
        ctx.result = "rewritten"
        raise RuntimeError("hook bug")

    queue: Queue[Any, Any] = Queue(MemoryStorage(), after_execution=hook)
    queue.on("error", errors.append)

    @queue.execute
    async def handler(job: Job[Any]) -> str:
        return "original"

    async with queue:
        assert await queue.enqueue_and_wait("j", None, timeout=5) == "original"
    assert [str(e) for e in errors] == ["hook bug"]


async def test_an_async_hook_sees_every_attempt() -> None:
    seen: list[tuple[int, str]] = []

    async def hook(ctx: ExecutionContext[Any]) -> None:
        seen.append((ctx.attempt, ctx.status))

    queue: Queue[Any, Any] = Queue(MemoryStorage(), after_execution=hook, retry_backoff=0, max_attempts=2)

    @queue.execute
    async def handler(job: Job[Any]) -> int:
        if job.attempt == 1:
            raise ValueError("first")
        return job.attempt

    async with queue:
        assert await queue.enqueue_and_wait("j", None, timeout=5) == 2
    assert seen == [(1, "failing"), (2, "completed")]


def test_event_callbacks_are_typed_per_event() -> None:
    """mypy (run on the tests in CI) checks each callback against its event; an unused ignore fails it."""
    queue: Queue[int, str] = Queue(MemoryStorage())

    def on_completed(job_id: str, result: str) -> None:
        seen.append((job_id, result))

    def on_enqueued(job_id: str) -> None:
        seen.append((job_id, ""))

    seen: list[tuple[str, str]] = []
    queue.on("completed", on_completed)
    queue.on("failing", on_enqueued)  # type: ignore[call-overload]  # failing passes (id, error, attempt, delay)
    with pytest.raises(ValueError, match="unknown event"):
        queue.on("finished", on_enqueued)  # type: ignore[call-overload]  # unknown to mypy too
