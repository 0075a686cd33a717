"""Storage URLs: ``storage_from_url`` (through the ``jobqueue.storages`` entry points) and their redaction.

``redact_url`` is the one function that makes a URL fit to print, log, raise
or show: every message of the project that names a storage URL goes through it.
"""

from __future__ import annotations

from collections.abc import Callable
from importlib.metadata import entry_points
from typing import NamedTuple
from urllib.parse import parse_qsl, unquote_plus, urlsplit

from ._contract.storage import Storage

__all__ = [
    "ENTRY_POINT_GROUP",
    "available_schemes",
    "parse_query",
    "redact_secrets",
    "redact_url",
    "storage_from_url",
]

ENTRY_POINT_GROUP = "jobqueue.storages"

MASK = "***"
"""What a secret is replaced with."""

_SECRET_WORDS = tuple(
    ["pass", "pwd", "secret", "token", "key", "auth", "cred", "sign", "session", "cookie", "private"]
)
"""A query option whose name contains one of these carries a secret (``password``, ``sslpassword``,
``api_key``, ``access_token``, ``client_secret``...): its value is never shown."""

_MIN_SCRUBBED = 3
"""Shorter secrets are not searched for in free text (they would garble every message)."""


def available_schemes() -> list[str]:
    """URL schemes of the installed backends."""
    return sorted({ep.name for ep in entry_points(group=ENTRY_POINT_GROUP)})


def storage_from_url(url: str) -> Storage:
    """Build a storage from a URL: ``memory://``, ``redis://host:6379/0?prefix=jq``, ``file:///path``.

    The scheme picks the backend among the installed ``jobqueue.storages``
    entry points; each entry point is a callable taking the URL. Error
    messages show the URL redacted (``redact_url``).

    Raises:
        TypeError: ``url`` is not a string.
        ValueError: no scheme, a port that is not a number from 0 to 65535, or
            no installed backend handles the scheme (the message lists the
            schemes that are installed); a backend's own ``ValueError`` for its
            options.
    """
    if not isinstance(url, str):
        raise TypeError(f"storage url must be a str, not {type(url).__name__}")
    shown = redact_url(url)
    try:
        parts = urlsplit(url)
        # Each host's port is checked (a bad port raises here, not at connect time); a
        # cluster URL names several seed hosts, comma-separated.
        for host in parts.netloc.rpartition("@")[2].split(","):
            urlsplit(f"//{host}").port  # noqa: B018 (read for its check)
    except ValueError as exc:
        # Python's own message may quote a piece of a password that a raw "/" or "?" cut off.
        reason = "its port is not a number from 0 to 65535" if "Port" in str(exc) else str(exc)
        raise ValueError(f"bad storage url {shown!r}: {redact_secrets(reason, url)}") from None
    scheme = parts.scheme.lower()
    if not scheme:
        raise ValueError(f"storage url {shown!r} has no scheme (try memory://, redis://, file:///path)")
    matches = [ep for ep in entry_points(group=ENTRY_POINT_GROUP) if ep.name == scheme]
    if not matches:
        known = ", ".join(f"{s}://" for s in available_schemes()) or "none"
        raise ValueError(
            f"no storage backend handles {scheme}:// (installed: {known}); "
            f"install jobqueue-redis or jobqueue-file for redis:// or file://"
        )
    factory: Callable[[str], Storage] = matches[0].load()
    try:
        storage = factory(url)
    except ValueError as exc:  # a backend's message may quote what it could not parse
        raise ValueError(redact_secrets(str(exc), url)) from None
    if not isinstance(storage, Storage):
        raise TypeError(f"entry point {matches[0].value} returned {type(storage).__name__}, not a Storage")
    return storage


def parse_query(url: str, allowed: set[str]) -> dict[str, str]:
    """Query parameters of ``url``; an unknown parameter raises ``ValueError`` naming it (URL redacted)."""
    params = dict(parse_qsl(urlsplit(url).query, keep_blank_values=True))
    unknown = sorted(set(params) - allowed)
    if unknown:
        raise ValueError(
            f"unknown storage url option(s) {', '.join(unknown)} "
            f"in {redact_url(url)!r}; allowed: {', '.join(sorted(allowed)) or 'none'}"
        )
    return params


