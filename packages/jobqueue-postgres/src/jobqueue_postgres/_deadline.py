"""The client-side time limit on a connection's statements (``command_timeout``)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Protocol

__all__ = ["deadline"]


class _Terminable(Protocol):
    def terminate(self) -> None: ...


@contextmanager
def deadline(conn: _Terminable, seconds: float) -> Iterator[None]:
    """Drop ``conn`` when what runs inside takes more than ``seconds``; that then raises ``TimeoutError``.

    The connection is terminated, not asked to cancel: across a cut link a
    cancel request (a new connection) hangs as the statement did, and the pool
    waits for it before it takes the connection back. A dropped connection
    fails its pending statement at once and the pool replaces it. The server
    abandons the statement itself (``statement_timeout``, set to the same
    value) when it is merely slow.
    """
    expired = False

    def expire() -> None:
        nonlocal expired
        expired = True
        conn.terminate()

    handle = asyncio.get_running_loop().call_later(seconds, expire)
    try:
        yield
    except Exception as exc:
        if expired:
            raise TimeoutError(
                f"no answer from the server within {seconds:g} s (command_timeout); connection dropped"
            ) from exc
        raise
    finally:
        handle.cancel()
