"""What every ``jobqueue`` subcommand shares: the error type, storage opening, argument types."""

from __future__ import annotations

import argparse
import json
import math
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import urlsplit

from .._contract.capabilities import Monitoring
from .._contract.storage import Storage
from .._errors import StorageError
from .._urls import redact_secrets, redact_url, storage_from_url

__all__ = [
    "EXIT_RUNTIME",
    "EXIT_USAGE",
    "CliError",
    "bad_url",
    "connecting",
    "monitoring",
    "non_negative_seconds",
    "open_storage",
    "parse_payload",
    "positive_int",
    "positive_seconds",
    "unreachable",
    "schedule_spec",
]

EXIT_USAGE = 2  # the command line is wrong (argparse uses 2 as well)
EXIT_RUNTIME = 1  # the command line is fine, something failed while running it


class CliError(Exception):
    """A failure reported as one line on stderr, and the process exit code."""

    def __init__(self, message: str, code: int = EXIT_RUNTIME) -> None:
        super().__init__(message)
        self.code = code


def open_storage(url: str | None, queue: str | None = None) -> Storage:
    """The storage named by ``url`` (``--storage`` or ``JOBQUEUE_STORAGE``), on namespace ``queue``.

    Raises:
        CliError: no URL, a malformed URL, an unknown scheme or a bad queue
            name (usage), or an installed backend that fails to load (runtime).
    """
    if not url:
        raise CliError("no storage given: pass --storage URL or set JOBQUEUE_STORAGE", EXIT_USAGE)
    try:
        storage = storage_from_url(url)
    except (ValueError, TypeError) as exc:
        raise bad_url(url, exc) from exc
    except (ImportError, AttributeError) as exc:  # the entry point names a module or class that is missing
        scheme = urlsplit(url).scheme
        raise CliError(f"the storage backend for {scheme}:// could not be loaded: {exc}") from exc
    if queue is None:
        return storage
    try:
        return storage.namespace(queue)
    except (ValueError, TypeError) as exc:
        raise CliError(f"bad queue name {queue!r}: {exc}", EXIT_USAGE) from exc


def bad_url(url: str, exc: Exception) -> CliError:
    """The usage error for a storage URL that a parser refused (URL and secrets redacted)."""
    reason = redact_secrets(str(exc), url)
    if reason.startswith("bad storage url"):  # storage_from_url named the URL already
        return CliError(reason, EXIT_USAGE)
    return CliError(f"bad storage url {redact_url(url)!r}: {reason}", EXIT_USAGE)


def unreachable(url: str, exc: StorageError) -> CliError:
    """The error for a storage that fails on connect or on its first call."""
    return CliError(f"cannot reach storage {redact_url(url)}: {redact_secrets(str(exc), url)}")


@contextmanager
def connecting(url: str) -> Iterator[None]:
    """Around a first connection: a storage error is ``unreachable``, a ``ValueError`` a bad URL.

    Some URL parts are read only when connecting (redis-py parses the URL
    then): a bad one must be the same one-line usage error as any other.
    """
    try:
        yield
    except StorageError as exc:
        raise unreachable(url, exc) from exc
    except ValueError as exc:
        raise bad_url(url, exc) from exc


def monitoring(storage: Storage, command: str) -> Monitoring:
    """``storage`` as a ``Monitoring`` storage, or an error saying that ``command`` needs that capability."""
    if not isinstance(storage, Monitoring):
        raise CliError(
            f"{command} needs a storage with the monitoring capability (counts, workers, queues); "
            f"{type(storage).__name__} does not offer it"
        )
    return storage


def parse_payload(text: str) -> Any:
    """Decode PAYLOAD_JSON, or fail with a usage error naming the problem."""
    try:
        return json.loads(text)
    except ValueError as exc:
        raise CliError(f"PAYLOAD_JSON is not valid JSON ({exc}): {text[:60]!r}", EXIT_USAGE) from exc


def positive_int(text: str) -> int:
    """An argparse type: an integer >= 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def _seconds(text: str, *, allow_zero: bool) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of seconds, got {text!r}") from None
    if not math.isfinite(value) or value < 0 or (value == 0 and not allow_zero):
        raise argparse.ArgumentTypeError(f"must be {'>= 0' if allow_zero else '> 0'} seconds, got {text!r}")
    return value


def positive_seconds(text: str) -> float:
    """An argparse type: a finite number of seconds > 0."""
    return _seconds(text, allow_zero=False)


def non_negative_seconds(text: str) -> float:
    """An argparse type: a finite number of seconds >= 0."""
    return _seconds(text, allow_zero=True)


def schedule_spec(text: str) -> tuple[str, str]:
    """An argparse type: ``NAME=CRON`` (the cron expression is checked when the worker schedules it)."""
    name, sep, cron = text.partition("=")
    if not sep or not name.strip() or not cron.strip():
        raise argparse.ArgumentTypeError(f"expected NAME=CRON such as 'nightly=0 3 * * *', got {text!r}")
    return name.strip(), cron.strip()
