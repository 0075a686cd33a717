"""The documentation site's runnable Python examples run as written.

Blocks fenced as ``python`` are run; ``py`` marks a fragment that needs code of
yours (a handler module, a server, an exporter). ``mkdocs build --strict`` in
``.ci/run`` checks the rest (links, anchors, the API reference).
"""

from pathlib import Path

import pytest

from tests.example_blocks import python_blocks, run_block

DOCS = Path(__file__).parent.parent / "docs"
BLOCKS = [
    pytest.param(code, id=f"{page.relative_to(DOCS)}-{i}")
    for page in sorted(DOCS.rglob("*.md"))
    for i, code in enumerate(python_blocks(page.read_text()))
]


def test_docs_have_runnable_examples() -> None:
    assert len(BLOCKS) >= 2, "the documentation lost its runnable examples"


@pytest.mark.parametrize("code", BLOCKS)
def test_docs_example_runs(code: str, tmp_path: Path) -> None:
    run_block(code, tmp_path)
