"""``jobqueue worker --metrics-port`` and ``jobqueue metrics``: real processes, scraped over HTTP."""

from __future__ import annotations

import re
import signal
import urllib.request
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.e2e.cli_support import assert_error, run_cli, spawn, storage_args

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def scrape(url: str) -> Samples:
    with urllib.request.urlopen(url, timeout=30) as response:
        text = response.read().decode()
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def endpoint(line: str) -> str:
    match = re.search(r"metrics on (http://\S+)", line)
    assert match is not None, line
    return match.group(1)


def test_worker_serves_the_counters_of_the_jobs_it_ran(app_dir: Path, store_url: str) -> None:
    target = storage_args(store_url, "metered")
    args = ["worker", "app:handle", *target, "--metrics-port", "0", "--metrics-host", "127.0.0.1"]
    with spawn(*args, cwd=app_dir) as (proc, reader):
        url = endpoint(reader.wait_for("metrics on"))
        reader.wait_for("handler app:handle")
        for i in range(3):
            done = run_cli("enqueue", *target, f"ok-{i}", "{}", "--wait", "--timeout", "60", cwd=app_dir)
            assert done.returncode == 0, done.stderr
        failed = run_cli(
            "enqueue", *target, "bad", '{"fail": true}', "--wait", "--max-attempts", "1", cwd=app_dir
        )
        assert_error(failed, 1, "ValueError: boom")
        samples = scrape(url)
        assert value(samples, "jobqueue_jobs_completed_total", queue="metered") == 3
        assert value(samples, "jobqueue_jobs_failed_total", queue="metered", error_type="ValueError") == 1
        assert (
            value(samples, "jobqueue_process_duration_seconds_count", queue="metered", outcome="completed")
            == 3
        )
        assert value(samples, "jobqueue_jobs", queue="metered", state="completed") == 3
        assert value(samples, "jobqueue_jobs", queue="metered", state="failed") == 1
        assert value(samples, "jobqueue_workers_alive", queue="metered") == 1
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 0


def test_metrics_command_serves_the_counts_of_every_queue(app_dir: Path, store_url: str) -> None:
    for queue, count in (("left", 2), ("right", 1)):
        for i in range(count):
            result = run_cli("enqueue", *storage_args(store_url, queue), f"j{i}", "{}", cwd=app_dir)
            assert result.returncode == 0, result.stderr
    args = ["metrics", "--storage", store_url, "--port", "0", "--host", "127.0.0.1"]
    with spawn(*args, cwd=app_dir) as (proc, reader):
        samples = scrape(endpoint(reader.wait_for("metrics on")))
        assert value(samples, "jobqueue_storage_up") == 1
        assert value(samples, "jobqueue_jobs", queue="left", state="queued") == 2
        assert value(samples, "jobqueue_jobs", queue="right", state="queued") == 1
        assert value(samples, "jobqueue_workers_alive", queue="left") == 0
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 0


@pytest.mark.memory
def test_metrics_command_refuses_a_bad_port(app_dir: Path) -> None:
    result = run_cli("metrics", "--storage", "memory://", "--port", "70000", cwd=app_dir)
    assert result.returncode == 2
    assert "must be between 0 and 65535" in result.stderr
