"""Shared by every test directory: server URLs, and skip (or fail, when servers are required) without a binary."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from tools.chaos_netns import NetnsUnavailable, NetworkJail, clean_leftovers
from tools.clusters import ClusterProcess
from tools.postgres_server import find_postgres_bin
from tools.servers import BINARIES, CLIS, ServerKind, find_binary, find_cli

__all__ = [
    "CLUSTER_URL_ENV",
    "cluster_or_skip",
    "cluster_url",
    "jail_or_skip",
    "postgres_or_skip",
    "server_or_skip",
]

CLUSTER_URL_ENV: dict[ServerKind, str] = {"redis": "REDIS_CLUSTER_URL", "valkey": "VALKEY_CLUSTER_URL"}


def server_or_skip(kind: ServerKind) -> None:
    """Skip (or fail, with JOBQUEUE_REQUIRE_SERVERS=1) when the server binary is missing."""
    if find_binary(kind) is None:
        _missing(BINARIES[kind])


def cluster_or_skip(kind: ServerKind) -> None:
    """Like ``server_or_skip``, and the client that forms clusters (``redis-cli``) must be there too."""
    server_or_skip(kind)
    if find_cli(kind) is None:
        _missing(CLIS[kind])


def postgres_or_skip() -> None:
    """Skip (or fail, with JOBQUEUE_REQUIRE_SERVERS=1) when PostgreSQL's ``initdb`` and ``pg_ctl`` are missing."""
    if find_postgres_bin() is None:
        _missing("PostgreSQL (initdb, pg_ctl)")


def jail_or_skip() -> NetworkJail:
    """A network namespace joined to the host by a veth pair (``destroy`` it); skip where none can be made.

    A skip, not a failure, even with JOBQUEUE_REQUIRE_SERVERS=1: network
    namespaces are a property of the machine, not something the repo installs.
    """
    clean_leftovers()
    jail = NetworkJail()
    try:
        jail.create()
    except NetnsUnavailable as exc:
        pytest.skip(f"network namespaces cannot be created here: {exc}")
    return jail


def _missing(program: str) -> None:
    message = f"{program} is not installed (tools/install-servers.sh)"
    if os.environ.get("JOBQUEUE_REQUIRE_SERVERS") == "1":
        pytest.fail(message)
    pytest.skip(message)


def cluster_url(kind: ServerKind) -> Iterator[str]:
    """The URL of a running cluster: the environment's, or one started for as long as this runs."""
    url = os.environ.get(CLUSTER_URL_ENV[kind])
    if url:
        yield url
        return
    cluster_or_skip(kind)
    with ClusterProcess.start_new(kind) as cluster:
        yield cluster.url
