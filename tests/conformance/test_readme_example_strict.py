"""The README's conformance example works verbatim for a stranger: a fresh directory, no pytest config.

With no configuration pytest-asyncio runs in its default strict mode, where a
plain ``@pytest.fixture async def storage`` would not be run; the plugin makes
the example work as written. ``mypackage.MyStorage`` is bound to the worked
example storage, which passes both suites.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

pytest_plugins = ["pytester"]

ROOT = Path(__file__).resolve().parents[2]


def readme_example() -> str:
    """The README's code block that subclasses the suites, exactly as written."""
    blocks: list[str] = re.findall(r"```py\n(.*?)```", (ROOT / "README.md").read_text(), flags=re.DOTALL)
    examples = [block for block in blocks if "from jobqueue_conformance import" in block]
    assert len(examples) == 1, "the README has one conformance example"
    return examples[0]


@pytest.mark.timeout(600)  # both whole suites in a subprocess, on a loaded machine
def test_the_readme_example_passes_both_suites_in_strict_mode(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    example = readme_example()
    assert "class TestMyStorage(StorageSuite)" in example and "class TestMyQueue(QueueSuite)" in example
    pytester.makepyfile(test_conformance=example)
    pytester.makepyfile(mypackage="from examples.sqlite_storage import SqliteStorage as MyStorage\n")
    assert not [p.name for p in pytester.path.iterdir() if p.suffix in (".ini", ".toml", ".cfg")], "no config"
    monkeypatch.setenv("PYTHONPATH", str(ROOT))  # makes `examples` importable, nothing else
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", timeout=540)
    outcomes = result.parseoutcomes()
    assert result.ret == pytest.ExitCode.OK, result.stdout.str()
    assert re.search(r"asyncio: mode=\S*strict", result.stdout.str(), re.IGNORECASE), (
        "pytest-asyncio strict mode"
    )
    assert set(outcomes) <= {"passed", "warnings", "warning"}, outcomes
    assert outcomes["passed"] >= 130, outcomes
