"""The README's Python examples run as written.

Blocks fenced as ``python`` are run; ``py`` marks a fragment that needs code of yours.
"""

import re
import subprocess
import sys
from pathlib import Path

import pytest

README = Path(__file__).parent.parent / "README.md"
BLOCKS = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.DOTALL)


def test_readme_has_examples() -> None:
    assert BLOCKS, "the README lost its Python examples"


@pytest.mark.parametrize("code", BLOCKS, ids=[f"block{i}" for i in range(len(BLOCKS))])
def test_readme_example_runs(code: str, tmp_path: Path) -> None:
    run = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=60
    )
    assert run.returncode == 0, run.stderr
    # every "# value" comment after a print() is what that line prints
    expected = [m.strip() for m in re.findall(r"print\(.*\)\s+#\s*(.+)", code)]
    printed = [line.strip() for line in run.stdout.splitlines()]
    assert printed[: len(expected)] == expected


def test_readme_links_point_at_files_that_exist() -> None:
    text = README.read_text()
    targets = {t.split("#")[0] for t in re.findall(r"\]\(([^)]+)\)", text) if "://" not in t}
    missing = sorted(t for t in targets if t and not (README.parent / t).exists())
    assert not missing, f"README links to missing files: {missing}"
    anchors = {t[1:] for t in re.findall(r"\]\((#[^)]+)\)", text)}
    headings = {h.strip().lower().replace(" ", "-") for h in re.findall(r"^#+ (.+)$", text, flags=re.M)}
    assert anchors <= headings, f"README links to missing sections: {anchors - headings}"
