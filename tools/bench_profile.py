"""Where the time goes in a jobqueue drain: py-spy (sampling, from .bench/venv) or cProfile.

py-spy samples the worker process from outside at 250 Hz without slowing it
much; the summary lists the functions that were on CPU (leaf frames, "self")
and the jobqueue functions with everything they called ("total"), in percent
of the event loop thread's busy samples (idle ones, waiting in epoll, are
counted apart). Without py-spy the worker runs under cProfile, which
inflates the cost of small Python calls.
"""

from __future__ import annotations

import io
import pstats
import re
import subprocess
from collections import Counter
from pathlib import Path

__all__ = ["cprofile_summary", "pyspy_binary", "pyspy_start", "pyspy_summary"]

_FRAME = re.compile(r"^(?P<func>.*) \((?P<file>[^()]*?)(?::(?P<line>\d+))?\)$")


def pyspy_binary(root: Path) -> Path | None:
    binary = root / ".bench" / "venv" / "bin" / "py-spy"
    return binary if binary.exists() else None


def pyspy_start(binary: Path, pid: int, output: Path) -> subprocess.Popen[bytes]:
    """Sample ``pid`` until it exits, writing folded stacks to ``output``."""
    return subprocess.Popen(
        [
            str(binary),
            "record",
            "--pid",
            str(pid),
            "--rate",
            "250",
            "--format",
            "raw",
            "--output",
            str(output),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def _short(frame: str) -> str:
    match = _FRAME.match(frame.strip())
    if match is None:
        return frame.strip()
    path = match["file"]
    for marker in ("/src/", "/site-packages/", "/lib/python3.11/"):
        if marker in path:
            path = path.split(marker, 1)[1]
            break
    return f"{path}:{match['func']}"


def pyspy_summary(folded: Path, top: int = 20) -> str:
    """Self and total shares of the sampled stacks, for the event loop's thread and the others."""
    own: dict[str, Counter[str]] = {"loop": Counter(), "threads": Counter()}
    total: Counter[str] = Counter()
    samples: Counter[str] = Counter()
    for line in folded.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = [_short(frame) for frame in stack.split(";")]
        if any(frame.endswith("wait_line.<locals>.read") for frame in frames):
            continue  # the driver's stdin reader
        where = "loop" if any(frame.endswith("run_forever") for frame in frames) else "threads"
        if frames[-1].endswith(("select", "_worker", "Condition.wait", "SimpleQueue.get")):
            samples[f"{where} idle"] += count  # waiting for work
            continue
        samples[where] += count
        own[where][frames[-1]] += count
        for name in set(frames):
            if name.startswith("jobqueue"):
                total[name] += count
    busy = samples["loop"] + samples["threads"]
    if not busy:
        return "py-spy recorded no samples"
    lines = [
        f"samples: event loop thread {samples['loop']} busy, {samples['loop idle']} idle in epoll; "
        f"other threads (to_thread) {samples['threads']} busy. Shares below are of all busy samples."
    ]
    for where, title in (("loop", "event loop thread"), ("threads", "other threads")):
        if own[where]:
            lines += ["", f"self (on CPU), {title}:"]
            lines += [f"  {100 * n / busy:5.1f}%  {name}" for name, n in own[where].most_common(top)]
    lines += ["", "total, jobqueue functions (with what they call):"]
    lines += [f"  {100 * n / busy:5.1f}%  {name}" for name, n in total.most_common(top)]
    return "\n".join(lines)


def cprofile_summary(path: Path, top: int = 25) -> str:
    stats = pstats.Stats(str(path))
    text = []
    for order in ("tottime", "cumulative"):
        buffer = io.StringIO()
        stats.stream = buffer  # type: ignore[attr-defined]  # pstats prints to its stream attribute
        stats.sort_stats(order).print_stats(top)
        text += [f"--- top {top} by {order} ---", buffer.getvalue()]
    return "\n".join(text)
