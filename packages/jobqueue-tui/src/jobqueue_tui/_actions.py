"""Cancel, retry and purge: each asks for confirmation, acts on storage, then says what happened.

Each function must run inside a Textual worker (it waits for the modal answer).
Every message quotes the job id through ``_safe``: an id is whatever the
producer chose, markup and escape sequences included.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from jobqueue import JobQueueError, JobState
from textual.notifications import SeverityLevel

from ._safe import notify
from ._screens.confirm import ConfirmScreen

if TYPE_CHECKING:
    from ._app import DashboardApp

__all__ = ["cancel_job", "purge_finished", "retry_job"]

_CANCEL_OUTCOMES: dict[JobState | None, tuple[str, SeverityLevel]] = {
    None: ("job {id} was not found (already cancelled, purged or expired)", "warning"),
    JobState.QUEUED: ("cancelled queued job {id}", "information"),
    JobState.FAILING: ("cancelled job {id} and its pending retry", "information"),
    JobState.FAILED: ("cleared failed job {id} (its id is free again)", "information"),
    JobState.PROCESSING: ("job {id} is processing: it cannot be cancelled", "warning"),
    JobState.COMPLETED: ("job {id} already completed: nothing to cancel", "warning"),
}


async def cancel_job(app: DashboardApp, job_id: str) -> None:
    """Cancel a job that has not started, after confirmation."""
    question = f"Cancel job {job_id}?"
    if not await app.push_screen_wait(ConfirmScreen(question, "A queued job is removed and never runs.")):
        return
    try:
        previous = await app.storage.cancel(job_id)
    except JobQueueError as exc:
        notify(app, f"cancel failed: {exc}", severity="error")
        return
    text, severity = _CANCEL_OUTCOMES[previous]
    notify(app, text.format(id=job_id), severity=severity)
    app.data_changed(frozenset({job_id}))


async def retry_job(app: DashboardApp, job_id: str) -> None:
    """Queue a failed job again with its attempts reset, after confirmation."""
    admin = app.monitoring
    if admin is None:
        notify(app, f"retry is unavailable: {app.no_monitoring}", severity="warning")
        return
    question = f"Retry failed job {job_id}?"
    if not await app.push_screen_wait(ConfirmScreen(question, "Its attempts are reset.")):
        return
    try:
        queued = await admin.retry_failed(job_id)
    except JobQueueError as exc:
        notify(app, f"retry failed: {exc}", severity="error")
        return
    if queued:
        notify(app, f"job {job_id} is queued again")
    else:
        notify(app, f"job {job_id} is not failed: nothing to retry", severity="warning")
    app.data_changed(frozenset({job_id}))


async def purge_finished(app: DashboardApp) -> None:
    """Delete every completed and failed job of the watched queue, after confirmation."""
    admin = app.monitoring
    if admin is None:
        notify(app, f"purge is unavailable: {app.no_monitoring}", severity="warning")
        return
    question = f"Purge every completed and failed job of queue {app.storage.name}?"
    if not await app.push_screen_wait(ConfirmScreen(question, "Their results and errors are deleted.")):
        return
    try:
        removed = await admin.purge([JobState.COMPLETED, JobState.FAILED])
    except JobQueueError as exc:
        notify(app, f"purge failed: {exc}", severity="error")
        return
    notify(app, f"purged {removed} finished job{'s' if removed != 1 else ''}")
    app.data_changed(None)
