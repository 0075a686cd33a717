#!/usr/bin/env bash
# Builds every distribution as a wheel, installs them in a clean venv and
# imports them: proves the packages work outside the workspace.
set -euo pipefail
cd "$(dirname "$0")/.."
dist=$(mktemp -d)
venv=$(mktemp -d)
trap 'rm -rf "$dist" "$venv"' EXIT
uv build --all-packages --no-sources --out-dir "$dist" -q
uv venv -q "$venv"
uv pip install -q --python "$venv/bin/python" "$dist"/*.whl
"$venv/bin/python" - <<'PY'
import importlib
from importlib.metadata import entry_points

for name in (
    "jobqueue", "jobqueue.storage", "jobqueue_redis", "jobqueue_file", "jobqueue_postgres",
    "jobqueue_conformance", "jobqueue_tui",
):
    importlib.import_module(name)
schemes = sorted(ep.name for ep in entry_points(group="jobqueue.storages"))
expected = {"memory", "redis", "rediss", "valkey", "valkeys", "file", "postgresql", "postgres", "redis+cluster"}
assert expected <= set(schemes), schemes
from importlib.resources import files
assert any(p.name.endswith(".sql") for p in files("jobqueue_postgres").joinpath("migrations").iterdir())
print("wheels import fine; storage schemes:", ", ".join(schemes))
PY
