"""Throw-away ``redis-server`` / ``valkey-server`` processes for tests, benchmarks and chaos runs.

A ``ServerProcess`` runs one server on a free loopback port in its own temp
directory (AOF on when asked); ``tools.clusters`` builds clusters of them. It can be SIGKILLed and started again on the
same port with the same data directory, which is how the restart tests
simulate a crash. Synchronous on purpose: async callers wrap the slow calls
in ``asyncio.to_thread``.

    with ServerProcess.start_new("redis", aof=True) as server:
        print(server.url)      # redis://127.0.0.1:PORT/0
        server.kill()          # SIGKILL, like a crash
        server.start()         # same port, same data

``tools.postgres_server.PostgresServer`` does the same for PostgreSQL.
"""

from __future__ import annotations

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
    "READY_TIMEOUT",
    "ServerKind",
    "ServerProcess",
    "find_binary",
    "find_cli",
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
