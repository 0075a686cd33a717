"""Hostile text in the dashboard: ids, queue names, worker ids and errors are shown, never obeyed.

A job id is whatever the producer chose. Given to Rich or Textual as markup,
``[link=...]`` becomes a working link, ``[/bold]`` raises ``MarkupError`` and
kills the app, and an escape sequence reaches the terminal. Everything the
storage holds goes through ``jobqueue_tui._safe``; these tests feed it hostile
strings (hypothesis), then drive every screen and dialog over such jobs.
"""

from __future__ import annotations

import io
import json
import re
import unicodedata
from pathlib import Path

import jobqueue_tui
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from jobqueue import JobState, MemoryStorage, Storage
from jobqueue_tui import DashboardApp
from jobqueue_tui._safe import json_safe, plain, printable
from jobqueue_tui._screens.confirm import ConfirmScreen
from jobqueue_tui._screens.detail import DetailScreen
from jobqueue_tui._screens.events import EventsScreen
from jobqueue_tui._screens.help import HelpScreen
from jobqueue_tui._screens.queues import QueueScreen
from jobqueue_tui._widgets.jobs import JobsTable
from rich.console import Console
from textual.pilot import Pilot

from tests.hostile.test_redaction import leaked, urls_with_a_secret

from .tui_helpers import LEASE_MS, TTL_MS, BareStorage, error_bytes, put, screen_text, table_ids, wait_until

SIZE = (120, 40)
EVIL = "evil [link='https://attacker.example']click-me[/link] [bold red]FAKE WARNING[/bold red]"
CLOSER = "job-[/bold]"
ESCAPES = "esc-\x1b[31mred\x1b]8;;http://x\x1b\\link"
FAILED = "failed-[/x]"
HELD = "held-[b]"
QUEUE = "q[/b]"
WORKER = "w[/i]-\x1b[2J"
MESSAGE = "[/red] boom \x1b[31mRED\x1b]8;;http://x\x1b\\"
SECRET = "Zqs3cretZq"

_PIECES = [
    "[",
    "]",
    "/",
    "=",
    "'",
    "link",
    "bold",
    "red",
    "\x1b",
    "\\",
    "8",
    ";",
    "\x07",
    "\x9b",
    " ",
    "@",
    "\u202e",
]
HOSTILE = st.one_of(st.text(), st.lists(st.sampled_from(_PIECES)).map("".join))
BIDI = {chr(c) for c in (*range(0x202A, 0x202F), *range(0x2066, 0x206A), 0x2028, 0x2029)}


def raw_controls(text: str, *, keep: str = "") -> set[str]:
    return {c for c in text if (unicodedata.category(c) == "Cc" or c in BIDI) and c not in keep}


# ------------------------------------------------------------------ the helper


@settings(max_examples=500, deadline=None)
@given(HOSTILE)
@example(EVIL)
@example(CLOSER)
@example(ESCAPES)
def test_plain_is_never_markup_and_never_a_control_character(text: str) -> None:
    shown = plain(text, "bold")
    assert shown.spans == []  # nothing was read as markup: one style for the whole text
    assert shown.plain == printable(text)
    assert raw_controls(shown.plain) == set()
    assert raw_controls(printable(text, multiline=True), keep="\n\t") == set()
    # Rendered by Rich with no style: every byte on the terminal is the text itself, no escape at all.
    out = io.StringIO()
    Console(file=out, force_terminal=True, color_system="truecolor", width=400, soft_wrap=True).print(
        plain(text)
    )
    assert "\x1b" not in out.getvalue() and "\x9b" not in out.getvalue()


@settings(max_examples=300, deadline=None)
@given(
    st.recursive(st.text() | st.integers(), lambda inner: st.lists(inner) | st.dictionaries(st.text(), inner))
)
def test_json_safe_keeps_json_valid_and_free_of_controls(value: object) -> None:
    text = json_safe(json.dumps(value, ensure_ascii=False, indent=2))
    assert json.loads(text) == value
    assert raw_controls(text, keep="\n") == set()


