"""A Markdown summary of chaos results written by ``tools/chaos.py --json-out``: one column per file.

    uv run python tools/chaos_summary.py docs/chaos/*.json > docs/chaos/README.md

Every row any result has is shown, in the order the report prints them, so a
new backend or a new check needs no change here. The README's reliability
figures are quoted from this output.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

__all__ = ["main", "render"]

_SKIP = {"backend"}


def _cell(row: dict[str, Any] | None) -> str:
    if row is None:
        return "—"
    value = str(row["value"]).replace("|", "\\|")
    return value if row["ok"] is not False else f"**FAIL** {value}"


def render(results: list[tuple[Path, dict[str, Any]]]) -> str:
    """The summary of ``results`` (path, parsed JSON) as Markdown."""
    names: list[str] = []
    tables: list[dict[str, dict[str, Any]]] = []
    for _, result in results:
        rows = {row["name"]: row for row in result["rows"]}
        tables.append(rows)
        names += [name for name in rows if name not in names and name not in _SKIP]
    columns = [str(result.get("config", {}).get("backend", path.stem)) for path, result in results]
    lines = [
        "# Chaos runs",
        "",
        "Written by `tools/chaos_summary.py` from the JSON results next to this file",
        "(`tools/chaos.py --json-out`); the README's reliability figures quote it.",
        "",
        "| run | " + " | ".join(columns) + " |",
        "|:--|" + "--:|" * len(columns),
    ]
    facts: list[tuple[str, Callable[[Path, dict[str, Any]], str]]] = [
        ("result file", lambda path, result: f"[{path.name}]({path.name})"),
        ("passed", lambda path, result: "yes" if result["passed"] else "**no**"),
        ("command", lambda path, result: f"`{result.get('command', '?')}`"),
        ("started (UTC)", lambda path, result: str(result.get("started", "?"))),
        ("server", lambda path, result: " ".join(str(result.get("server", "—")).split()[:3])),
        ("seed", lambda path, result: str(result.get("config", {}).get("seed", "?"))),
        (
            "load average (1 min) at start / end, CPUs",
            lambda path, result: (
                f"{result.get('load_average_at_start', ['?'])[0]:.1f} /"
                f" {result.get('load_average_at_end', ['?'])[0]:.1f}, {result.get('cpus', '?')}"
            ),
        ),
    ]
    for label, fact in facts:
        lines.append(f"| {label} | " + " | ".join(fact(path, result) for path, result in results) + " |")
    for name in names:
        lines.append(f"| {name} | " + " | ".join(_cell(table.get(name)) for table in tables) + " |")
    for (path, result), column in zip(results, columns, strict=True):
        if not result["passed"]:
            failures = [line for line in result["details"] if not line.startswith("  fault ")]
            lines += ["", f"Failures of {column} ({path.name}):", "", "```", *failures, "```"]
    return "\n".join(lines) + "\n"


def main(argv: list[str]) -> int:
    """Print the summary of the JSON files named in ``argv``."""
    if not argv:
        print(__doc__, file=sys.stderr)
        return 2
    paths = [Path(arg) for arg in argv]
    sys.stdout.write(render([(path, json.loads(path.read_text())) for path in paths]))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
