"""The Lua scripts: every key they touch is declared in KEYS, and the ready set keeps rules.claim_order.

Redis and Valkey enforce little here: in cluster mode a ``#!lua`` script
(without ``allow-cross-slot-keys``) is refused when it touches a key of
another slot than its declared ones; a standalone server checks nothing, and
no server notices an undeclared key in the same slot. So two checks of our
own: the sources build no key (static), and every script, run with a
prelude that wraps ``redis.call``, touches only keys it was given (dynamic).
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterator

import pytest
from jobqueue import CorruptDataError, JobState
from jobqueue.storage import Channel, Finish, NewJob, rules
from jobqueue_conformance import wait_until
from jobqueue_redis import RedisStorage, _keys, _scripts
from redis.asyncio import Redis

# Wraps redis.call/pcall: a key argument not in KEYS raises. Key positions of the commands
# the scripts use: the first argument, or every argument for DEL, EXISTS and MGET.
CHECKING_PRELUDE = """\
local real_redis = redis
local declared = {}
for _, key in ipairs(KEYS) do
  declared[key] = true
end
local keyless = {TIME = true, PUBLISH = true}
local all_keys = {DEL = true, EXISTS = true, MGET = true, UNLINK = true}
local function check(command, ...)
  local name = string.upper(command)
  if keyless[name] then
    return
  end
  local args = {...}
  local last = all_keys[name] and #args or 1
  for i = 1, last do
    if not declared[args[i]] then
      error('undeclared key ' .. tostring(args[i]) .. ' in ' .. name)
    end
  end
end
local redis = setmetatable({
  call = function(command, ...) check(command, ...) return real_redis.call(command, ...) end,
  pcall = function(command, ...) check(command, ...) return real_redis.pcall(command, ...) end,
}, {__index = real_redis})
"""

_CALL = re.compile(r"redis\.p?call\(\s*'([A-Za-z]+)'\s*(?:,\s*([^,)]+))?")


def _sources() -> Iterator[tuple[str, str]]:
    yield "common", _scripts.read("common")
    for name in _scripts.SCRIPT_NAMES:
        yield name, _scripts.read(name)


def test_no_script_builds_a_key() -> None:
    """A key argument is a KEYS alias or a KEYS expression: never concatenated, quoted or from ARGV."""
    seen = 0
    for name, source in _sources():
        for command, key in _CALL.findall(source):
            if command.upper() in ("TIME", "PUBLISH"):
                continue
            seen += 1
            key = key.strip()
            assert ".." not in key and "'" not in key and "ARGV" not in key, f"{name}.lua: {command} {key}"
            assert re.fullmatch(r"K_[A-Z_]+|flag|KEYS\[.+|unpack\(KEYS|index(\[1\])?|schedule|place", key), (
                f"{name}.lua: {command} takes {key!r}, not a declared key"
            )
    assert seen > 50
    header = _keys.lua_header()
    assert re.findall(r"local (K_\w+) = (.*)", header) == [
        (name, f"KEYS[{i}]") for i, name in enumerate(re.findall(r"local (K_\w+) =", header), start=1)
    ], "the header names KEYS and builds nothing"


def test_every_script_has_a_shebang_so_a_cluster_refuses_cross_slot_keys() -> None:
    for script in _scripts.scripts().values():
        first = script.source.splitlines()[0]
        assert first in ("#!lua", "#!lua flags=no-writes"), (script.name, first)
        assert "allow-cross-slot-keys" not in first
    assert all(
        "-- mirrors rules." in _scripts.read(name) for name in ("enqueue", "claim", "finish", "cancel")
    )


@pytest.fixture
def checked_scripts(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every script runs with the checking prelude (new SHAs: NOSCRIPT, then EVAL loads them)."""
    checked = {name: _scripts.build(name, CHECKING_PRELUDE) for name in _scripts.SCRIPT_NAMES}
    monkeypatch.setattr(_scripts, "scripts", lambda: checked)


