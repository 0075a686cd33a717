"""``storage_from_url``: build a storage from a URL through the ``jobqueue.storages`` entry points."""

from __future__ import annotations

from collections.abc import Callable
from importlib.metadata import entry_points
from urllib.parse import parse_qsl, urlsplit

from ._contract.storage import Storage

__all__ = ["ENTRY_POINT_GROUP", "available_schemes", "parse_query", "storage_from_url"]

ENTRY_POINT_GROUP = "jobqueue.storages"


def available_schemes() -> list[str]:
    """URL schemes of the installed backends."""
    return sorted({ep.name for ep in entry_points(group=ENTRY_POINT_GROUP)})


def storage_from_url(url: str) -> Storage:
    """Build a storage from a URL: ``memory://``, ``redis://host:6379/0?prefix=jq``, ``file:///path``.

    The scheme picks the backend among the installed ``jobqueue.storages``
    entry points; each entry point is a callable taking the URL.

    Raises:
        TypeError: ``url`` is not a string.
        ValueError: no scheme, or no installed backend handles it (the message
            lists the schemes that are installed).
    """
    if not isinstance(url, str):
        raise TypeError(f"storage url must be a str, not {type(url).__name__}")
    scheme = urlsplit(url).scheme.lower()
    if not scheme:
        raise ValueError(f"storage url {url!r} has no scheme (try memory://, redis://, file:///path)")
    matches = [ep for ep in entry_points(group=ENTRY_POINT_GROUP) if ep.name == scheme]
    if not matches:
        known = ", ".join(f"{s}://" for s in available_schemes()) or "none"
        raise ValueError(
            f"no storage backend handles {scheme}:// (installed: {known}); "
            f"install jobqueue-redis or jobqueue-file for redis:// or file://"
        )
    factory: Callable[[str], Storage] = matches[0].load()
    storage = factory(url)
    if not isinstance(storage, Storage):
        raise TypeError(f"entry point {matches[0].value} returned {type(storage).__name__}, not a Storage")
    return storage


def parse_query(url: str, allowed: set[str]) -> dict[str, str]:
    """Query parameters of ``url``; an unknown parameter raises ``ValueError`` naming it."""
    params = dict(parse_qsl(urlsplit(url).query, keep_blank_values=True))
    unknown = sorted(set(params) - allowed)
    if unknown:
        raise ValueError(
            f"unknown storage url option(s) {', '.join(unknown)} in {url!r}; "
            f"allowed: {', '.join(sorted(allowed)) or 'none'}"
        )
    return params
