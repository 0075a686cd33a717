"""The cluster rows of ``tools/bench.py``: jobqueue on a 3+3 Redis cluster, one worker process.

``cluster-p1`` is one queue in one slot (one master serves it); ``cluster-p3``
spreads it over 3 partitions (``?partitions=3``), which land on up to 3
masters. On a 2-core machine the masters share the cores with the drivers, so
no scaling shows: the rows give the per-job cost (commands and scripts, that
is round trips, summed over every master) and the rates at this size.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import redis

from tools.bench_report import Results, fmt, table
from tools.clusters import ClusterProcess

__all__ = ["CLUSTER_SYSTEMS", "cluster_masters", "cluster_table", "commandstats", "flush_masters"]

CLUSTER_SYSTEMS = {"cluster-p1": 1, "cluster-p3": 3}  # system -> partitions

_ROWS = (
    ("enqueue (jobs/s)", "enqueue", 0),
    ("drain, 1 worker process (jobs/s)", "drain", 0),
    ("request/response p50 (ms)", "rr_p50", 2),
    ("50 waiters (jobs/s)", "waiters", 0),
    ("scripts per job, enqueue / drain (round trips)", "scripts", 2),
    ("Redis commands per job, enqueue / drain (Lua's included)", "cmds", 1),
)


def cluster_masters(cluster: ClusterProcess) -> list[int]:
    """The ports of the masters."""
    return [node.port for node in cluster.masters]


def flush_masters(ports: list[int]) -> None:
    """Empty every master and reset its command statistics."""
    for port in ports:
        with redis.Redis(port=port) as client:
            client.flushall()
            client.config_resetstat()


def commandstats(ports: list[int]) -> Counter[str]:
    """Calls per command on every master so far (Lua's included), without the bench's own."""
    total: Counter[str] = Counter()
    for port in ports:
        with redis.Redis(port=port) as client:
            stats: dict[str, Any] = client.info("commandstats")
        total.update({k.removeprefix("cmdstat_"): int(v["calls"]) for k, v in stats.items()})
    ignored = ("info", "config", "flushall", "cluster", "script", "command")
    return Counter({k: n for k, n in total.items() if not k.startswith(ignored)})


def cluster_table(results: Results) -> list[str]:
    """One column per partition count."""
    systems = [s for s in CLUSTER_SYSTEMS if s in results.values]
    rows = []
    for label, metric, digits in _ROWS:
        cells = [label]
        for system in systems:
            if metric in ("scripts", "cmds"):
                enqueue, drain = (
                    results.get(system, f"{metric}_enqueue"),
                    results.get(system, f"{metric}_drain"),
                )
                cells.append(f"{fmt(enqueue, digits)} / {fmt(drain, digits)}")
            else:
                cells.append(fmt(results.get(system, metric), digits))
        rows.append(cells)
    return table(["metric", *(f"{s} (partitions={CLUSTER_SYSTEMS[s]})" for s in systems)], rows)
