"""FileStorage on a hostile directory: file modes, and symlinks planted where it expects files (issue 15)."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest
from jobqueue import StorageError
from jobqueue.storage import Channel
from jobqueue_conformance import wait_until
from jobqueue_file import FileStorage

pytestmark = pytest.mark.file


def modes(root: Path) -> tuple[set[int], set[int]]:
    """The permission bits of every file and every directory under ``root`` (``root`` included)."""
    files: set[int] = set()
    dirs = {stat.S_IMODE(root.stat().st_mode)}
    for path in root.rglob("*"):
        bits = stat.S_IMODE(path.lstat().st_mode)
        (dirs if path.is_dir() else files).add(bits)
    return files, dirs


async def exercise(storage: FileStorage) -> None:
    """Touch every kind of file: records, entries, registrations, locks, the event log, leader locks."""
    await storage.register_worker("w", 60_000)
    await storage.enqueue("done", b"x")
    await storage.enqueue("later", b"x", delay_ms=60_000)
    assert await storage.dequeue("w", lease_ms=30_000, timeout_ms=0)
    assert await storage.complete("done", "w", b"r", 60_000)
    await storage.enqueue("running", b"x")
    assert await storage.dequeue("w", lease_ms=30_000, timeout_ms=0)
    assert await storage.acquire_lock("leader", "me", 60_000)


@pytest.fixture
def umask_022() -> Iterator[None]:
    """The usual umask, so that a wider mode asked for must be set explicitly."""
    old = os.umask(0o022)
    yield
    os.umask(old)


@pytest.mark.usefixtures("umask_022")
async def test_files_are_0600_and_directories_0700_by_default(tmp_path: Path) -> None:
    root = tmp_path / "queue"
    async with FileStorage(root) as storage:
        await exercise(storage)
    files, dirs = modes(root)
    assert files == {0o600}, f"file modes {sorted(map(oct, files))}"
    assert dirs == {0o700}, f"directory modes {sorted(map(oct, dirs))}"


@pytest.mark.usefixtures("umask_022")
async def test_a_configured_mode_is_applied_whatever_the_umask(tmp_path: Path) -> None:
    root = tmp_path / "queue"
    async with FileStorage.from_url(f"file://{root}?mode=0660") as storage:
        await exercise(storage)
    files, dirs = modes(root)
    assert files == {0o660}, f"file modes {sorted(map(oct, files))}"
    assert dirs == {0o770}, f"directory modes {sorted(map(oct, dirs))}"


async def test_a_symlinked_event_log_is_refused_and_its_target_left_alone(tmp_path: Path) -> None:
    root, outside = tmp_path / "queue", tmp_path / "outside.txt"
    outside.write_bytes(b"precious")
    async with FileStorage(root):
        pass  # creates the namespace's directories
    events = root / "default" / "events"
    assert not list(events.iterdir()), "nothing was published yet"
    log = events / "00000000.log"
    log.symlink_to(outside)
    async with FileStorage(root) as storage:
        with pytest.raises(StorageError, match=str(log)):
            await storage.enqueue("job", b"x")
        with pytest.raises(StorageError, match=str(log)):
            async with storage.subscribe(Channel.EVENTS):
                pass
    assert outside.read_bytes() == b"precious"
    assert log.is_symlink(), "the link itself is left for an operator to see"


async def test_a_symlinked_job_record_is_refused_and_its_target_left_alone(tmp_path: Path) -> None:
    root, outside = tmp_path / "queue", tmp_path / "outside.txt"
    outside.write_bytes(b"precious")
    async with FileStorage(root) as storage:
        record = root / "default" / "jobs" / "job"
        record.symlink_to(outside)
        with pytest.raises(StorageError, match=str(record)):
            await storage.enqueue("job", b"x")
        with pytest.raises(StorageError, match=str(record)):
            await storage.get("job")
        assert (await storage.enqueue("other", b"x")).accepted, "the other jobs go on"
    assert outside.read_bytes() == b"precious"


@pytest.mark.parametrize("sub", ["", "queue", "jobs", "locks"])
async def test_a_symlinked_directory_is_refused_and_nothing_is_written_through_it(
    tmp_path: Path, sub: str
) -> None:
    root, outside = tmp_path / "queue", tmp_path / "outside"
    outside.mkdir()
    root.mkdir()
    link = root / "default" / sub if sub else root / "default"
    link.parent.mkdir(exist_ok=True)
    link.symlink_to(outside, target_is_directory=True)
    with pytest.raises(StorageError, match=str(link)):
        await FileStorage(root).connect()
    assert list(outside.iterdir()) == [], "a file was created outside the root"


async def test_a_symlinked_worker_directory_takes_no_entry_outside(tmp_path: Path) -> None:
    root, outside = tmp_path / "queue", tmp_path / "outside"
    outside.mkdir()
    async with FileStorage(root) as storage:
        await storage.enqueue("job", b"x")
        (root / "default" / "processing" / "w").symlink_to(outside, target_is_directory=True)
        with pytest.raises(StorageError, match="symbolic link"):
            await storage.dequeue("w", lease_ms=30_000, timeout_ms=0)
        record = await storage.get("job")
        assert record is not None and record.state.value == "queued", "the job stays queued"
        assert await storage.dequeue("other", lease_ms=30_000, timeout_ms=0), "another worker still claims it"
    assert list(outside.iterdir()) == [], "an entry was moved outside the root"


async def test_the_sweep_skips_a_namespace_with_a_symlinked_directory(tmp_path: Path) -> None:
    root, outside = tmp_path / "queue", tmp_path / "outside"
    outside.mkdir()
    async with FileStorage(root, name="planted"):
        pass
    expiry = root / "planted" / "expiry"
    expiry.rmdir()
    expiry.symlink_to(outside, target_is_directory=True)
    due = outside / "000000000000001-0123456789abcdef-job"
    due.write_bytes(b"")
    async with FileStorage(root, cleanup_interval=0.05) as storage:
        await storage.enqueue("job", b"x")
        assert await storage.dequeue("w", lease_ms=30_000, timeout_ms=0)
        assert await storage.complete("job", "w", b"r", 1)
        record = root / "default" / "jobs" / "job"

        async def swept() -> bool:  # a sweep ran (it goes through every namespace)
            return not record.exists()

        await wait_until(swept, message="the sweep stopped at the planted namespace")
        assert await storage.list_namespaces() == [], "the planted namespace is skipped, not reported"
    assert due.exists(), "the sweep deleted a file outside the root"
