"""Every Redis key and channel name of a namespace, built in one place.

A namespace ``default`` under prefix ``jq`` lives under ``jq:{default}:``.
The braces are the hash tag: every key and channel of one namespace shares
it, so a namespace lives in one cluster slot and each Lua script touches one
slot. The tag is the first ``{...}`` of a key and comes before any job id,
so ids with braces or colons cannot change it. Prefix and namespace names
must not contain braces themselves.

The Lua scripts get the names below through a generated header (see
``_scripts``), so a key is renamed here and nowhere else.
"""

from __future__ import annotations

from dataclasses import dataclass

from jobqueue import Channel, EventKind

__all__ = ["FIXED_KEYS", "KEY_PREFIXES", "Keys", "lua_header", "validate_name"]

# Keys every namespace has (a Redis key exists only while it holds something).
FIXED_KEYS: dict[str, str] = {
    "Q_READY": "queue",  # list of ready job ids, claimed from the head
    "Z_SCHEDULED": "scheduled",  # delayed queued jobs: id -> run_at
    "Z_RETRIES": "retries",  # failing jobs waiting for their retry: id -> run_at
    "Z_LEASES": "leases",  # processing jobs: id -> lease_until
    "Z_COMPLETED": "completed",  # completed jobs: id -> expires_at (pruned as they expire)
    "Z_FAILED": "failed",  # failed jobs: id -> expires_at (pruned as they expire)
    "Z_JOBS": "jobs",  # every live job: id -> created_at, for listing newest first
    "Z_WORKERS": "workers",  # registered workers: id -> expires_at
    "H_HEARTBEATS": "heartbeats",  # worker -> last_seen
    "S_HOLDERS": "holders",  # workers whose processing set is not empty
    "Z_LANDINGS": "landings",  # workers in a blocking wait: id -> deadline to claim what landed
}

# Per-id keys: the prefix followed by a job id, a worker id or a lock name.
KEY_PREFIXES: dict[str, str] = {
    "P_JOB": "job:",  # hash: one job
    "P_PROCESSING": "processing:",  # set: the jobs a worker holds
    "P_LANDING": "landing:",  # list: where a worker's BLMOVE drops an id before the claim script
    "P_LOCK": "lock:",  # string: leader lock owner
}

_CHANNELS: dict[Channel, str] = {
    Channel.EVENTS: "events",
    Channel.DONE: "done",
    Channel.CONTROL: "control",
}


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

    def fixed(self, lua_name: str) -> str:
        """A fixed key by its Lua name (``"Q_READY"`` -> ``jq:{default}:queue``)."""
        return self.base + FIXED_KEYS[lua_name]

    def job(self, job_id: str) -> str:
        """The hash of one job."""
        return self.base + KEY_PREFIXES["P_JOB"] + job_id

    def processing(self, worker_id: str) -> str:
        """The set of jobs ``worker_id`` holds."""
        return self.base + KEY_PREFIXES["P_PROCESSING"] + worker_id

    def landing(self, worker_id: str) -> str:
        """The list a blocking wait of ``worker_id`` moves a job id into."""
        return self.base + KEY_PREFIXES["P_LANDING"] + worker_id

    def channel(self, channel: Channel) -> str:
        """The pub/sub channel name of ``channel`` in this namespace."""
        return self.base + _CHANNELS[channel]

    @staticmethod
    def scan_pattern(prefix: str) -> str:
        """A SCAN pattern matching the keys of every namespace under ``prefix``."""
        escaped = "".join("\\" + ch if ch in "*?[]\\" else ch for ch in prefix)
        return f"{escaped}:{{*}}:*"

    @staticmethod
    def namespace_of(key: str, prefix: str) -> str | None:
        """The namespace whose job index or worker keys ``key`` is (None: another key)."""
        head = f"{prefix}:{{"
        if not key.startswith(head):
            return None
        name, sep, rest = key[len(head) :].partition("}:")
        if not sep or not name or "{" in name or rest not in _PRESENCE_KEYS:
            return None
        return name


_PRESENCE_KEYS = {FIXED_KEYS["Z_JOBS"], FIXED_KEYS["Z_WORKERS"], FIXED_KEYS["S_HOLDERS"]}


def lua_header() -> str:
    """Lua locals naming every key and channel, prepended to each script.

    ``KEYS[1]`` is the namespace's ``base``; scripts build every other key
    from it, so each call declares the slot it works in.
    """
    lines = ["local BASE = KEYS[1]"]
    for lua_name, suffix in {**FIXED_KEYS, **KEY_PREFIXES}.items():
        lines.append(f"local {lua_name} = BASE .. '{suffix}'")
    lines.append("local EVENT_CHANNELS = {")
    for kind in EventKind:
        names = ", ".join(f"BASE .. '{_CHANNELS[channel]}'" for channel in kind.channels)
        lines.append(f"  ['{kind.value}'] = {{{names}}},")
    lines.append("}")
    return "\n".join(lines) + "\n"