def test_every_notification_goes_through_the_helper() -> None:
    """``notify(..., markup=True)`` is Textual's default: only ``_safe.notify`` may call it."""
    root = Path(jobqueue_tui.__file__).parent
    callers = [
        f"{path.relative_to(root)}:{number}"
        for path in root.rglob("*.py")
        if path.name != "_safe.py"
        for number, line in enumerate(path.read_text().splitlines(), 1)
        if re.search(r"\.notify\(", line)
    ]
    assert callers == []


# ----------------------------------------------------------- the whole app


async def _hostile_jobs(storage: Storage) -> None:
    """In ``q[/b]``: a failed job and a held one (worker ``WORKER``), three queued; one job elsewhere."""
    await put(storage, "plain-job")
    queue = storage.namespace(QUEUE)
    await put(queue, FAILED, HELD, EVIL, CLOSER, ESCAPES)
    [failed] = await queue.dequeue(WORKER, lease_ms=LEASE_MS, timeout_ms=0)
    assert failed.id == FAILED
    assert await queue.fail(FAILED, WORKER, error_bytes(MESSAGE), TTL_MS)
    [held] = await queue.dequeue(WORKER, lease_ms=LEASE_MS, timeout_ms=0)
    assert held.id == HELD
    await queue.register_worker(WORKER, ttl_ms=TTL_MS)


def flat(text: str) -> str:
    """Text without whitespace: a dialog may wrap a long question anywhere between words."""
    return re.sub(r"[\s\u2500-\u259f]+", "", text)  # box borders too


def on_screen(app: DashboardApp, *fragments: str) -> bool:
    shown = flat(screen_text(app))
    return all(flat(fragment) in shown for fragment in fragments)


def notifications(app: DashboardApp) -> list[str]:
    return [n.message for n in app._notifications]


async def select(pilot: Pilot[None], app: DashboardApp, job_id: str) -> None:
    await wait_until(pilot, lambda: job_id in table_ids(app), f"{job_id!r} listed")
    table = app.screen.query_one(JobsTable)
    table.move_cursor(row=table.get_row_index(job_id))
    assert table.selected_id == job_id


async def ask(pilot: Pilot[None], app: DashboardApp, key: str, answer: str, *shown: str) -> None:
    """Press ``key``; the confirmation shows ``shown`` literally; answer it."""
    await pilot.press(key)
    await wait_until(pilot, lambda: isinstance(app.screen, ConfirmScreen), f"a confirmation after {key}")
    await wait_until(pilot, lambda: on_screen(app, *shown), f"{shown} in the dialog")
    await pilot.press(answer)
    await wait_until(pilot, lambda: not isinstance(app.screen, ConfirmScreen), "the dialog closed")


