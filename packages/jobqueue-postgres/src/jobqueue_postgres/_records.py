"""Rows to records, the read-side view of due jobs, and the options of a ``postgresql://`` URL."""

from __future__ import annotations

import hashlib
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode, urlsplit, urlunsplit

import asyncpg
from jobqueue import JobState
from jobqueue.storage import JobRecord, parse_query, rules

from ._migrations import validate_schema

__all__ = ["Options", "channel_name", "encode_name", "present", "to_record"]

# Options of ours; the others that asyncpg's DSN understands pass through to it.
_OUR_OPTIONS = {"schema", "pool_min", "pool_max", "connect_timeout", "command_timeout"}
_DRIVER_OPTIONS = {
    # libpq URL parameters asyncpg's DSN parser reads ...
    "host",
    "port",
    "user",
    "password",
    "dbname",
    "passfile",
    "sslmode",
    "sslrootcert",
    "sslcert",
    "sslkey",
    "sslcrl",
    "sslpassword",
    "target_session_attrs",
    # ... and a server setting it passes on (asyncpg sends unknown parameters as settings).
    "application_name",
}


def encode_name(value: str, what: str) -> bytes:
    """A namespace, id or worker id as stored: its UTF-8 bytes.

    Raises:
        ValueError: lone surrogates (not encodable).
    """
    try:
        return value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise ValueError(f"{what} must be valid unicode (no lone surrogates)") from exc


def channel_name(schema: str, namespace: bytes) -> str:
    """The stem of a namespace's NOTIFY channels (``_events``): a digest, so any namespace makes a plain identifier."""
    return "jq_" + hashlib.sha256(schema.encode() + b"\0" + namespace).hexdigest()[:40]


def to_record(row: Sequence[Any] | asyncpg.Record) -> JobRecord:
    """A ``JobRecord`` from the columns of ``_sql.JOB_COLUMNS``."""
    (job_id, state, message, created_at, updated_at, attempts, worker_id, result, error) = row[:9]
    (run_at, lease_until, expires_at, priority, abort_requested, progress) = row[9:15]
    return JobRecord(
        id=bytes(job_id).decode("utf-8"),
        state=JobState(state),
        message=bytes(message),
        created_at=created_at,
        updated_at=updated_at,
        attempts=attempts,
        worker_id=bytes(worker_id).decode("utf-8") if worker_id is not None else None,
        result=bytes(result) if result is not None else None,
        error=bytes(error) if error is not None else None,
        run_at=run_at,
        lease_until=lease_until,
        expires_at=expires_at,
        priority=priority,
        abort_requested=abort_requested,
        progress=bytes(progress) if progress is not None else None,
    )


def present(record: JobRecord, now: int) -> JobRecord:
    """The record as readers see it: a due job is shown promoted (``rules.promote``).

    Promotion is written by the next claim; until then reads apply it, as
    storages that promote on every call would show it.
    """
    if rules.is_due(record, now):
        promoted = rules.promote(record, now).record
        assert promoted is not None
        return promoted
    return record


@dataclass(frozen=True, slots=True)
class Options:
    """What a ``postgresql://`` URL says: the driver's DSN and our options."""

    dsn: str
    schema: str = "jobqueue"
    pool_min: int = 2
    pool_max: int = 10
    connect_timeout: float = 10.0
    command_timeout: float = 30.0

    @classmethod
    def from_url(cls, url: str) -> Options:
        """Split ``url`` into the DSN for asyncpg and our options (``?schema=``, ``?pool_max=``, ``?command_timeout=`` ...).

        Raises:
            TypeError: ``url`` is not a str.
            ValueError: not ``postgresql://``/``postgres://``, an unknown option, or a bad value.
        """
        if not isinstance(url, str):
            raise TypeError(f"storage url must be a str, not {type(url).__name__}")
        parts = urlsplit(url)
        if parts.scheme.lower() not in ("postgresql", "postgres"):
            raise ValueError(f"not a postgresql:// url: {url!r}")
        params = parse_query(url, _OUR_OPTIONS | _DRIVER_OPTIONS)
        driver = {key: value for key, value in params.items() if key in _DRIVER_OPTIONS}
        dsn = urlunsplit(("postgresql", parts.netloc, parts.path, urlencode(driver), ""))
        return cls.build(
            dsn,
            schema=params.get("schema", "jobqueue"),
            pool_min=_int_option(params, "pool_min", 2),
            pool_max=_int_option(params, "pool_max", 10),
            connect_timeout=_seconds_option(params, "connect_timeout", 10.0),
            command_timeout=_seconds_option(params, "command_timeout", 30.0),
        )

    @classmethod
    def build(
        cls,
        dsn: str,
        *,
        schema: str,
        pool_min: int,
        pool_max: int,
        connect_timeout: float = 10.0,
        command_timeout: float = 30.0,
    ) -> Options:
        """Check the options.

        Raises:
            ValueError: a bad schema name, ``pool_min < 0``, ``pool_max < 1``, ``pool_min > pool_max``,
                or a timeout that is not a finite number of seconds > 0.
        """
        validate_schema(schema)
        for name, value, low in (("pool_min", pool_min, 0), ("pool_max", pool_max, 1)):
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise ValueError(f"{name} must be an int >= {low}, got {value!r}")
        if pool_min > pool_max:
            raise ValueError(f"pool_min ({pool_min}) must not exceed pool_max ({pool_max})")
        for name, seconds in (("connect_timeout", connect_timeout), ("command_timeout", command_timeout)):
            if (
                isinstance(seconds, bool)
                or not isinstance(seconds, int | float)
                or not math.isfinite(seconds)
                or seconds <= 0
            ):
                raise ValueError(f"{name} must be a number of seconds > 0, got {seconds!r}")
        return cls(dsn, schema, pool_min, pool_max, float(connect_timeout), float(command_timeout))


def _int_option(params: dict[str, str], name: str, default: int) -> int:
    raw = params.get(name)
    if raw is None:
        return default
    if not raw.isdigit():
        raise ValueError(f"{name} must be a non-negative integer, got {raw!r}")
    return int(raw)


def _seconds_option(params: dict[str, str], name: str, default: float) -> float:
    raw = params.get(name)
    if raw is None:
        return default
    try:
        return float(raw)  # its range is checked by ``Options.build``
    except ValueError:
        raise ValueError(f"{name} must be a number of seconds > 0, got {raw!r}") from None
