"""jobqueue_tui: a live Textual dashboard for jobqueue storages."""

from ._app import DashboardApp
from ._main import main

__all__ = ["DashboardApp", "main"]
