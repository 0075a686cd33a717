"""Throw-away ``redis-server`` / ``valkey-server`` / PostgreSQL processes for tests, benchmarks and chaos runs.

A ``ServerProcess`` runs one server on a free loopback port in its own temp
directory (AOF on when asked); ``tools.clusters`` builds clusters of them. It can be SIGKILLed and started again on the
same port with the same data directory, which is how the restart tests
simulate a crash. Synchronous on purpose: async callers wrap the slow calls
in ``asyncio.to_thread``.

    with ServerProcess.start_new("redis", aof=True) as server:
        print(server.url)      # redis://127.0.0.1:PORT/0
        server.kill()          # SIGKILL, like a crash
        server.start()         # same port, same data

``PostgresServer`` does the same for PostgreSQL, from the Debian binaries
(``initdb``, ``pg_ctl`` in ``/usr/lib/postgresql/*/bin``), run as the
``postgres`` system user when we are root (PostgreSQL refuses to run as root).
"""

from __future__ import annotations

import glob
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Container, Sequence
from pathlib import Path
from types import TracebackType
from typing import Literal, Protocol, Self, TypeVar

__all__ = [
    "BINARIES",
    "CLIS",
    "PostgresServer",
    "READY_TIMEOUT",
    "ServerKind",
    "ServerProcess",
    "find_binary",
    "find_cli",
    "find_postgres_bin",
    "PortTaken",
    "free_port",
    "start_on_free_ports",
]

ServerKind = Literal["redis", "valkey"]

BINARIES: dict[ServerKind, str] = {"redis": "redis-server", "valkey": "valkey-server"}
CLIS: dict[ServerKind, str] = {"redis": "redis-cli", "valkey": "valkey-cli"}

READY_TIMEOUT = 15.0


def find_binary(kind: ServerKind) -> str | None:
    """Path of the server binary for ``kind``, or None when it is not installed."""
    return shutil.which(BINARIES[kind])


def find_cli(kind: ServerKind) -> str | None:
    """Path of the command-line client for ``kind`` (it creates clusters), or None."""
    return shutil.which(CLIS[kind])


def free_port(exclude: Container[int] = ()) -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now (and not in ``exclude``)."""
    while True:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.bind(("127.0.0.1", 0))
            port: int = sock.getsockname()[1]
        if port not in exclude:
            return port


class PortTaken(RuntimeError):
    """A server could not bind a port that was free when it was picked (another process took it)."""


_PORT_ATTEMPTS = 5


class _Startable(Protocol):
    def start(self) -> None: ...
    def close(self) -> None: ...


T = TypeVar("T", bound=_Startable)


def start_on_free_ports(make: Callable[[], T]) -> T:
    """``make()`` a throw-away server and start it; on ``PortTaken``, close it and try new free ports.

    A free port is only free when it is picked: another test process, or an
    outgoing connection's ephemeral port, can take it before the server binds.
    """
    for attempt in range(_PORT_ATTEMPTS):
        server = make()
        try:
            server.start()
        except PortTaken:
            server.close()
            if attempt == _PORT_ATTEMPTS - 1:
                raise
            continue
        except BaseException:
            server.close()
            raise
        return server
    raise AssertionError("unreachable")


class Throwaway:
    """A server the tests own: ``close`` kills it and removes its files; a context manager for that."""

    dir: Path

    def kill(self) -> None:
        raise NotImplementedError

    def close(self) -> None:
        """Kill the server and remove its directory."""
        self.kill()
        self._tmp.cleanup()

    def log_tail(self, lines: int = 20) -> str:
        """The end of the server's log file."""
        log = self.dir / "server.log"
        if not log.exists():
            return "(no log)"
        return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    _tmp: tempfile.TemporaryDirectory[str]


