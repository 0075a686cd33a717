"""The ``pytest11`` entry point of jobqueue-conformance: the suite's marker and its async fixtures.

A backend author's project may have no pytest configuration at all, so
pytest-asyncio runs in its default *strict* mode: it only runs tests marked
``asyncio`` and only drives fixtures made with ``pytest_asyncio.fixture``.
The documented example (README, DESIGN §5) writes the ``storage`` fixture
with plain ``@pytest.fixture`` over an ``async def``, which strict mode would
refuse ("requested an async fixture 'storage', with no plugin or hook that
handled it"). So the suite makes that example work as written:

- ``conformance_suite`` marks every async test of a suite class ``asyncio``;
- ``pytest_fixture_setup`` hands any async fixture that a suite test uses
  (``storage`` above all) to pytest-asyncio, as if it had been written with
  ``pytest_asyncio.fixture``. Outside the suites nothing changes.

In ``asyncio_mode = auto`` both are no-ops.
"""

from __future__ import annotations

import inspect
from collections.abc import Generator
from typing import Any, TypeVar

import pytest
import pytest_asyncio

__all__ = ["conformance_suite", "pytest_configure", "pytest_fixture_setup"]

_Suite = TypeVar("_Suite", bound=type)

_SUITES: list[type] = []


def conformance_suite(cls: _Suite) -> _Suite:
    """Make ``cls`` a suite: its async tests marked ``asyncio``, all of it marked ``jobqueue_conformance``."""
    for name in dir(cls):
        test = getattr(cls, name)
        if name.startswith("test") and inspect.iscoroutinefunction(test):
            pytest.mark.asyncio(test)
    _SUITES.append(cls)
    return pytest.mark.jobqueue_conformance(cls)


def _marked(func: Any) -> bool:
    """True for a fixture already made with ``pytest_asyncio.fixture`` (its ``loop_scope`` must be kept).

    pytest-asyncio marks such a function with this attribute (0.17 to 1.x); it
    is what its strict mode itself checks.
    """
    return bool(getattr(getattr(func, "__func__", func), "_force_asyncio_fixture", False))


def pytest_configure(config: pytest.Config) -> None:
    """Register ``jobqueue_conformance``, the marker every suite test carries (``-m jobqueue_conformance``)."""
    config.addinivalue_line(
        "markers", "jobqueue_conformance: a test of the jobqueue storage conformance suite"
    )


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_fixture_setup(
    fixturedef: pytest.FixtureDef[Any], request: pytest.FixtureRequest
) -> Generator[None, Any, Any]:
    """Let pytest-asyncio drive the async fixtures of suite tests, written with plain ``@pytest.fixture``.

    ``tryfirst`` runs this before pytest-asyncio's own hook, which then sees
    the fixture as one of its own.
    """
    func = fixturedef.func
    if inspect.iscoroutinefunction(func) or inspect.isasyncgenfunction(func):
        cls = getattr(request.node, "cls", None)  # the test's class (a session-scoped request has none)
        if cls is not None and issubclass(cls, tuple(_SUITES)) and not _marked(func):
            # pytest_asyncio.fixture marks the function itself as an asyncio fixture; the
            # fixture definition it also returns is not needed (this one is registered already).
            pytest_asyncio.fixture(func)
    return (yield)