async def test_the_checking_prelude_catches_an_undeclared_key(server_url: str, prefix: str) -> None:
    client = Redis.from_url(server_url, protocol=2)
    try:
        body = "#!lua\n" + CHECKING_PRELUDE + "return redis.call('GET', KEYS[1] .. ':other')\n"
        with pytest.raises(Exception, match="undeclared key"):
            await client.eval(body, 1, f"{prefix}:{{x}}:declared")
        ok = "#!lua\n" + CHECKING_PRELUDE + "return redis.call('EXISTS', KEYS[1])\n"
        assert await client.eval(ok, 1, f"{prefix}:{{x}}:declared") == 0
    finally:
        await client.aclose()


@pytest.mark.usefixtures("checked_scripts")
async def test_every_script_touches_only_declared_keys(storage: RedisStorage) -> None:
    # listening: listen.lua runs, and every script publishes (the flags are declared keys too)
    async with storage.subscribe(Channel.EVENTS, Channel.DONE):
        w = "w:1"
        outcomes = await storage.enqueue_many(
            [NewJob(f"j{i}", b"m", priority=i % 3) for i in range(8)]
            + [NewJob("j0", b"dup"), NewJob("later", b"m", delay_ms=30)]
        )
        assert [o.accepted for o in outcomes] == [True] * 8 + [False, True]
        assert await storage.heartbeat(w, ttl_ms=10_000) == {}
        claims = await storage.dequeue(w, lease_ms=10_000, timeout_ms=2000, limit=8)
        ids = [c.id for c in claims]
        assert len(ids) == 8
        assert await storage.set_progress(ids[0], w, b"half")
        assert await storage.request_abort(ids[1]) is JobState.PROCESSING
        revoked = await storage.heartbeat(w, ttl_ms=10_000, job_ids=[*ids, "nope"], lease_ms=20_000)
        assert revoked == {ids[1]: "aborted", "nope": "lost"}
        stored = await storage.finish_many(
            w,
            [
                Finish.complete(ids[0], b"r", 60_000),
                Finish.fail(ids[1], b"e", 60_000),
                Finish.retry(ids[2], b"e", 60_000),
                Finish.release(ids[3]),
            ],
        )
        assert stored == [True] * 4
        assert await storage.dequeue("other", lease_ms=1, timeout_ms=2000, limit=1)  # a 1 ms lease stalls

        async def recovered() -> bool:  # the lease may not have run out yet in the same millisecond
            return bool((await storage.recover_stalled()).stalled)

        await wait_until(recovered, message="a 1 ms lease is recovered", timeout=5)
        assert await storage.get_many([ids[0], ids[2], "nope"])
        assert await storage.update_ttl(ids[0], 120_000) == "updated"
        assert await storage.cancel(ids[2]) is JobState.FAILING
        assert await storage.retry_failed(ids[1])
        assert (await storage.counts())[JobState.COMPLETED] == 1
        assert (await storage.list_jobs(limit=3)).records
        assert await storage.list_workers()
        assert await storage.list_namespaces() == ["default"]
        assert await storage.purge([JobState.COMPLETED]) == 1
        assert await storage.acquire_lock("leader", "me", 10_000)
        assert await storage.release_lock("leader", "me")
        await storage.unregister_worker(w)
        await storage._run("wake")  # run by a dequeue cancelled right after its wake-up


# ------------------------------------------------------------------------------------------ priority


async def test_higher_priority_is_claimed_first_then_first_in_first_out(storage: RedisStorage) -> None:
    jobs = [("low-1", -5), ("mid-1", 0), ("top-1", rules.PRIORITY_MAX), ("mid-2", 0), ("low-2", -5)]
    jobs += [("bottom", rules.PRIORITY_MIN), ("top-2", rules.PRIORITY_MAX), ("mid-3", 0)]
    await storage.enqueue_many([NewJob(job_id, b"m", priority=priority) for job_id, priority in jobs])
    claims = await storage.dequeue("w", lease_ms=10_000, timeout_ms=0, limit=3)
    assert [c.id for c in claims] == ["top-1", "top-2", "mid-1"]
    # a released job goes back to the head of its own priority, not ahead of higher ones
    assert await storage.finish_many("w", [Finish.release("mid-1"), Finish.release("top-2")]) == [True, True]
    claims = await storage.dequeue("w", lease_ms=10_000, timeout_ms=0, limit=10)
    assert [c.id for c in claims] == ["top-2", "mid-1", "mid-2", "mid-3", "low-1", "low-2", "bottom"]


