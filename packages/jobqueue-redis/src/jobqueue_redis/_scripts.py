"""The Lua scripts: package data under ``lua/``, loaded once, run with EVALSHA.

Each script is the generated key header (``_keys.lua_header``), then
``common.lua``, then its own file. Scripts are registered on a connection
pool's first connect (one pipelined SCRIPT LOAD); a NOSCRIPT reply (server
restarted, SCRIPT FLUSH) falls back to EVAL, which caches the script again.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any, Protocol

from redis.exceptions import NoScriptError

from ._keys import lua_header

__all__ = ["SCRIPT_NAMES", "CommandRunner", "Script", "run_script", "scripts"]

SCRIPT_NAMES = (
    "abort",
    "acquire_lock",
    "cancel",
    "claim_landed",
    "complete",
    "counts",
    "delete",
    "dequeue",
    "enqueue",
    "fail",
    "get_many",
    "list_jobs",
    "list_workers",
    "next_lease_expiry",
    "purge",
    "recover_stalled",
    "register_worker",
    "release",
    "release_lock",
    "renew_leases",
    "retry",
    "retry_failed",
    "unregister_worker",
    "update_ttl",
)


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


def _read(name: str) -> str:
    return resources.files("jobqueue_redis").joinpath("lua", f"{name}.lua").read_text(encoding="utf-8")


@cache
def scripts() -> dict[str, Script]:
    """Every script by name, read from the package data once per process."""
    prelude = lua_header() + _read("common")
    loaded: dict[str, Script] = {}
    for name in SCRIPT_NAMES:
        source = f"{prelude}\n-- {name}.lua\n{_read(name)}"
        loaded[name] = Script(name, source, hashlib.sha1(source.encode()).hexdigest())
    return loaded


async def run_script(runner: CommandRunner, name: str, base: str, *args: Any) -> Any:
    """Run script ``name`` for the namespace whose key prefix is ``base``."""
    script = scripts()[name]
    try:
        return await runner.call("EVALSHA", script.sha, 1, base, *args)
    except NoScriptError:
        return await runner.call("EVAL", script.source, 1, base, *args)
