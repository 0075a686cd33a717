"""The ``pytest11`` entry point of jobqueue-conformance."""

from __future__ import annotations

__all__: list[str] = []
