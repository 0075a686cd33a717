"""The README's Python examples run as written.

Blocks fenced as ``python`` are run; ``py`` marks a fragment that needs code of yours.
"""

import re
from pathlib import Path

import pytest

from tests.example_blocks import python_blocks, run_block

README = Path(__file__).parent.parent / "README.md"
BLOCKS = python_blocks(README.read_text())


def test_readme_has_examples() -> None:
    assert BLOCKS, "the README lost its Python examples"


@pytest.mark.parametrize("code", BLOCKS, ids=[f"block{i}" for i in range(len(BLOCKS))])
def test_readme_example_runs(code: str, tmp_path: Path) -> None:
    run_block(code, tmp_path)


def test_readme_links_point_at_files_that_exist() -> None:
    text = README.read_text()
    targets = {t.split("#")[0] for t in re.findall(r"\]\(([^)]+)\)", text) if "://" not in t}
    missing = sorted(t for t in targets if t and not (README.parent / t).exists())
    assert not missing, f"README links to missing files: {missing}"
    anchors = {t[1:] for t in re.findall(r"\]\((#[^)]+)\)", text)}
    headings = {h.strip().lower().replace(" ", "-") for h in re.findall(r"^#+ (.+)$", text, flags=re.M)}
    assert anchors <= headings, f"README links to missing sections: {anchors - headings}"
