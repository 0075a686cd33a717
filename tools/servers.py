"""Throw-away ``redis-server`` / ``valkey-server`` processes for tests, benchmarks and chaos runs.

A ``ServerProcess`` runs one server on a free loopback port in its own temp
directory (AOF on when asked). It can be SIGKILLed and started again on the
same port with the same data directory, which is how the restart tests
simulate a crash. Synchronous on purpose: async callers wrap the slow calls
in ``asyncio.to_thread``.

    with ServerProcess.start_new("redis", aof=True) as server:
        print(server.url)      # redis://127.0.0.1:PORT/0
        server.kill()          # SIGKILL, like a crash
        server.start()         # same port, same data
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from types import TracebackType
from typing import Literal, Self

__all__ = ["BINARIES", "ServerKind", "ServerProcess", "find_binary", "free_port"]

ServerKind = Literal["redis", "valkey"]

BINARIES: dict[ServerKind, str] = {"redis": "redis-server", "valkey": "valkey-server"}

_READY_TIMEOUT = 15.0


def find_binary(kind: ServerKind) -> str | None:
    """Path of the server binary for ``kind``, or None when it is not installed."""
    return shutil.which(BINARIES[kind])


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class ServerProcess:
    """One server process on a fixed port and data directory; restartable."""

    def __init__(
        self,
        kind: ServerKind,
        *,
        aof: bool = False,
        port: int | None = None,
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
        self.host = host
        self.launcher = launcher
        self._tmp = tempfile.TemporaryDirectory(prefix=f"jobqueue-{kind}-")
        self.dir = Path(self._tmp.name)
        self._proc: subprocess.Popen[bytes] | None = None

    @classmethod
    def start_new(cls, kind: ServerKind, *, aof: bool = False) -> Self:
        """Create a server and start it."""
        server = cls(kind, aof=aof)
        server.start()
        return server

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
        ]  # fmt: skip
        self._proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, start_new_session=True)
        self._wait_ready()

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + _READY_TIMEOUT
        while time.monotonic() < deadline:
            if not self.running:
                raise RuntimeError(f"{self.kind} server exited at start; log:\n{self.log_tail()}")
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
        proc.wait(timeout=_READY_TIMEOUT)

    def log_tail(self, lines: int = 20) -> str:
        """The end of the server's log file."""
        log = self.dir / "server.log"
        if not log.exists():
            return "(no log)"
        return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])

    def close(self) -> None:
        """Kill the server and remove its directory."""
        self.kill()
        self._tmp.cleanup()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def _answers_ping(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(64).startswith(b"+PONG")
    except OSError:
        return False
