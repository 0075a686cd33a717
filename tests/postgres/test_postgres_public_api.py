"""The public surface of jobqueue_postgres is pinned: changing it is a visible decision."""

from __future__ import annotations

import jobqueue
import jobqueue_postgres
import pytest
from jobqueue.storage import Capability, capabilities
from jobqueue_postgres import PostgresStorage

pytestmark = pytest.mark.postgres


def test_all_is_pinned() -> None:
    assert jobqueue_postgres.__all__ == ["PostgresStorage"]
    assert all(getattr(jobqueue_postgres, name) for name in jobqueue_postgres.__all__)


def test_declares_every_capability() -> None:
    assert issubclass(PostgresStorage, jobqueue.Storage)
    assert capabilities(PostgresStorage("postgresql://h/db")) == frozenset(Capability)


def test_both_schemes_are_registered() -> None:
    assert {"postgresql", "postgres"} <= set(jobqueue.available_schemes())
    storage = jobqueue.storage_from_url("postgres://u@h:5433/db?schema=jq_1&pool_min=0&pool_max=3")
    assert isinstance(storage, PostgresStorage)
    assert storage.schema == "jq_1"


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("postgresql://h/db?prefix=x", "unknown storage url option"),
        ("postgresql://h/db?schema=Bad", "schema must match"),
        ("postgresql://h/db?schema=a;drop", "schema must match"),
        ("postgresql://h/db?schema=pg_catalog", "schema must match"),
        ("postgresql://h/db?pool_max=0", "pool_max must be"),
        ("postgresql://h/db?pool_min=5&pool_max=2", "must not exceed"),
        ("postgresql://h/db?pool_min=-1", "pool_min must be"),
        ("redis://h/0", "not a postgresql"),
    ],
)
def test_bad_urls_are_refused_with_the_reason(url: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        PostgresStorage.from_url(url)


def test_driver_options_pass_through_and_ours_do_not() -> None:
    storage = PostgresStorage.from_url("postgresql://u:p@h/db?sslmode=disable&schema=s&application_name=jq")
    assert storage.schema == "s"
    assert "schema" not in repr(storage._shared.options.dsn)
    assert "sslmode=disable" in storage._shared.options.dsn


@pytest.mark.parametrize("name", ["", "bad\ud800"])
def test_bad_namespaces_are_refused(name: str) -> None:
    with pytest.raises(ValueError, match="namespace name"):
        PostgresStorage("postgresql://h/db", name=name)
    with pytest.raises(ValueError, match="namespace name"):
        PostgresStorage("postgresql://h/db").namespace(name)
