"""Running the Python blocks of the README and the documentation as written."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

__all__ = ["python_blocks", "run_block"]


def python_blocks(text: str) -> list[str]:
    """The blocks fenced as ``python`` (``py`` marks a fragment that needs code of yours)."""
    return re.findall(r"^```python\n(.*?)^```", text, flags=re.DOTALL | re.M)


def run_block(code: str, cwd: Path) -> None:
    """Run ``code`` in a fresh interpreter; it must succeed and print what its ``# value`` comments say."""
    run = subprocess.run([sys.executable, "-c", code], cwd=cwd, capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr
    # every "# value" comment after a print() is what that line prints
    expected = [m.strip() for m in re.findall(r"print\(.*\)\s+#\s*(.+)", code)]
    printed = [line.strip() for line in run.stdout.splitlines()]
    assert printed[: len(expected)] == expected
