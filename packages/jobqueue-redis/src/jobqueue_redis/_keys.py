"""Every Redis key and channel name of a namespace, built in one place.

A namespace ``default`` under prefix ``jq`` lives under ``jq:{default}:``.
The braces are the hash tag: every key and channel of one namespace shares
it, so a namespace lives in one cluster slot and each Lua script touches one
slot. The tag is the first ``{...}`` of a key and comes before any job id,
so ids with braces or colons cannot change it. Prefix and namespace names
must not contain braces themselves.

Scripts never build a key: every call passes the namespace's fixed keys
first (``KEYS[1..N_FIXED]``, in the order of ``FIXED_KEYS``), then the
per-job or lock keys it needs, and the three channel names as ``ARGV[1..3]``.
The generated header (``lua_header``) names them, so a key is renamed here
and nowhere else.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from jobqueue.storage import Channel, EventKind, rules

__all__ = ["FIXED_KEYS", "HEARD_CHANNELS", "Keys", "lua_header", "validate_name"]

# The fixed keys of a namespace, in KEYS order (a Redis key exists only while it holds something).
FIXED_KEYS: dict[str, str] = {
    "K_LIVE": "live",  # hash: id -> packed record of every job not finished (queued, processing, failing)
    "K_READY": "ready",  # zset: ready ids, score = priority band * 2^40 + sequence (lowest claimed first)
    "K_SCHEDULED": "scheduled",  # zset: delayed queued jobs, id -> run_at
    "K_RETRIES": "retries",  # zset: failing jobs waiting for their retry, id -> run_at
    "K_LEASES": "leases",  # zset: processing jobs, id -> lease_until
    "K_COMPLETED": "completed",  # zset: completed jobs, id -> expires_at
    "K_FAILED": "failed",  # zset: failed jobs, id -> expires_at
    "K_JOBS": "jobs",  # zset: every job with a record, id -> created_at (newest first; enqueue dedups on it)
    "K_WORKERS": "workers",  # zset: registered workers, id -> expires_at
    "K_HEARTBEATS": "heartbeats",  # hash: worker -> last heartbeat
    "K_WORKERINFO": "workerinfo",  # hash: worker -> the info registered with its last heartbeat
    "K_MARKER": "marker",  # zset: "ready jobs may exist", popped by blocked dequeues (BZPOPMIN)
    "K_SEQ": "seq",  # string: the FIFO sequence of ready jobs, dropped when the namespace has no live job
    "K_HEARD_EVENTS": "heard:events",  # zset: tokens of the processes listening on events (_listening)
    "K_HEARD_DONE": "heard:done",  # zset: tokens of the processes listening on done
}

# Per-id keys, declared as extra KEYS by the scripts that touch them.
_JOB = "job:"  # string: the packed record of a finished job, expiring natively (PXAT)
_LOCK = "lock:"  # string: leader lock owner

_CHANNELS: dict[Channel, str] = {
    Channel.EVENTS: "events",
    Channel.DONE: "done",
    Channel.CONTROL: "control",
}

# The channels published only while a process listens (``_listening``); control always is.
HEARD_CHANNELS = frozenset({Channel.EVENTS, Channel.DONE})

# Keys whose presence means a namespace holds jobs or workers (list_namespaces).
_PRESENCE_KEYS = frozenset({FIXED_KEYS["K_LIVE"], FIXED_KEYS["K_JOBS"], FIXED_KEYS["K_WORKERS"]})


def validate_name(value: object, what: str) -> str:
    """Check a prefix or namespace name: a non-empty str without ``{`` or ``}``."""
    if not isinstance(value, str):
        raise TypeError(f"{what} must be a str, not {type(value).__name__}")
    if not value:
        raise ValueError(f"{what} must not be empty")
    if "{" in value or "}" in value:
        raise ValueError(f"{what} must not contain '{{' or '}}' (they delimit the hash tag): {value!r}")
    return value


@dataclass(frozen=True, slots=True)
class Keys:
    """Key and channel names of one namespace."""

    prefix: str
    namespace: str

    @property
    def base(self) -> str:
        """The part every key of the namespace starts with: ``prefix:{namespace}:``."""
        return f"{self.prefix}:{{{self.namespace}}}:"

    def fixed(self, name: str) -> str:
        """A fixed key by its short name (``"ready"`` -> ``jq:{default}:ready``)."""
        if name not in FIXED_KEYS.values():
            raise KeyError(f"no fixed key named {name!r}")
        return self.base + name

    def fixed_all(self) -> list[str]:
        """Every fixed key, in the order the scripts expect them in ``KEYS``."""
        return [self.base + suffix for suffix in FIXED_KEYS.values()]

    def job(self, job_id: str) -> str:
        """The record of a finished job."""
        return self.base + _JOB + job_id

    def jobs(self, job_ids: Iterable[str]) -> list[str]:
        """``job`` of each id, the common part built once (a batch's keys)."""
        head = self.base + _JOB
        return [head + job_id for job_id in job_ids]

    def lock(self, name: str) -> str:
        """A leader lock."""
        return self.base + _LOCK + name

    def channel(self, channel: Channel) -> str:
        """The pub/sub channel name of ``channel`` in this namespace."""
        return self.base + _CHANNELS[channel]

    @staticmethod
    def channel_name(channel: Channel) -> str:
        """The last part of ``channel``'s name (``events``), as scripts take it in ``ARGV``."""
        return _CHANNELS[channel]

    def channels(self) -> list[str]:
        """The three channel names, in the order the scripts expect them in ``ARGV``."""
        return [self.base + _CHANNELS[channel] for channel in (Channel.EVENTS, Channel.DONE, Channel.CONTROL)]

    @staticmethod
    def scan_pattern(prefix: str) -> str:
        """A SCAN pattern matching the keys of every namespace under ``prefix``."""
        escaped = "".join("\\" + ch if ch in "*?[]\\" else ch for ch in prefix)
        return f"{escaped}:{{*}}:*"

    @staticmethod
    def namespace_of(key: str, prefix: str) -> str | None:
        """The namespace whose job index, live hash or worker registry ``key`` is (None: another key)."""
        head = f"{prefix}:{{"
        if not key.startswith(head):
            return None
        name, sep, rest = key[len(head) :].partition("}:")
        if not sep or not name or "{" in name or rest not in _PRESENCE_KEYS:
            return None
        return name


def lua_header(*, sharded: bool = False) -> str:
    """Lua locals naming every fixed key, channel and constant, prepended to each script.

    ``sharded``: events go out with ``SPUBLISH`` (a cluster) instead of ``PUBLISH``.
    """
    lines = [f"local {lua_name} = KEYS[{i}]" for i, lua_name in enumerate(FIXED_KEYS, start=1)]
    lines += [
        f"local PUBLISH = '{'SPUBLISH' if sharded else 'PUBLISH'}'",
        f"local N_FIXED = {len(FIXED_KEYS)}  -- per-job keys follow at KEYS[N_FIXED + i]",
        "local CH_EVENTS, CH_DONE, CH_CONTROL = ARGV[1], ARGV[2], ARGV[3]",
        "local N_CH = 3  -- a script's own arguments follow at ARGV[N_CH + i]",
        f"local MAX_DEADLINE_MS = {rules.MAX_DEADLINE_MS}",
        f"local PRIORITY_MAX = {rules.PRIORITY_MAX}",
        f"local INLINE_LIMIT = {rules.INLINE_RESULT_LIMIT}",
        "local HEARD = {[CH_EVENTS] = K_HEARD_EVENTS, [CH_DONE] = K_HEARD_DONE}  -- flags, see _listening",
        "local EVENT_CHANNELS = {",
    ]
    lua_channels = {Channel.EVENTS: "CH_EVENTS", Channel.DONE: "CH_DONE", Channel.CONTROL: "CH_CONTROL"}
    for kind in EventKind:
        names = ", ".join(lua_channels[channel] for channel in kind.channels)
        lines.append(f"  ['{kind.value}'] = {{{names}}},")
    lines.append("}")
    return "\n".join(lines) + "\n"
