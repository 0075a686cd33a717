"""A network partition for chaos runs: the server in its own network namespace, joined by a veth pair.

``NetworkJail.create()`` makes a namespace ``jqchaos-<pid>`` (the pid of the
supervisor that owns it) and a veth pair ``jqc<pid>h`` (host side) /
``jqc<pid>n`` (namespace side) with the addresses of one private /30. The
server started with ``launcher`` listens on ``ns_address``; ``cut()`` sets the
host end down (established connections stall, new ones fail with "network
unreachable"), ``restore()`` sets it up again. Only the link this run created
is touched. ``destroy()`` kills what still runs in the namespace and deletes
it (which deletes the veth pair too). ``clean_leftovers()`` does the same for
namespaces whose owner process is gone (a supervisor that was SIGKILLed).

Needs root (``CAP_NET_ADMIN`` and ``CAP_SYS_ADMIN``) and iproute2; without
them ``create()`` raises ``NetnsUnavailable`` with the reason, and the run
skips the partition fault.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import subprocess

__all__ = ["NetnsUnavailable", "NetworkJail", "clean_leftovers"]

_PREFIX = "jqchaos-"
_NET = "10.213"  # private; one /30 per owner pid inside 10.213.0.0/16


class NetnsUnavailable(RuntimeError):
    """Network namespaces cannot be created here; the message says why."""


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["ip", *args], capture_output=True, text=True, check=check, timeout=30)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _delete_namespace(name: str) -> None:
    """Kill every process left in namespace ``name`` (our server), then delete it."""
    pids = _ip("netns", "pids", name, check=False).stdout.split()
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, ValueError):
            os.kill(int(pid), signal.SIGKILL)
    _ip("netns", "del", name, check=False)


def clean_leftovers() -> list[str]:
    """Delete namespaces and host links of earlier runs whose supervisor is dead; return their names."""
    if shutil.which("ip") is None:
        return []
    removed = []
    listing = _ip("netns", "list", check=False).stdout
    for name in re.findall(rf"^({_PREFIX}(\d+))\b", listing, flags=re.MULTILINE):
        if not _alive(int(name[1])):
            _delete_namespace(name[0])
            removed.append(name[0])
    links = _ip("-o", "link", "show", check=False).stdout
    for name, pid in re.findall(r"^\d+: (jqc(\d+)h)[@:]", links, flags=re.MULTILINE):
        if not _alive(int(pid)):
            _ip("link", "del", name, check=False)
            removed.append(name)
    return removed


class NetworkJail:
    """One namespace and veth pair owned by this process."""

    def __init__(self) -> None:
        pid = os.getpid()
        self.namespace = f"{_PREFIX}{pid}"
        self.host_link = f"jqc{pid}h"
        self.ns_link = f"jqc{pid}n"
        block = (pid % 16384) * 4  # a /30 inside 10.213.0.0/16
        self.host_address = f"{_NET}.{block // 256}.{block % 256 + 1}"
        self.ns_address = f"{_NET}.{block // 256}.{block % 256 + 2}"
        self.created = False
        self.is_cut = False

    @property
    def launcher(self) -> tuple[str, ...]:
        """The command prefix that runs a program inside the namespace (``ip netns exec`` execs it)."""
        return ("ip", "netns", "exec", self.namespace)

    def create(self) -> None:
        """Create the namespace and the link; raise ``NetnsUnavailable`` when this machine cannot."""
        if shutil.which("ip") is None:
            raise NetnsUnavailable("iproute2 (`ip`) is not installed")
        in_use = _ip("-4", "-o", "addr", "show", check=False).stdout
        if f" {self.host_address}/" in in_use:
            raise NetnsUnavailable(f"{self.host_address} is already assigned on this host")
        steps = [
            ("netns", "add", self.namespace),
            ("link", "add", self.host_link, "type", "veth", "peer", "name", self.ns_link),
            ("link", "set", self.ns_link, "netns", self.namespace),
            ("addr", "add", f"{self.host_address}/30", "dev", self.host_link),
            ("link", "set", self.host_link, "up"),
            ("-n", self.namespace, "addr", "add", f"{self.ns_address}/30", "dev", self.ns_link),
            ("-n", self.namespace, "link", "set", self.ns_link, "up"),
            ("-n", self.namespace, "link", "set", "lo", "up"),
        ]
        for step in steps:
            done = _ip(*step, check=False)
            if step[0] == "netns":
                self.created = done.returncode == 0
            if done.returncode != 0:
                self.destroy()
                reason = done.stderr.strip() or f"exit {done.returncode}"
                raise NetnsUnavailable(f"`ip {' '.join(step)}` failed: {reason}")

    def cut(self) -> None:
        """Partition: set the host end of the link down."""
        _ip("link", "set", self.host_link, "down")
        self.is_cut = True

    def restore(self) -> None:
        """Heal the partition: set the host end up again."""
        _ip("link", "set", self.host_link, "up")
        self.is_cut = False

    def destroy(self) -> None:
        """Kill what runs inside, delete the namespace and the link (idempotent)."""
        if self.created:
            _delete_namespace(self.namespace)
            self.created = False
        _ip("link", "del", self.host_link, check=False)  # gone with the namespace, unless it was moved
