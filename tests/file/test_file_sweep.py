"""FileStorage's sweep: expired records and lapsed workers go by themselves, from any running process.

Part of the contract's physical cleanliness: once every result of a namespace
has expired, the storage holds nothing for it, with no call from anyone.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from jobqueue_conformance import wait_until
from jobqueue_file import FileStorage

pytestmark = pytest.mark.file


async def test_an_expired_record_is_invisible_at_once_and_the_cleaner_deletes_it(tmp_path: Path) -> None:
    async with FileStorage(tmp_path, cleanup_interval=0.05) as storage:
        await storage.enqueue("short", b"x")
        await storage.enqueue("long", b"x")
        await storage.dequeue("w", lease_ms=30_000, timeout_ms=0, limit=2)
        await storage.complete("short", "w", b"r", 1)
        await storage.complete("long", "w", b"r", 600_000)
        record_file = tmp_path / "default" / "jobs" / "short"

        async def gone() -> bool:
            return await storage.get("short") is None

        await wait_until(gone, message="an expired record is still visible", timeout=1)
        assert (await storage.enqueue("short", b"again")).accepted, "an expired id can be enqueued again"
        await storage.cancel("short")
        await storage.enqueue("short2", b"x")
        await storage.dequeue("w", lease_ms=30_000, timeout_ms=0)
        await storage.complete("short2", "w", b"r", 1)

        async def swept() -> bool:
            return not (tmp_path / "default" / "jobs" / "short2").exists()

        await wait_until(swept, message="the cleaner did not delete an expired record")
        assert not record_file.exists()
        assert (await storage.get("long")) is not None


def namespace_files(root: Path, namespace: str = "default") -> list[str]:
    """Every record, entry and registration a namespace holds (not its fixed lock and log files)."""
    space = root / namespace
    found = []
    for sub in ("jobs", "queue", "scheduled", "processing", "expiry", "workers"):
        found += [str(path.relative_to(space)) for path in (space / sub).rglob("*")]
    return sorted(found)


async def test_a_lone_process_deletes_expired_records_and_lapsed_workers_without_being_asked(
    tmp_path: Path,
) -> None:
    async with FileStorage(tmp_path) as storage:  # the default cleanup_interval: "within seconds"
        await storage.enqueue("job", b"x")
        await storage.register_worker("w", 200)
        assert await storage.dequeue("w", lease_ms=30_000, timeout_ms=0)
        assert await storage.complete("job", "w", b"r", 200)
        assert namespace_files(tmp_path) != []

        async def clean() -> bool:
            return namespace_files(tmp_path) == []

        # Nobody calls get, list_workers or anything else: the process sweeps on its own.
        await wait_until(clean, message="expired records or a lapsed registration stayed on disk", timeout=15)


async def test_a_registration_disappears_when_its_ttl_runs_out_not_a_sweep_interval_later(
    tmp_path: Path,
) -> None:
    async with FileStorage(tmp_path, cleanup_interval=60) as storage:
        await storage.register_worker("w", 300)
        registration = tmp_path / "default" / "workers" / "w"
        assert registration.exists()

        async def gone() -> bool:
            return not registration.exists()

        await wait_until(gone, message="a lapsed registration outlived its ttl", timeout=2)


async def test_any_running_process_sweeps_a_namespace_it_never_opened(tmp_path: Path) -> None:
    async with FileStorage(tmp_path, name="left-behind") as storage:
        await storage.enqueue("job", b"x")
        assert await storage.dequeue("w", lease_ms=30_000, timeout_ms=0)
        assert await storage.complete("job", "w", b"r", 300)
    assert namespace_files(tmp_path, "left-behind") != [], "the writer is gone, its files stay"
    async with FileStorage(tmp_path, name="elsewhere", cleanup_interval=0.1):

        async def clean() -> bool:
            return namespace_files(tmp_path, "left-behind") == []

        await wait_until(clean, message="another process did not sweep the namespace", timeout=15)


async def test_disconnect_stops_the_sweep_when_a_deadline_wakes_it_at_that_moment(tmp_path: Path) -> None:
    # On Python 3.11 `asyncio.wait_for` swallowed a cancel that met a finished wait: the sweep ran on and
    # disconnect waited for it forever (a completion notes its expiry just before the caller disconnects).
    storage = FileStorage(tmp_path)
    await storage.connect()
    root = storage._root

    async def sweep_waits() -> bool:
        return root.sweeping is not None and root.sweeping.done()

    await wait_until(sweep_waits, message="the first sweep did not run")
    sweep = root.cleaner
    assert sweep is not None
    root.wake.set()
    await asyncio.sleep(0)  # the sweep's wait finishes in this step; the cancel comes right after
    await storage.disconnect()
    assert sweep.done(), "the sweep outlived disconnect"