class ServerProcess(Throwaway):
    """One server process on a fixed port and data directory; restartable."""

    def __init__(
        self,
        kind: ServerKind,
        *,
        aof: bool = False,
        port: int | None = None,
        extra_args: Sequence[str] = (),
        host: str = "127.0.0.1",
        launcher: tuple[str, ...] = (),
    ) -> None:
        """``host``: the address to bind and dial; ``launcher``: a command prefix (``ip netns exec NS``).

        The launcher must ``exec`` the server, so that the process id is the server's.
        """
        binary = find_binary(kind)
        if binary is None:
            raise FileNotFoundError(f"{BINARIES[kind]} is not installed (see tools/install-servers.sh)")
        self.kind = kind
        self.binary = binary
        self.aof = aof
        self.port = port or free_port()
        self.extra_args = tuple(extra_args)
        self.host = host
        self.launcher = launcher
        self._tmp = tempfile.TemporaryDirectory(prefix=f"jobqueue-{kind}-")
        self.dir = Path(self._tmp.name)
        self._proc: subprocess.Popen[bytes] | None = None

    @classmethod
    def start_new(cls, kind: ServerKind, *, aof: bool = False) -> Self:
        """Create a server and start it (on other free ports while the ones picked were taken meanwhile)."""
        return start_on_free_ports(lambda: cls(kind, aof=aof))

    @property
    def url(self) -> str:
        """``redis://127.0.0.1:PORT/0``."""
        return f"redis://{self.host}:{self.port}/0"

    @property
    def running(self) -> bool:
        """True while the process is alive."""
        return self._proc is not None and self._proc.poll() is None

    @property
    def pid(self) -> int | None:
        """The process id, while it runs."""
        return self._proc.pid if self.running and self._proc is not None else None

    def start(self) -> None:
        """Start the server (again) on this port and data directory; wait until it answers PING."""
        if self.running:
            raise RuntimeError(f"{self.kind} server on port {self.port} is already running")
        args = [
            *self.launcher,
            self.binary,
            "--port", str(self.port),
            "--bind", self.host,
            "--dir", str(self.dir),
            "--save", "",
            "--appendonly", "yes" if self.aof else "no",
            "--appendfsync", "always",
            "--daemonize", "no",
            "--protected-mode", "no",
            "--logfile", str(self.dir / "server.log"),
            *self.extra_args,
        ]  # fmt: skip
        self._proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, start_new_session=True)
        self._wait_ready()

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + READY_TIMEOUT
        while time.monotonic() < deadline:
            if not self.running:
                log = self.log_tail()
                error = PortTaken if "Address already in use" in log else RuntimeError
                raise error(f"{self.kind} server exited at start; log:\n{log}")
            if _answers_ping(self.host, self.port):
                return
            time.sleep(0.02)
        raise TimeoutError(f"{self.kind} server on port {self.port} not ready; log:\n{self.log_tail()}")

    def kill(self) -> None:
        """SIGKILL the server, like a crash, and wait until the port is free."""
        self._signal(signal.SIGKILL)

    def stop(self) -> None:
        """Stop the server with SIGTERM (clean shutdown)."""
        self._signal(signal.SIGTERM)

    def restart(self) -> None:
        """SIGKILL then start again on the same port with the same data."""
        self.kill()
        self.start()

    def _signal(self, sig: signal.Signals) -> None:
        proc = self._proc
        if proc is None or proc.poll() is not None:
            return
        os.kill(proc.pid, sig)
        proc.wait(timeout=READY_TIMEOUT)


def _answers_ping(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(64).startswith(b"+PONG")
    except OSError:
        return False


# --------------------------------------------------------------------- PostgreSQL


def find_postgres_bin() -> Path | None:
    """The directory holding ``initdb`` and ``pg_ctl`` (newest Debian version first, then PATH), or None."""
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=_version_key, reverse=True)
    on_path = shutil.which("initdb")
    if on_path:
        candidates.append(on_path)
    for initdb in candidates:
        bindir = Path(initdb).parent
        if (bindir / "pg_ctl").exists():
            return bindir
    return None


def _version_key(path: str) -> int:
    version = Path(path).parent.parent.name
    return int(version) if version.isdigit() else 0


