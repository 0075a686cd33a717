"""Secrets in storage URLs: never in an error message, a log line or what the CLI prints.

``redact_url`` is the one function every URL goes through; these tests build
URLs around generated secrets and look for the secrets (as written and
percent-decoded) in everything the project says about them.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from urllib.parse import quote

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from jobqueue import storage_from_url
from jobqueue._cli import main as cli_main
from jobqueue.storage import parse_query, redact_url

# Secrets start with "Zq", which no other part of a generated URL can hold (they are lower case), so
# finding one in a message is a leak, not a coincidence.
_SECRET_BODY = st.text(alphabet=st.characters(codec="utf-8"), min_size=4, max_size=24)
SECRETS = _SECRET_BODY.map(lambda body: "Zq" + body)
HOSTS = st.sampled_from(["127.0.0.1", "localhost", "redis.internal", "[::1]"])
USERS = st.sampled_from(["", "app", "default"])
SECRET_OPTIONS = st.sampled_from(
    ["password", "sslpassword", "token", "api_key", "client_secret", "authToken"]
)
SCHEMES = st.sampled_from(["redis", "rediss", "valkey", "memory", "file", "nosuch", "postgresql"])
EXAMPLES = settings(max_examples=300, deadline=None)


def leaked(secret: str, text: str) -> bool:
    """True when ``text`` holds ``secret`` as written, percent-encoded, or its readable part."""
    return any(form in text for form in (secret, quote(secret, safe=""), secret[:6]))


@st.composite
def urls_with_a_secret(draw: st.DrawFn) -> tuple[str, str]:
    """A storage URL carrying one generated secret in its userinfo or in a secret-looking option."""
    secret = draw(SECRETS)
    scheme, host, user = draw(SCHEMES), draw(HOSTS), draw(USERS)
    where = draw(st.sampled_from(["password", "lone-userinfo", "option", "raw-password"]))
    tail = draw(st.sampled_from(["/0", "/0?prefix=jq", "/0?bogus=1", ":6379/0?prefix=jq&x=y#frag"]))
    encoded = quote(secret, safe="")
    if where == "password":
        url = f"{scheme}://{user}:{encoded}@{host}{tail}"
    elif where == "lone-userinfo":
        url = f"{scheme}://{encoded}@{host}{tail}"
    elif where == "raw-password":  # written carelessly, not percent-encoded (but without "@=&")
        raw = "".join(c for c in secret if c not in "@=&%") or "Zqxyz"
        secret = raw
        url = f"{scheme}://{user}:{raw}@{host}{tail}"
    else:
        option = draw(SECRET_OPTIONS)
        separator = "&" if "?" in tail else "?"
        url = f"{scheme}://{host}{tail.split('#')[0]}{separator}{option}={encoded}"
    return url, secret


@EXAMPLES
@given(urls_with_a_secret())
@example(("redis://u:Zqs3cret@127.0.0.1:1/0?bogus=1", "Zqs3cret"))
@example(("redis://127.0.0.1/0?password=Zqs3cret", "Zqs3cret"))
@example(("rediss://:Zqpa/ss@host/0", "Zqpa/ss"))
@example(("redis://Zqpass?word@host/0", "Zqpass?word"))
def test_redact_url_never_shows_a_secret(case: tuple[str, str]) -> None:
    url, secret = case
    shown = redact_url(url)
    assert not leaked(secret, shown), (url, shown)
    assert "***" in shown
    assert redact_url(shown) == shown  # redacting twice changes nothing


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("redis://localhost:6379/0", "redis://localhost:6379/0"),
        ("redis://:pw@localhost/0", "redis://:***@localhost/0"),
        ("redis://user:pw@localhost/0", "redis://user:***@localhost/0"),
        ("redis://pw@localhost/0", "redis://***@localhost/0"),
        (
            "rediss://h/0?prefix=jq&password=pw&ssl_cert_reqs=none",
            "rediss://h/0?prefix=jq&password=***&ssl_cert_reqs=none",
        ),
        (
            "postgresql://h/db?sslpassword=pw&application_name=a",
            "postgresql://h/db?sslpassword=***&application_name=a",
        ),
        ("file:///var/lib/jq?durable=false", "file:///var/lib/jq?durable=false"),
        ("memory://", "memory://"),
        ("", ""),
    ],
)
def test_redact_url_keeps_everything_that_is_not_secret(url: str, shown: str) -> None:
    assert redact_url(url) == shown


@given(st.text())
def test_redact_url_never_raises(text: str) -> None:
    assert isinstance(redact_url(text), str)


@EXAMPLES
@given(urls_with_a_secret())
def test_url_errors_never_show_a_secret(case: tuple[str, str]) -> None:
    url, secret = case
    # A raw "#" in a password makes the rest a fragment: then there is no option to refuse.
    refused = message_of(lambda: parse_query(url + ("&" if "?" in url else "?") + "unknown=1", set()))
    assert not leaked(secret, refused), refused
    bad = url.replace("/0", ":99999/0", 1) if "@" in url else url + "&bogus=1"
    failed = message_of(lambda: storage_from_url(bad))
    assert not leaked(secret, failed), failed


def message_of(call: Callable[[], object]) -> str:
    """The message of the exception ``call`` raises ("" when it returns)."""
    try:
        call()
    except Exception as exc:  # any failure, whatever its type, must not carry the secret
        return str(exc)
    return ""


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(case=urls_with_a_secret())
@example(case=("redis://u:Zqs3cret@127.0.0.1:99999/0", "Zqs3cret"))
def test_cli_errors_and_logs_never_show_a_secret(
    case: tuple[str, str], capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    """The CLI's own main, on a URL that fails to parse: stdout, stderr and log records."""
    url, secret = case
    capsys.readouterr()
    caplog.clear()
    bad = url.replace("/0", ":99999/0", 1) if "@" in url else url + "&bogus=1"
    with caplog.at_level(logging.DEBUG):
        code = cli_main(["stats", "--storage", bad])
    assert code in (1, 2)  # a usage error, or a backend that cannot load: the URL is named either way
    out, err = capsys.readouterr()
    said = out + err + "\n".join(record.getMessage() for record in caplog.records)
    assert err.startswith("jobqueue: error: ")
    assert not leaked(secret, said), said
