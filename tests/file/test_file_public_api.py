"""The public surface of jobqueue_file is pinned: changing it is a visible decision."""

from __future__ import annotations

import jobqueue
import jobqueue_file
import pytest
from jobqueue.storage import Capability, Storage, capabilities

pytestmark = pytest.mark.file


def test_all_is_pinned() -> None:
    assert jobqueue_file.__all__ == ["FileStorage"]


def test_file_storage_declares_every_capability() -> None:
    assert issubclass(jobqueue_file.FileStorage, Storage)
    storage = jobqueue_file.FileStorage("/nonexistent/never-created")
    assert capabilities(storage) == {
        Capability.MONITORING,
        Capability.LEADER_LOCK,
        Capability.CONTROL_CHANNEL,
    }


def test_the_file_scheme_is_registered() -> None:
    assert "file" in jobqueue.available_schemes()