async def test_fifo_holds_across_many_batches_and_a_drained_queue(storage: RedisStorage) -> None:
    for batch in range(3):
        await storage.enqueue_many([NewJob(f"b{batch}-{i:03}", b"m") for i in range(300)])
    claimed = []
    while claims := await storage.dequeue("w", lease_ms=10_000, timeout_ms=0, limit=250):
        claimed += [c.id for c in claims]
    assert claimed == sorted(claimed) and len(claimed) == 900
    await storage.finish_many("w", [Finish.complete(job_id, b"r", 60_000) for job_id in claimed[:500]])
    await storage.finish_many("w", [Finish.complete(job_id, b"r", 60_000) for job_id in claimed[500:]])
    await storage.enqueue_many([NewJob("again-2", b"m"), NewJob("again-1", b"m")])  # the sequence restarted
    assert [c.id for c in await storage.dequeue("w", lease_ms=10_000, timeout_ms=0, limit=5)] == [
        "again-2",
        "again-1",
    ]


async def test_an_unreadable_record_is_skipped_and_reported_not_fatal(
    storage: RedisStorage, raw: Redis
) -> None:
    await storage.enqueue_many([NewJob("bad", b"m"), NewJob("good", b"m")])
    await raw.hset(storage.keys.fixed("live"), "bad", b"\xc1 not msgpack")
    claims = await storage.dequeue("w", lease_ms=10_000, timeout_ms=0, limit=5)
    assert [c.id for c in claims] == ["good"], "the namespace's claims go on"
    with pytest.raises(CorruptDataError, match="'bad'"):
        await storage.get("bad")
    assert await storage.cancel("bad") is None
    assert (await storage.counts())[JobState.PROCESSING] == 1


# -------------------------------------------------------------------------------------- job index


async def test_enqueue_dedups_on_the_job_index_and_keeps_it_while_jobs_live(
    storage: RedisStorage, raw: Redis
) -> None:
    jobs = storage.keys.fixed("jobs")
    await storage.enqueue_many([NewJob("a", b"m")])
    await storage.dequeue("w", lease_ms=10_000, timeout_ms=0, limit=1)
    await storage.finish_many("w", [Finish.complete("a", b"r", 60_000)])
    assert 0 < await raw.pttl(jobs) <= 60_000, "no live job: the index expires with the last record"
    # an id of the index is looked up (still finished: refused); a new one is not, and the
    # index lives on while it does
    outcomes = await storage.enqueue_many([NewJob("a", b"m2"), NewJob("b", b"m")])
    assert [o.accepted for o in outcomes] == [False, True]
    assert outcomes[0].existing is not None and outcomes[0].existing.state is JobState.COMPLETED
    assert await raw.pttl(jobs) == -1
    await storage.finish_many(
        "w",
        [
            Finish.complete(c.id, b"r", 60_000)
            for c in await storage.dequeue("w", lease_ms=10_000, timeout_ms=0, limit=1)
        ],
    )
    assert await raw.pttl(jobs) > 0
    assert (await storage.enqueue_many([NewJob("c", b"m")]))[0].accepted  # a fresh batch, a fresh sequence
    assert await raw.pttl(jobs) == -1
    assert not (await storage.enqueue_many([NewJob("c", b"m")]))[0].accepted
    assert [c.id for c in await storage.dequeue("w", lease_ms=10_000, timeout_ms=0, limit=5)] == ["c"]


async def test_a_dequeue_after_a_claim_that_emptied_ready_still_wakes_for_a_due_job(
    storage: RedisStorage,
) -> None:
    # The dequeue after a claim that emptied `ready` blocks without claiming first: the
    # marker is gone, so only that claim's report of the next due job can wake it in time.
    await storage.enqueue_many([NewJob("later", b"m", delay_ms=300), NewJob("now", b"m")])
    assert [c.id for c in await storage.dequeue("w", lease_ms=10_000, timeout_ms=0, limit=5)] == ["now"]
    loop = asyncio.get_running_loop()
    started = loop.time()
    claims = await storage.dequeue("w", lease_ms=10_000, timeout_ms=30_000, limit=5)
    assert [c.id for c in claims] == ["later"]
    assert loop.time() - started < 15, "woke at the dequeue's timeout, not when the job fell due"
