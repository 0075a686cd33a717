"""The documentation site's runnable Python examples run as written.

Blocks fenced as ``python`` are run; ``py`` marks a fragment that needs code of
yours (a handler module, a server, an exporter). ``mkdocs build --strict`` in
``.ci/run`` checks the rest (links, anchors, the API reference).
"""

import re
import subprocess
import sys
from pathlib import Path

import pytest

DOCS = Path(__file__).parent.parent / "docs"
BLOCKS = [
    pytest.param(code, id=f"{page.relative_to(DOCS)}-{i}")
    for page in sorted(DOCS.rglob("*.md"))
    for i, code in enumerate(re.findall(r"^```python\n(.*?)^```", page.read_text(), flags=re.DOTALL | re.M))
]


def test_docs_have_runnable_examples() -> None:
    assert len(BLOCKS) >= 2, "the documentation lost its runnable examples"


@pytest.mark.parametrize("code", BLOCKS)
def test_docs_example_runs(code: str, tmp_path: Path) -> None:
    run = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=60
    )
    assert run.returncode == 0, run.stderr
    expected = [m.strip() for m in re.findall(r"print\(.*\)\s+#\s*(.+)", code)]
    printed = [line.strip() for line in run.stdout.splitlines()]
    assert printed[: len(expected)] == expected