async def test_every_screen_and_dialog_shows_hostile_text_as_text(storage: Storage) -> None:
    await _hostile_jobs(storage)
    url = f"redis://app:{SECRET}@localhost/0?password={SECRET}"
    app = DashboardApp(storage, url=url)
    async with app.run_test(size=SIZE) as pilot:
        await wait_until(pilot, lambda: table_ids(app) == ["plain-job"], "the default queue listed")
        assert not on_screen(app, SECRET)

        # The queue switcher: q[/b] is an option, shown as written.
        await wait_until(pilot, lambda: QUEUE in app.namespaces, "q[/b] among the queues")
        await pilot.press("g")
        await wait_until(pilot, lambda: isinstance(app.screen, QueueScreen), "the queue switcher")
        await wait_until(pilot, lambda: on_screen(app, QUEUE), "q[/b] in the switcher")
        await pilot.press("down", "enter")
        await wait_until(pilot, lambda: app.storage.name == QUEUE, "switched to q[/b]")
        await wait_until(pilot, lambda: EVIL in table_ids(app), "the hostile jobs listed")
        await wait_until(
            pilot,
            lambda: on_screen(app, f"queue {QUEUE}", "job-[/bold]", "w[/i]-\\x1b[2J"),
            "header, table, workers",
        )

        # Cancel dialogs and their notifications, for each hostile id.
        await select(pilot, app, EVIL)
        await ask(pilot, app, "c", "y", f"Cancel job {EVIL}?")
        await wait_until(
            pilot, lambda: f"cancelled queued job {EVIL}" in notifications(app), "the cancel notified"
        )
        assert not any(n.markup for n in app._notifications)  # shown as written, never parsed
        await select(pilot, app, CLOSER)
        await ask(pilot, app, "c", "n", "Cancel job job-[/bold]?")
        await select(pilot, app, ESCAPES)
        await ask(pilot, app, "c", "y", "Cancel job esc-\\x1b[31mred\\x1b]8;;http://x\\x1b\\link?")
        await wait_until(pilot, lambda: ESCAPES not in table_ids(app), "the escaped id cancelled")

        # The detail of the failed job: its error and its worker, as written.
        await select(pilot, app, FAILED)
        await pilot.press("enter")
        await wait_until(pilot, lambda: isinstance(app.screen, DetailScreen), "the detail screen")
        await wait_until(
            pilot,
            lambda: on_screen(app, "job failed-[/x]", "[/red] boom \\x1b[31mRED\\x1b]8;;http://x"),
            "the error",
        )
        await ask(pilot, app, "r", "y", "Retry failed job failed-[/x]?")
        await wait_until(
            pilot, lambda: "job failed-[/x] is queued again" in notifications(app), "the retry notified"
        )
        await pilot.press("escape")
        await select(pilot, app, HELD)
        await pilot.press("enter")
        await wait_until(
            pilot, lambda: on_screen(app, "job held-[b]", "w[/i]-\\x1b[2J"), "the held job's worker"
        )
        await pilot.press("escape")

        # Purge names the queue; the event log names the jobs; help opens and closes.
        await wait_until(pilot, lambda: not isinstance(app.screen, DetailScreen), "back on the main screen")
        await ask(pilot, app, "p", "n", f"Purge every completed and failed job of queue {QUEUE}?")
        await pilot.press("e")
        await wait_until(pilot, lambda: isinstance(app.screen, EventsScreen), "the event log")
        await wait_until(
            pilot,
            lambda: on_screen(app, f"events of queue {QUEUE}", "click-me[/link]", "esc-\\x1b[31mred"),
            "the events",
        )
        await pilot.press("escape", "question_mark")
        await wait_until(pilot, lambda: isinstance(app.screen, HelpScreen), "the help")
        await pilot.press("escape")

        assert await storage.namespace(QUEUE).get(EVIL) is None
        assert await storage.namespace(QUEUE).get(CLOSER) is not None
        record = await storage.namespace(QUEUE).get(FAILED)
        assert record is not None and record.state is JobState.QUEUED
        assert not on_screen(app, SECRET)
        assert all(raw_controls(message, keep="\n") == set() for message in notifications(app))


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(case=urls_with_a_secret())
@example(case=("redis://app:Zqs3cret@localhost/0?password=Zqs3cret", "Zqs3cret"))
async def test_no_generated_secret_of_the_url_reaches_the_screen(case: tuple[str, str]) -> None:
    url, secret = case
    async with MemoryStorage() as storage:
        app = DashboardApp(storage, url=url)
        async with app.run_test(size=SIZE) as pilot:
            await wait_until(pilot, lambda: on_screen(app, "queue default"), "the header")
            shown = screen_text(app)
    # The screen shows control characters escaped: look for the secret as written and as shown.
    assert not leaked(secret, shown) and not leaked(printable(secret), shown), shown


async def test_a_storage_without_monitoring_says_what_is_unavailable() -> None:
    storage = BareStorage()
    async with storage:
        await put(storage, "job-1")
        app = DashboardApp(storage)
        async with app.run_test(size=SIZE) as pilot:
            await wait_until(
                pilot, lambda: on_screen(app, "BareStorage has no monitoring capability"), "the notice"
            )
            await pilot.press("p")
            await wait_until(pilot, lambda: bool(notifications(app)), "a notification")
            assert notifications(app)[-1].startswith("purge is unavailable: BareStorage has no monitoring")
            assert not isinstance(app.screen, ConfirmScreen)
            await pilot.press("e")  # the event log needs only events
            await wait_until(pilot, lambda: isinstance(app.screen, EventsScreen), "the event log")
            assert await storage.cancel("job-1") is JobState.QUEUED
            await wait_until(pilot, lambda: on_screen(app, "cancelled", "job-1"), "the cancel event shown")
