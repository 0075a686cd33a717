"""A throw-away PostgreSQL for tests, benchmarks and chaos runs, like ``tools.servers.ServerProcess``.

From the Debian binaries (``initdb``, ``pg_ctl`` in ``/usr/lib/postgresql/*/bin``),
run as the ``postgres`` system user when we are root (PostgreSQL refuses to run as root).
"""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Self

from tools.servers import READY_TIMEOUT, PortTaken, Throwaway, free_port, start_on_free_ports

__all__ = ["PostgresServer", "find_postgres_bin"]


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
        """Create a server and start it (on another free port while the one picked was taken meanwhile)."""
        return start_on_free_ports(cls)

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
        try:
            self._run("pg_ctl", "start", "-w", "-t", str(int(READY_TIMEOUT * 4)), "-D", str(self.data),
                      "-l", str(self.dir / "server.log"), "-o", options, launcher=self.launcher)  # fmt: skip
        except RuntimeError as exc:
            if "Address already in use" in str(exc):
                raise PortTaken(str(exc)) from None
            raise

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
