"""Files reused instead of created: spare record files, entries linked to one empty file, record checksums."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest
from jobqueue import CorruptDataError, JobState
from jobqueue.storage import Finish, FinishKind, JobRecord
from jobqueue_conformance import wait_until
from jobqueue_file import FileStorage
from jobqueue_file._records import Stored, pack_record, unpack_record

pytestmark = pytest.mark.file

LONG_TTL = 600_000


def spares(root: Path) -> list[str]:
    return sorted(name for name in os.listdir(root / "default" / "jobs") if "-spare-" in name)


async def test_a_reader_never_gets_a_record_while_its_file_is_rewritten_for_another_job(
    tmp_path: Path,
) -> None:
    """A stress test: readers race writers whose replaced files are reused for other jobs' records."""
    ids = [f"job-{i}" for i in range(8)]
    async with FileStorage(tmp_path, durable=False) as storage:
        for job_id in ids:
            await storage.enqueue(job_id, job_id.encode() * 20_000)  # big: a rewrite takes a while
        assert len(await storage.dequeue("w", lease_ms=60_000, timeout_ms=0, limit=len(ids))) == len(ids)
        writing = True

        async def rewrite(job_id: str) -> None:
            for n in range(100):  # each write leaves the replaced file as a spare for the next one
                assert await storage.set_progress(job_id, "w", f"{job_id}:{n}".encode())

        async def read() -> int:
            reads = 0
            while writing:
                records = await storage.get_many(ids)
                for job_id, record in zip(ids, records, strict=True):
                    assert record is not None and record.id == job_id
                    assert record.progress is None or record.progress.decode().startswith(f"{job_id}:")
                reads += 1
            return reads

        readers = [asyncio.create_task(read()) for _ in range(3)]
        await asyncio.gather(*(rewrite(job_id) for job_id in ids))
        writing = False
        assert all(reads > 0 for reads in await asyncio.gather(*readers))


async def test_spares_are_given_back_once_the_process_stops_writing_and_at_disconnect(tmp_path: Path) -> None:
    async with FileStorage(tmp_path, cleanup_interval=0.2) as storage:
        for round_ in range(2):
            ids = [f"r{round_}-{i}" for i in range(5)]
            for job_id in ids:
                await storage.enqueue(job_id, b"x")
            claims = await storage.dequeue("w", lease_ms=60_000, timeout_ms=0, limit=5)
            assert sorted(claim.id for claim in claims) == ids
            done = await storage.finish_many(
                "w", [Finish(job_id, FinishKind.COMPLETE, b"ok", LONG_TTL) for job_id in ids]
            )
            assert all(done)
            assert spares(tmp_path), "a claim and a finish leave the replaced records as spares"

            async def none_left() -> bool:
                return spares(tmp_path) == []

            await wait_until(none_left, message="idle spares are deleted by the sweep", timeout=30)
            for job_id in ids:
                record = await storage.get(job_id)
                assert record is not None and record.state is JobState.COMPLETED and record.result == b"ok"
        await storage.enqueue("last", b"x")
        await storage.dequeue("w", lease_ms=60_000, timeout_ms=0)
        assert spares(tmp_path)
    assert spares(tmp_path) == [], "disconnect deletes the process's spares"


async def test_an_entry_is_a_link_of_the_namespace_s_empty_file_not_a_new_file(tmp_path: Path) -> None:
    async with FileStorage(tmp_path) as storage:
        for i in range(3):
            await storage.enqueue(f"job-{i}", b"x")
        base = os.stat(tmp_path / "default" / "entry")
        entries = list((tmp_path / "default" / "queue").iterdir())
        assert len(entries) == 3
        assert all(os.stat(entry).st_ino == base.st_ino for entry in entries)
        assert base.st_size == 0 and base.st_nlink == 4
        claims = await storage.dequeue("w", lease_ms=60_000, timeout_ms=0, limit=3)
        assert len(claims) == 3
        assert os.stat(tmp_path / "default" / "entry").st_nlink == 4, "a claim moves the entry, one name each"


def stored() -> Stored:
    record = JobRecord(id="job", state=JobState.QUEUED, message=b"payload", created_at=1, updated_at=1)
    return Stored(record, "0123456789abcdef", "queue/x")


def test_a_torn_record_fails_its_checksum_and_a_layout_2_record_is_still_read() -> None:
    data = pack_record(stored())
    assert unpack_record(data, "jobs/job") == stored()
    torn = data[:10] + bytes([data[10] ^ 0xFF]) + data[11:]
    with pytest.raises(CorruptDataError, match="checksum"):
        unpack_record(torn, "jobs/job")
    layout_2 = data[:3] + b"\x02" + data[4:-4]  # no checksum, version 2
    assert unpack_record(layout_2, "jobs/job") == stored()
