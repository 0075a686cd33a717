"""Storage URLs and options: which server or cluster, and how the storage uses it.

``redis://``, ``rediss://``, ``valkey://``, ``valkeys://`` name one server;
``redis+cluster://``, ``rediss+cluster://``, ``valkey+cluster://``,
``valkeys+cluster://`` name seed nodes of a cluster. The query carries the
storage's own options (``prefix``, ``partitions``, ``min_replicas``,
``replica_timeout``) and redis-py's connection options; the storage options
are taken out before redis-py sees the URL.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from jobqueue.storage import parse_query, redact_url

from ._cluster import is_cluster_url, parse_cluster_url

__all__ = ["StorageOptions", "split_url"]

# storage scheme -> the scheme the connections are opened with
_SCHEMES = {
    "redis": "redis",
    "rediss": "rediss",
    "valkey": "redis",
    "valkeys": "rediss",
    "redis+cluster": "redis+cluster",
    "rediss+cluster": "rediss+cluster",
    "valkey+cluster": "redis+cluster",
    "valkeys+cluster": "rediss+cluster",
}
_STORAGE_OPTIONS = {"prefix", "partitions", "min_replicas", "replica_timeout"}
_CONNECTION_OPTIONS = {
    "db",
    "username",
    "password",
    "client_name",
    "socket_timeout",
    "socket_connect_timeout",
    "socket_keepalive",
    "health_check_interval",
    "ssl_cert_reqs",
    "ssl_ca_certs",
    "ssl_ca_path",
    "ssl_certfile",
    "ssl_keyfile",
    "ssl_check_hostname",
    "ssl_min_version",
}

DEFAULT_REPLICA_TIMEOUT = 2.0  # seconds a write may wait for its replicas with min_replicas


@dataclass(frozen=True, slots=True)
class StorageOptions:
    """A storage URL taken apart (``None``: not in the URL)."""

    server_url: str  # for the connections: redis://, rediss://, redis+cluster:// or rediss+cluster://
    prefix: str | None
    partitions: int | None
    min_replicas: int | None
    replica_timeout: float | None


def split_url(url: str) -> StorageOptions:
    """A storage URL -> the connections' URL and the storage options in its query.

    Raises:
        TypeError: ``url`` is not a str.
        ValueError: another scheme, an unknown option, or a bad option value.
    """
    if not isinstance(url, str):
        raise TypeError(f"storage url must be a str, not {type(url).__name__}")
    parts = urlsplit(url)
    scheme = _SCHEMES.get(parts.scheme.lower())
    if scheme is None:
        raise ValueError(f"not a redis url ({', '.join(s + '://' for s in _SCHEMES)}): {redact_url(url)!r}")
    params = parse_query(url, _STORAGE_OPTIONS | _CONNECTION_OPTIONS)
    query = urlencode(
        [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k not in _STORAGE_OPTIONS]
    )
    server_url = urlunsplit((scheme, parts.netloc, parts.path, query, ""))
    if is_cluster_url(server_url):
        parse_cluster_url(server_url)  # bad seeds or a database raise here, before any connect
    partitions = params.get("partitions")
    min_replicas = params.get("min_replicas")
    timeout = params.get("replica_timeout")
    return StorageOptions(
        server_url=server_url,
        prefix=params.get("prefix"),
        partitions=None if partitions is None else _int(partitions, "partitions", url),
        min_replicas=None if min_replicas is None else _int(min_replicas, "min_replicas", url),
        replica_timeout=None if timeout is None else _float(timeout, "replica_timeout", url),
    )


def check_partitions(value: object) -> int:
    """``partitions``: an int >= 1."""
    if not isinstance(value, int) or isinstance(value, bool):
        raise TypeError(f"partitions must be an int, not {type(value).__name__}")
    if not 1 <= value <= 1024:
        raise ValueError(f"partitions must be between 1 and 1024, got {value}")
    return value


def check_min_replicas(value: object) -> int:
    """``min_replicas``: an int >= 0."""
    if not isinstance(value, int) or isinstance(value, bool):
        raise TypeError(f"min_replicas must be an int, not {type(value).__name__}")
    if value < 0:
        raise ValueError(f"min_replicas must be >= 0, got {value}")
    return value


def check_replica_timeout(value: object) -> int:
    """``replica_timeout`` in seconds -> milliseconds (> 0)."""
    if not isinstance(value, int | float) or isinstance(value, bool):
        raise TypeError(f"replica_timeout must be a number of seconds, not {type(value).__name__}")
    if not math.isfinite(value) or value <= 0:
        raise ValueError(f"replica_timeout must be > 0 seconds, got {value}")
    return max(1, round(value * 1000))


def first_of(*values: Any) -> Any:
    """The first value that is not None (an argument, then the URL's option, then the default)."""
    return next(value for value in values if value is not None)


def partition_count(url: object, partitions: object) -> int:
    """The partitions an argument or a URL asks for (1 when either is bad: the constructor says why)."""
    if partitions is not None:
        return partitions if isinstance(partitions, int) else 1  # __init__ reports a bad value
    try:
        return split_url(url).partitions or 1  # type: ignore[arg-type]  # __init__ reports a bad url
    except (TypeError, ValueError):
        return 1


def _int(text: str, name: str, url: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise ValueError(
            f"storage url option {name} must be an integer, got {text!r} in {redact_url(url)!r}"
        ) from None


def _float(text: str, name: str, url: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise ValueError(
            f"storage url option {name} must be a number, got {text!r} in {redact_url(url)!r}"
        ) from None
