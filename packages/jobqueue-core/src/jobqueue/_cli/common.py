"""What every ``jobqueue`` subcommand shares: the error type, storage opening, argument types."""

from __future__ import annotations

import argparse
import json
import math
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from .._contract.storage import Storage
from .._errors import StorageError
from .._urls import storage_from_url

__all__ = [
    "EXIT_RUNTIME",
    "EXIT_USAGE",
    "CliError",
    "non_negative_seconds",
    "open_storage",
    "parse_payload",
    "positive_int",
    "positive_seconds",
    "redact",
    "unreachable",
]

EXIT_USAGE = 2  # the command line is wrong (argparse uses 2 as well)
EXIT_RUNTIME = 1  # the command line is fine, something failed while running it


class CliError(Exception):
    """A failure reported as one line on stderr, and the process exit code."""

    def __init__(self, message: str, code: int = EXIT_RUNTIME) -> None:
        super().__init__(message)
        self.code = code


def redact(url: str) -> str:
    """The URL with any password replaced by ``***``, for messages and logs."""
    try:
        parts = urlsplit(url)
        password = parts.password
    except ValueError:
        return url
    if not password:
        return url
    netloc = parts.netloc.replace(f":{password}@", ":***@", 1)
    return urlunsplit(parts._replace(netloc=netloc))


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
        raise CliError(f"bad storage url {redact(url)!r}: {exc}", EXIT_USAGE) from exc
    except (ImportError, AttributeError) as exc:  # the entry point names a module or class that is missing
        scheme = urlsplit(url).scheme
        raise CliError(f"the storage backend for {scheme}:// could not be loaded: {exc}") from exc
    if queue is None:
        return storage
    try:
        return storage.namespace(queue)
    except (ValueError, TypeError) as exc:
        raise CliError(f"bad queue name {queue!r}: {exc}", EXIT_USAGE) from exc


def unreachable(url: str, exc: StorageError) -> CliError:
    """The error for a storage that fails on connect or on its first call."""
    return CliError(f"cannot reach storage {redact(url)}: {exc}")


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
