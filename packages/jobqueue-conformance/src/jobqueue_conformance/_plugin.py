"""The ``pytest11`` entry point of jobqueue-conformance: registers the suite's marker."""

from __future__ import annotations

import pytest

__all__ = ["pytest_configure"]


def pytest_configure(config: pytest.Config) -> None:
    """Register ``jobqueue_conformance``, the marker every suite test carries (``-m jobqueue_conformance``)."""
    config.addinivalue_line(
        "markers", "jobqueue_conformance: a test of the jobqueue storage conformance suite"
    )
