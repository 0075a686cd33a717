"""FileStorage under disk errors: unwritable directories, full disks, refused writes, corrupt records."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from jobqueue import (
    CorruptDataError,
    JobState,
    StorageError,
)
from jobqueue_file import FileStorage

pytestmark = pytest.mark.file


# ------------------------------------------------------------------ errors


@contextlib.contextmanager
def read_only(directory: Path) -> Iterator[None]:
    """Make ``directory`` unwritable, even for root (immutable flag) when running as root."""
    if os.geteuid() != 0:
        directory.chmod(0o555)
        try:
            yield
        finally:
            directory.chmod(0o755)
        return
    if shutil.which("chattr") is None or subprocess.run(["chattr", "+i", str(directory)]).returncode != 0:
        pytest.skip("running as root without chattr +i: cannot make a directory unwritable")
    try:
        yield
    finally:
        subprocess.run(["chattr", "-i", str(directory)], check=True)


async def test_an_unwritable_directory_gives_a_storage_error_naming_the_path(tmp_path: Path) -> None:
    root = tmp_path / "locked"
    root.mkdir()
    with read_only(root), pytest.raises(StorageError, match=str(root)):
        await FileStorage(root).connect()
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    with pytest.raises(StorageError, match=str(blocker)):
        await FileStorage(blocker / "queue").connect()


async def test_a_corrupt_record_is_reported_with_its_path_and_other_jobs_go_on(tmp_path: Path) -> None:
    async with FileStorage(tmp_path) as storage:
        for job_id in ("bad", "good"):
            await storage.enqueue(job_id, b"x")
        corrupt = tmp_path / "default" / "jobs" / "bad"
        corrupt.write_bytes(b"\xc1 this is not msgpack")
        with pytest.raises(CorruptDataError, match=str(corrupt)):
            await storage.get("bad")
        claims = await storage.dequeue("w", lease_ms=30_000, timeout_ms=0, limit=5)
        assert [claim.id for claim in claims] == ["good"], "the worker keeps serving the other jobs"
        assert (await storage.counts())[JobState.PROCESSING] == 1
    async with FileStorage(tmp_path) as reopened:  # repair at connect copes with it too
        with pytest.raises(CorruptDataError, match=str(corrupt)):
            await reopened.enqueue("bad", b"x")


CHILD_WITH_A_FILE_SIZE_LIMIT = """
import asyncio, resource, signal, sys
from jobqueue import StorageError
from jobqueue_file import FileStorage

async def main(root):
    async with FileStorage(root) as storage:
        await storage.enqueue("warm-up", b"x")
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (4096, 4096))
        try:
            await storage.enqueue("big", b"x" * 100_000)
        except StorageError as exc:
            print("ERROR", exc)
        outcome = await storage.enqueue("small", b"x")
        print("SMALL", outcome.accepted)

asyncio.run(main(sys.argv[1]))
"""


def test_a_write_the_disk_refuses_gives_a_storage_error_and_leaves_nothing_half_written(
    tmp_path: Path,
) -> None:
    out = subprocess.run(
        [sys.executable, "-c", CHILD_WITH_A_FILE_SIZE_LIMIT, str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout
    error = next(line for line in out.splitlines() if line.startswith("ERROR"))
    assert "File too large" in error and str(tmp_path / "default" / "jobs" / "big") in error
    assert "SMALL True" in out, "the storage keeps working after a refused write"
    assert not list(tmp_path.rglob(".tmp-*")), "a temp file was left behind"
    assert not (tmp_path / "default" / "jobs" / "big").exists()


@pytest.fixture
def tiny_disk(tmp_path: Path) -> Iterator[Path]:
    mount = tmp_path / "tiny"
    mount.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(mount)]).returncode != 0:
        pytest.skip("cannot mount a tmpfs here (needs root); the file-size-limit test covers refused writes")
    try:
        yield mount
    finally:
        subprocess.run(["umount", str(mount)], check=True)


async def test_a_full_disk_gives_a_storage_error_naming_the_path(tiny_disk: Path) -> None:
    async with FileStorage(tiny_disk) as storage:
        await storage.enqueue("first", b"x")
        filler = tiny_disk / "filler"
        with contextlib.suppress(OSError), filler.open("wb") as file:
            while True:
                file.write(b"\0" * 4096)
        errors = []
        for i in range(100):
            try:
                await storage.enqueue(f"job-{i}", b"y" * 2048)
            except StorageError as exc:
                errors.append(str(exc))
        assert errors, "a full disk went unnoticed"
        assert all("No space left on device" in error and str(tiny_disk) in error for error in errors), errors
        await asyncio.to_thread(filler.unlink)
        assert (await storage.enqueue("after", b"x")).accepted, "works again once space is freed"
        claims = await storage.dequeue("w", lease_ms=30_000, timeout_ms=0, limit=200)
        assert claims[0].id == "first" and "after" in [claim.id for claim in claims]
    assert temp_files(tiny_disk) == []


def temp_files(top: Path) -> list[Path]:
    return sorted(top.rglob(".tmp-*"))
