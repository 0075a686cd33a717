"""Who listens: the flags that make scripts publish ``events`` and ``done`` only while heard.

Publishing costs a command per event, and a busy queue usually has no
dashboard and no waiter. So each namespace has a flag per channel
(``heard:events``, ``heard:done``): a sorted set of the tokens of the
processes subscribed there, expiring unless renewed, and the scripts publish
on a channel only while its flag exists (``control`` is always published:
every worker listens to it).

A process adds its token (``listen.lua``) after its subscription is confirmed
and before the subscription is handed out, renews it while any subscription
needs it, and takes it out when none does. A script run after the token was
added publishes; anything before is already stored, and is read after
subscribing as every subscriber does, so nothing is missed. A process that
died leaves its token for ``FLAG_TTL_MS`` at most (events nobody hears, as
before). If the server loses a flag (a restart without persistence), events
are missed until the next renewal, as during any reconnect: the contract's
best effort.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import uuid
from collections.abc import Iterable, Sequence

from jobqueue.storage import Channel

from ._keys import HEARD_CHANNELS, Keys
from ._pubsub import stop_task
from ._scripts import CommandRunner, run_script

__all__ = ["FLAG_TTL_MS", "Listening"]

FLAG_TTL_MS = 30_000
_RENEW_EVERY = 10.0  # seconds: a flag survives two failed renewals
_LEAVE_TIMEOUT = 1.0  # seconds a closing process tries to take its tokens out

Flag = tuple[Keys, Channel]


class Listening:
    """The flags this process holds on one server: how many subscriptions need each, and renewal."""

    def __init__(self, commands: CommandRunner) -> None:
        self._commands = commands
        self._token = uuid.uuid4().hex
        self._holders: dict[Flag, int] = {}
        self._set_at: dict[Flag, float] = {}  # loop time when the token was last added, per flag
        self._changed = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def hold(self, parts: Sequence[Keys], channels: Iterable[Channel]) -> None:
        """Keep the flags of ``channels`` in ``parts`` until ``release``; return once they are set."""
        flags = [(keys, channel) for keys in parts for channel in channels if channel in HEARD_CHANNELS]
        for flag in flags:
            self._holders[flag] = self._holders.get(flag, 0) + 1
        try:
            now = asyncio.get_running_loop().time()
            await self._send(
                [f for f in flags if self._set_at.get(f, -math.inf) + _RENEW_EVERY < now], FLAG_TTL_MS
            )
        except BaseException:
            self.release(parts, channels)
            raise
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._maintain(), name="jobqueue-redis-listening")

    def release(self, parts: Sequence[Keys], channels: Iterable[Channel]) -> None:
        """One subscription no longer needs these flags (taken out soon unless held again)."""
        for flag in [(keys, channel) for keys in parts for channel in channels if channel in HEARD_CHANNELS]:
            left = self._holders.get(flag, 0) - 1
            if left > 0:
                self._holders[flag] = left
            else:
                self._holders.pop(flag, None)
                self._changed.set()

    async def close(self) -> None:
        """Stop renewing and take this process's tokens out (best effort: else they lapse)."""
        await stop_task(self._task)
        self._task = None
        flags, self._holders = list(self._set_at), {}
        self._set_at.clear()
        with contextlib.suppress(Exception):
            async with asyncio.timeout(_LEAVE_TIMEOUT):
                await self._send(flags, 0)

    async def _maintain(self) -> None:
        # Renews held flags every _RENEW_EVERY; takes out released ones as soon as released.
        loop = asyncio.get_running_loop()
        renew_at = loop.time() + _RENEW_EVERY
        while self._holders or self._set_at:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(max(renew_at - loop.time(), 0)):
                    await self._changed.wait()
            self._changed.clear()
            # Forgotten before the call is queued: a hold from now on adds its token again, after this.
            gone = [flag for flag in self._set_at if flag not in self._holders]
            for flag in gone:
                del self._set_at[flag]
            renew = loop.time() >= renew_at
            with contextlib.suppress(Exception):  # a failed renewal is tried again; two may fail
                await asyncio.gather(
                    self._send(gone, 0), self._send(list(self._holders) if renew else [], FLAG_TTL_MS)
                )
            if renew:
                renew_at = loop.time() + _RENEW_EVERY

    async def _send(self, flags: Sequence[Flag], ms: int) -> None:
        by_namespace: dict[Keys, list[str]] = {}
        for keys, channel in flags:
            by_namespace.setdefault(keys, []).append(Keys.channel_name(channel))
        if not by_namespace:
            return
        sent_at = asyncio.get_running_loop().time()
        await asyncio.gather(
            *(
                run_script(
                    self._commands, "listen", keys.fixed_all(), [*keys.channels(), self._token, ms, *names]
                )
                for keys, names in by_namespace.items()
            )
        )
        if ms:
            self._set_at.update((flag, sent_at) for flag in flags)
