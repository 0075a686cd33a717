"""Untrusted text on screen: the one way job ids, names, messages and URLs reach Rich and Textual.

Everything the storage holds was written by someone else: job ids, queue
names, worker ids, error messages, payloads. Given to a widget as a ``str``,
Textual and Rich read it as markup (``[link=...]`` makes a working link,
``[/b]`` raises ``MarkupError`` and kills the app); written raw, an escape
sequence moves the cursor or forges a link (OSC 8). So such text goes
through ``plain`` (a ``Text``, never markup, control characters escaped) or
``notify`` (a notification with markup off).
"""

from __future__ import annotations

from typing import Any

from rich.text import Text
from textual.app import App
from textual.notifications import SeverityLevel
from textual.widget import Widget

__all__ = ["json_safe", "notify", "plain", "printable"]


def _escapes(form: str) -> dict[int, str]:
    # C0 and C1 controls and DEL (ESC starts colour codes, OSC 8 links and cursor moves; CR and BS
    # overwrite), and the invisible characters that break lines or reorder text (bidi overrides).
    codes = [*range(0x20), *range(0x7F, 0xA0), 0x2028, 0x2029, *range(0x202A, 0x202F), *range(0x2066, 0x206A)]
    return {code: form.format(code) for code in codes}


_ESCAPES = {code: text if code > 0xFF else f"\\x{code:02x}" for code, text in _escapes("\\u{:04x}").items()}
_ESCAPES_MULTILINE = {code: text for code, text in _ESCAPES.items() if chr(code) not in "\n\t"}
_JSON_ESCAPES = {code: text for code, text in _escapes("\\u{:04x}").items() if code >= 0x7F}


def printable(value: object, *, multiline: bool = False) -> str:
    r"""``str(value)`` with every control character written as an escape (``\x1b``, ``\u202e``).

    ``multiline`` keeps newlines and tabs (tracebacks, payloads).
    """
    return str(value).translate(_ESCAPES_MULTILINE if multiline else _ESCAPES)


def plain(value: object, style: str = "", *, multiline: bool = False, **options: Any) -> Text:
    """``value`` as a ``Text`` in ``style``: never read as markup, control characters escaped.

    ``options`` go to ``Text`` (``no_wrap``, ``overflow``, ``justify``).
    """
    return Text(printable(value, multiline=multiline), style=style, **options)


def json_safe(text: str) -> str:
    r"""JSON text (``json.dumps(..., ensure_ascii=False)``) with C1 controls and bidi overrides as ``\uXXXX``.

    ``json.dumps`` escapes only the C0 controls; the others can only sit inside
    strings, where a ``\u`` escape is valid JSON and shows what is there.
    """
    return text.translate(_JSON_ESCAPES)


def notify(
    target: App[Any] | Widget,
    message: str,
    *,
    severity: SeverityLevel = "information",
    timeout: float | None = None,
) -> None:
    """Show ``message`` (which may quote ids, names and errors) as a notification, never as markup."""
    target.notify(printable(message, multiline=True), severity=severity, timeout=timeout, markup=False)
