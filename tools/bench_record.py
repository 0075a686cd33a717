"""What a benchmark run writes to ``docs/benchmarks/``: every repetition as JSON Lines, and the table.

``<stamp>-<label>.jsonl`` starts with one ``{"kind": "run", ...}`` line (command,
machine, versions), then one ``{"kind": "value", "system", "metric", "run", "value"}``
line per measurement and one ``{"kind": "note"}`` per note. ``<stamp>-<label>.md``
holds the same run as the rendered table, with the machine and versions above it.
The README's figures are copied from a committed pair.
"""

from __future__ import annotations

import json
import os
import platform
import re
import shutil
import subprocess
import sys
import time
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

from tools.bench_report import Results

__all__ = ["add_profiles", "machine", "write_run"]

_PACKAGES = (
    "jobqueue-core",
    "jobqueue-redis",
    "jobqueue-file",
    "jobqueue-postgres",
    "redis",
    "msgpack",
    "asyncpg",
    "asyncpg",
)
_SERVERS = (("redis-server", "--version"), ("valkey-server", "--version"), ("postgres", "--version"))


def _command_version(argv: list[str]) -> str | None:
    binary = shutil.which(argv[0]) or next(
        iter(sorted(Path("/usr/lib/postgresql").glob(f"*/bin/{argv[0]}"))), None
    )
    if binary is None:
        return None
    try:
        out = subprocess.run([str(binary), *argv[1:]], capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    match = re.search(r"v=(\S+)|(\d+\.\d+(?:\.\d+)?)", out)
    return None if match is None else match.group(1) or match.group(2)


def machine() -> dict[str, Any]:
    """The machine, the Python and the versions a run measured."""
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    versions: dict[str, str | None] = {}
    for package in _PACKAGES:
        try:
            versions[package] = version(package)
        except PackageNotFoundError:
            versions[package] = None
    for argv in _SERVERS:
        versions[argv[0]] = _command_version(list(argv))
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "system": f"{platform.system()} {platform.release()}",
        "python": sys.version.split()[0],
        "versions": versions,
        "load_average": os.getloadavg(),
    }


def write_run(
    results: Results, *, command: str, table: str, directory: Path, label: str
) -> tuple[Path, Path]:
    """Write the run's JSON Lines and Markdown; return both paths."""
    directory.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y-%m-%dT%H%M%SZ", time.gmtime())
    facts = machine()
    jsonl, markdown = directory / f"{stamp}-{label}.jsonl", directory / f"{stamp}-{label}.md"
    lines: list[dict[str, Any]] = [{"kind": "run", "stamp": stamp, "command": command, "machine": facts}]
    for system, metrics in sorted(results.values.items()):
        for metric, values in sorted(metrics.items()):
            lines += [
                {"kind": "value", "system": system, "metric": metric, "run": i + 1, "value": value}
                for i, value in enumerate(values)
            ]
    lines += [
        {"kind": "commands", "what": what, "per_job": calls} for what, calls in results.commands.items()
    ]
    lines += [{"kind": "note", "text": note} for note in results.notes]
    jsonl.write_text("".join(json.dumps(line, sort_keys=True) + "\n" for line in lines))
    versions = ", ".join(f"{name} {value}" for name, value in facts["versions"].items() if value)
    head = [
        f"# Benchmark {stamp}",
        "",
        f"- machine: {facts['cpu']}, {facts['cores']} cores, {facts['system']}, Python {facts['python']}",
        f"- versions: {versions}",
        f"- load average at the end: {', '.join(f'{x:.2f}' for x in facts['load_average'])}",
        f"- every repetition: [{jsonl.name}]({jsonl.name})",
        "",
    ]
    markdown.write_text("\n".join(head) + table + "\n")
    return jsonl, markdown


def add_profiles(markdown: Path, profiles: list[str]) -> None:
    """Append ``--profile`` output to a run's Markdown: where the time of a missed goal goes, kept with it."""
    fenced = "".join(f"\n```\n{profile}\n```\n" for profile in profiles)
    markdown.write_text(markdown.read_text() + "\n## Profiles (`--profile`)\n" + fenced)
