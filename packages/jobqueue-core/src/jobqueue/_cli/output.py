"""Terminal output of the CLI: rich when it is installed (``jobqueue-core[cli]``), plain text otherwise."""

from __future__ import annotations

import sys
import time
from collections.abc import Sequence
from typing import TextIO

__all__ = ["Output", "PlainProgress", "Progress", "looks_numeric", "make_output", "terminal_safe"]


def _escapes() -> dict[int, str]:
    # C0 and C1 controls and DEL (ESC starts colour codes, OSC 8 links, cursor moves; CR and BS
    # overwrite what was printed), and the invisible characters that reorder or break lines.
    codes = [*range(0x20), *range(0x7F, 0xA0), 0x2028, 0x2029, *range(0x202A, 0x202F), *range(0x2066, 0x206A)]
    return {code: f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}" for code in codes}


_ESCAPES = _escapes()
_ESCAPES_MULTILINE = {code: text for code, text in _ESCAPES.items() if chr(code) not in "\n\t"}


def terminal_safe(text: str, *, multiline: bool = False) -> str:
    r"""``text`` with every control character written as an escape (``\x1b``), safe to print.

    Job ids, queue names, worker ids and error messages come from whoever
    wrote to the storage: printed raw, an escape sequence in one of them
    would recolour the terminal, forge a link (OSC 8) or overwrite a line.
    ``multiline`` keeps newlines and tabs (tracebacks). Rich markup is not
    touched here: the rich output renders every string as plain ``Text``.
    """
    return text.translate(_ESCAPES_MULTILINE if multiline else _ESCAPES)


class Progress:
    """A progress counter; ``advance`` may be called from event callbacks."""

    def advance(self, task: str, amount: int = 1) -> None:
        """Count ``amount`` more units of ``task``."""
        raise NotImplementedError

    def close(self) -> None:
        """Render the final state."""
        raise NotImplementedError


class PlainProgress(Progress):
    """Counters redrawn on one line on a terminal; one summary line per task otherwise."""

    def __init__(self, stream: TextIO, tasks: Sequence[str], total: int) -> None:
        self._stream = stream
        self._done = dict.fromkeys(tasks, 0)
        self._total = total
        self._started = time.perf_counter()
        self._drawn = 0.0
        self._live = stream.isatty()

    def _line(self) -> str:
        elapsed = max(time.perf_counter() - self._started, 1e-9)
        last = list(self._done.values())[-1]
        counts = "  ".join(f"{name} {done}/{self._total}" for name, done in self._done.items())
        return f"{counts}  {last / elapsed:,.0f}/s  {elapsed:.1f}s"

    def advance(self, task: str, amount: int = 1) -> None:
        """Count ``amount`` more units of ``task``."""
        self._done[task] += amount
        now = time.perf_counter()
        if self._live and now - self._drawn > 0.1:
            self._drawn = now
            self._stream.write("\r" + self._line())
            self._stream.flush()

    def close(self) -> None:
        """Render the final state."""
        self._stream.write(("\r" if self._live else "") + self._line() + "\n")
        self._stream.flush()


class Output:
    """Plain-text output: results on stdout, errors on stderr."""

    def __init__(self, stdout: TextIO | None = None, stderr: TextIO | None = None) -> None:
        self.stdout = stdout or sys.stdout
        self.stderr = stderr or sys.stderr

    def print(self, text: str = "", *, style: str | None = None) -> None:
        """One line on stdout (control characters escaped); ``style`` is a rich style, ignored in plain text."""
        print(terminal_safe(text, multiline=True), file=self.stdout, flush=True)

    def heading(self, text: str) -> None:
        """A section title."""
        self.print(text, style="bold")

    def error(self, text: str) -> None:
        """One error line on stderr, prefixed with the program name (control characters escaped)."""
        print(f"jobqueue: error: {terminal_safe(text)}", file=self.stderr, flush=True)

    def table(self, title: str, columns: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
        """A table; columns whose cells all look numeric are right-aligned."""
        rows = [[terminal_safe(cell) for cell in row] for row in rows]
        widths = [max([len(col), *(len(row[i]) for row in rows)]) for i, col in enumerate(columns)]
        numeric = [all(looks_numeric(row[i]) for row in rows) and bool(rows) for i in range(len(columns))]

        def fmt(cells: Sequence[str]) -> str:
            parts = [
                c.rjust(w) if num else c.ljust(w) for c, w, num in zip(cells, widths, numeric, strict=True)
            ]
            return "  ".join(parts).rstrip()

        self.print(title)
        self.print(fmt(columns))
        self.print(fmt(["-" * w for w in widths]))
        for row in rows:
            self.print(fmt(row))

    def progress(self, tasks: Sequence[str], total: int) -> Progress:
        """Counters for ``tasks`` (each out of ``total``); call ``close()`` at the end."""
        return PlainProgress(self.stdout, tasks, total)


def looks_numeric(cell: str) -> bool:
    """True for cells such as ``1,024``, ``3.5``, ``12 ms``, ``40%``."""
    stripped = cell.replace(",", "").replace(".", "", 1).removesuffix(" ms").removesuffix("%")
    return stripped.isdigit()


def make_output(*, plain: bool = False) -> Output:
    """Rich output when rich is importable and ``plain`` is False, else plain text."""
    if not plain:
        try:
            from .rich import RichOutput
        except ImportError:  # rich is the optional extra jobqueue-core[cli]
            pass
        else:
            return RichOutput()
    return Output()
