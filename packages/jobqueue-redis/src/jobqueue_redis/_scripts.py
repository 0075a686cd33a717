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

__all__ = ["READ_ONLY", "SCRIPT_NAMES", "CommandRunner", "Script", "build", "run_script", "scripts"]

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

    async def call(self, *args: Any) -> Any:
        """Send one command; return its reply or raise its error."""
        ...


def read(name: str) -> str:
    """The text of ``lua/<name>.lua``."""
    return resources.files("jobqueue_redis").joinpath("lua", f"{name}.lua").read_text(encoding="utf-8")


def build(name: str, prelude: str = "") -> Script:
    """Assemble script ``name``; ``prelude`` runs before the header (tests add checks there)."""
    shebang = "#!lua flags=no-writes" if name in READ_ONLY else "#!lua"
    source = f"{shebang}\n{prelude}{lua_header()}{read('common')}\n-- {name}.lua\n{read(name)}"
    return Script(name, source, hashlib.sha1(source.encode()).hexdigest())


@cache
def scripts() -> dict[str, Script]:
    """Every script by name, read from the package data once per process."""
    return {name: build(name) for name in SCRIPT_NAMES}


async def run_script(runner: CommandRunner, name: str, keys: Sequence[str], args: Sequence[Any]) -> Any:
    """Run script ``name`` with ``keys`` (fixed keys first) and ``args`` (channels first)."""
    script = scripts()[name]
    try:
        return await runner.call("EVALSHA", script.sha, len(keys), *keys, *args)
    except NoScriptError:
        return await runner.call("EVAL", script.source, len(keys), *keys, *args)
