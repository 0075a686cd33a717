"""The Lua scripts: package data under ``lua/``, loaded once, run with EVALSHA.

Each script is a ``#!lua`` shebang line, the generated header
(``_keys.lua_header``), ``common.lua``, then its own file. The shebang makes
a Redis or Valkey cluster refuse a script that touches a key of another slot
than its declared keys (scripts without one may); ``flags=no-writes`` lets a
read-only script run anywhere. Every key a script touches is passed in
``KEYS`` (see ``_keys``). Scripts are registered on a connection pool's first
connect (one pipelined SCRIPT LOAD); a NOSCRIPT reply (server restarted,
SCRIPT FLUSH) falls back to EVAL, which caches the script again.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any, Protocol

from redis.exceptions import NoScriptError

from ._keys import lua_header

__all__ = [
    "READ_ONLY",
    "SCRIPT_NAMES",
    "CommandRunner",
    "ConfirmingRunner",
    "Script",
    "build",
    "run_script",
    "run_script_confirmed",
    "scripts",
    "scripts_for",
    "sharded_scripts",
]

SCRIPT_NAMES = (
    "acquire_lock",
    "cancel",
    "claim",
    "counts",
    "enqueue",
    "finish",
    "get_many",
    "heartbeat",
    "list_workers",
    "listen",
    "purge",
    "recover_stalled",
    "release_lock",
    "retry_failed",
    "set_progress",
    "unregister_worker",
    "update_ttl",
    "wake",
)

READ_ONLY = frozenset({"get_many"})


@dataclass(frozen=True, slots=True)
class Script:
    """One Lua script: its full source and SHA1."""

    name: str
    source: str
    sha: str


class CommandRunner(Protocol):
    """What runs a Redis command (the shared, pipelining command connection)."""

    sharded: bool  # a cluster's: scripts publish with SPUBLISH

    async def call(self, *args: Any) -> Any:
        """Send one command; return its reply or raise its error."""
        ...


class ConfirmingRunner(CommandRunner, Protocol):
    """A runner that can also wait for replicas to confirm a write."""

    async def call_confirmed(self, replicas: int, timeout_ms: int, *args: Any) -> Any:
        """Send one write, then ``WAIT replicas timeout_ms`` on its connection; raise if unconfirmed."""
        ...


def read(name: str) -> str:
    """The text of ``lua/<name>.lua``."""
    return resources.files("jobqueue_redis").joinpath("lua", f"{name}.lua").read_text(encoding="utf-8")


def build(name: str, prelude: str = "", *, sharded: bool = False) -> Script:
    """Assemble script ``name``; ``prelude`` runs before the header (tests add checks there).

    ``sharded``: the variant for a cluster, which publishes with ``SPUBLISH``.
    """
    shebang = "#!lua flags=no-writes" if name in READ_ONLY else "#!lua"
    header = lua_header(sharded=sharded)
    source = f"{shebang}\n{prelude}{header}{read('common')}\n-- {name}.lua\n{read(name)}"
    return Script(name, source, hashlib.sha1(source.encode()).hexdigest())


@cache
def scripts() -> dict[str, Script]:
    """Every script by name, read from the package data once per process."""
    return {name: build(name) for name in SCRIPT_NAMES}


@cache
def sharded_scripts() -> dict[str, Script]:
    """Every script by name in its cluster variant, which publishes with ``SPUBLISH``."""
    return {name: build(name, sharded=True) for name in SCRIPT_NAMES}


def scripts_for(runner: CommandRunner) -> dict[str, Script]:
    """The scripts for a single server's runner or a cluster's."""
    return sharded_scripts() if runner.sharded else scripts()


async def run_script(runner: CommandRunner, name: str, keys: Sequence[str], args: Sequence[Any]) -> Any:
    """Run script ``name`` with ``keys`` (fixed keys first) and ``args`` (channels first)."""
    script = scripts_for(runner)[name]
    try:
        return await runner.call("EVALSHA", script.sha, len(keys), *keys, *args)
    except NoScriptError:
        return await runner.call("EVAL", script.source, len(keys), *keys, *args)


async def run_script_confirmed(
    runner: ConfirmingRunner,
    name: str,
    keys: Sequence[str],
    args: Sequence[Any],
    replicas: int,
    timeout_ms: int,
) -> Any:
    """``run_script``, then ``WAIT replicas timeout_ms`` on the same connection.

    Raises:
        StorageError: fewer replicas confirmed the write in time.
    """
    script = scripts_for(runner)[name]
    try:
        return await runner.call_confirmed(
            replicas, timeout_ms, "EVALSHA", script.sha, len(keys), *keys, *args
        )
    except NoScriptError:
        return await runner.call_confirmed(
            replicas, timeout_ms, "EVAL", script.source, len(keys), *keys, *args
        )