class _Parts(NamedTuple):
    """A URL cut where a redactor needs it; ``userinfo``, ``query`` and ``fragment`` are None when absent."""

    prefix: str  # "scheme://", or "" for a string without one
    userinfo: str | None
    hostpath: str
    query: str | None
    fragment: str | None


def _split(url: str) -> _Parts:
    # Not urlsplit: it raises on some strings, and it ends the userinfo at a raw "/" or "?" that a
    # careless password may hold. The userinfo ends at the last "@" before the query, or, when a raw
    # "?" or "#" sits in the password, at the last "@" of a prefix that holds no query option.
    scheme, sep, rest = url.partition("://")
    prefix = f"{scheme}{sep}" if sep else ""
    if not sep:
        rest = url
    end = min((i for i in (rest.find("?"), rest.find("#")) if i >= 0), default=len(rest))
    at = rest.rfind("@", 0, end)
    if at < 0 and "@" in rest[end:]:
        candidate = rest.rfind("@")
        if not any(c in rest[:candidate] for c in "=&"):
            at = candidate
            end = min((i for i in (rest.find("?", at), rest.find("#", at)) if i >= 0), default=len(rest))
    userinfo = rest[:at] if at >= 0 else None
    hostpath, tail = rest[at + 1 : end], rest[end:]
    query: str | None = None
    fragment: str | None = None
    if tail.startswith("?"):
        query, hash_, after = tail[1:].partition("#")
        fragment = after if hash_ else None
    elif tail.startswith("#"):
        fragment = tail[1:]
    return _Parts(prefix, userinfo, hostpath, query, fragment)


def redact_url(url: str) -> str:
    """``url`` fit to print, log, raise or show: its userinfo and secret query values become ``***``.

    ``redis://user:pw@host/0?password=pw&prefix=jq`` gives
    ``redis://user:***@host/0?password=***&prefix=jq``. A lone userinfo
    (``redis://pw@host``) is a password for Redis: it is masked whole. Query
    options whose name looks secret (``password``, ``sslpassword``, ``token``,
    ``api_key``, ``secret``...) keep their name and lose their value. The rest
    of the URL is kept as written. Never raises, for any string.
    """
    if not isinstance(url, str):
        return f"<{type(url).__name__}>"
    parts = _split(url)
    shown = parts.prefix
    if parts.userinfo is not None:
        user, colon, _ = parts.userinfo.partition(":")
        shown += f"{user}:{MASK}@" if colon else f"{MASK}@"
    shown += parts.hostpath
    if parts.query is not None:
        shown += "?" + "&".join(_redact_option(option) for option in parts.query.split("&"))
    if parts.fragment is not None:
        shown += "#" + parts.fragment
    return shown


def _redact_option(option: str) -> str:
    name, equals, _ = option.partition("=")
    return f"{name}={MASK}" if equals and _is_secret_name(name) else option


def _is_secret_name(name: str) -> bool:
    normal = unquote_plus(name).lower()
    return any(word in normal for word in _SECRET_WORDS)


def url_secrets(url: str) -> list[str]:
    """The secrets written in ``url`` (password or lone userinfo, secret option values), longest first.

    Each as written and percent-decoded; those shorter than 3 characters are left out.
    """
    parts = _split(url)
    found: list[str] = []
    if parts.userinfo is not None:
        user, colon, password = parts.userinfo.partition(":")
        found.append(password if colon else user)
    for option in (parts.query or "").split("&"):
        name, equals, value = option.partition("=")
        if equals and _is_secret_name(name):
            found.append(value)
    decoded = [unquote_plus(s) for s in found]
    return sorted({s for s in (*found, *decoded) if len(s) >= _MIN_SCRUBBED}, key=len, reverse=True)


def redact_secrets(text: str, url: str) -> str:
    """``text`` (an error message, a log line) with ``url`` and every secret written in it masked.

    For messages that a third-party parser built from the URL: the whole URL
    becomes its ``redact_url`` form, then any secret quoted on its own becomes
    ``***``.
    """
    if not isinstance(url, str) or not url:
        return text
    text = text.replace(url, redact_url(url))
    for secret in url_secrets(url):
        text = text.replace(secret, MASK)
    return text