class PostgresServer(Throwaway):
    """A throw-away PostgreSQL cluster on a free loopback port, trust auth; restartable.

    ``kill`` is ``pg_ctl stop -m immediate`` (a crash: no shutdown checkpoint,
    recovery from the WAL at the next start), ``stop`` a fast clean shutdown.
    """

    def __init__(
        self, *, port: int | None = None, host: str = "127.0.0.1", launcher: tuple[str, ...] = ()
    ) -> None:
        """``host``: the address to listen on and dial; ``launcher``: a command prefix for ``pg_ctl start``.

        With ``ip netns exec NS`` as the launcher, the postmaster runs in that network namespace.
        """
        bindir = find_postgres_bin()
        if bindir is None:
            raise FileNotFoundError(
                "PostgreSQL (initdb, pg_ctl) is not installed (see tools/install-servers.sh)"
            )
        self.bindir = bindir
        self.port = port or free_port()
        self.host = host
        self.launcher = launcher
        self._tmp = tempfile.TemporaryDirectory(prefix="jobqueue-postgres-")
        self.dir = Path(self._tmp.name)
        self.data = self.dir / "data"
        # PostgreSQL will not run as root: run its tools as the postgres user, in a directory it owns.
        self._as_user: list[str] = []
        if os.geteuid() == 0:
            self._as_user = ["runuser", "-u", "postgres", "--"]
            shutil.chown(self.dir, "postgres", "postgres")
        self._run(
            "initdb",
            "-D",
            str(self.data),
            "-U",
            "postgres",
            "--auth=trust",
            "-E",
            "UTF8",
            "--no-sync",
            "--no-instructions",
        )
        if host != "127.0.0.1":  # initdb trusts loopback only; the clients of a namespace dial from its link
            with (self.data / "pg_hba.conf").open("a") as hba:
                hba.write("host all all samenet trust\n")

    @classmethod
    def start_new(cls) -> Self:
        """Create a cluster and start it."""
        server = cls()
        try:
            server.start()
        except BaseException:
            server._tmp.cleanup()
            raise
        return server

    @property
    def url(self) -> str:
        """``postgresql://postgres@HOST:PORT/postgres``."""
        return f"postgresql://postgres@{self.host}:{self.port}/postgres"

    @property
    def binary(self) -> Path:
        """The server program (``postgres --version`` names the release)."""
        return self.bindir / "postgres"

    @property
    def pid(self) -> int | None:
        """The postmaster's process id (first line of ``postmaster.pid``), while it runs."""
        try:
            first = (self.data / "postmaster.pid").read_text().split("\n", 1)[0]
        except OSError:
            return None
        return int(first) if first.strip().isdigit() else None

    @property
    def running(self) -> bool:
        """True while the postmaster runs (``pg_ctl status``)."""
        return self._run("pg_ctl", "status", "-D", str(self.data), check=False).returncode == 0

    def start(self) -> None:
        """Start the server (again) on this port and data directory; ``pg_ctl -w`` waits until it accepts connections."""
        options = (
            f"-p {self.port} -c listen_addresses={self.host} -k {self.dir} -c max_connections=300 "
            # Throw-away data: skip fsync (a process crash loses nothing the OS already has; commits stay synchronous).
            "-c fsync=off -c full_page_writes=off"
        )
        if (self.bindir.parent / "lib" / "pg_stat_statements.so").exists():
            options += (
                " -c shared_preload_libraries=pg_stat_statements"  # statements per job, counted by tests
            )
        self._run("pg_ctl", "start", "-w", "-t", str(int(READY_TIMEOUT * 4)), "-D", str(self.data),
                  "-l", str(self.dir / "server.log"), "-o", options, launcher=self.launcher)  # fmt: skip

    def kill(self) -> None:
        """Stop like a crash: ``pg_ctl stop -m immediate`` (no checkpoint; the next start replays the WAL)."""
        self._stop("immediate")

    def stop(self) -> None:
        """Stop cleanly (``-m fast``: open sessions are ended, then a checkpoint)."""
        self._stop("fast")

    def restart(self) -> None:
        """Crash then start again on the same port with the same data."""
        self.kill()
        self.start()

    def _stop(self, mode: str) -> None:
        if self.running:
            self._run("pg_ctl", "stop", "-w", "-D", str(self.data), "-m", mode)

    def _run(
        self, tool: str, *args: str, check: bool = True, launcher: tuple[str, ...] = ()
    ) -> subprocess.CompletedProcess[bytes]:
        result = subprocess.run(
            [*launcher, *self._as_user, str(self.bindir / tool), *args],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            check=False,
            start_new_session=True,
        )
        if check and result.returncode != 0:
            output = (result.stdout + result.stderr).decode(errors="replace")
            raise RuntimeError(
                f"{tool} {' '.join(args)} failed ({result.returncode}):\n{output}\n{self.log_tail()}"
            )
        return result
