#!/usr/bin/env bash
# Installs what the test suite needs beyond Python: redis-server (Debian main),
# valkey-server (bookworm-backports, same mirror and keyring as the system's
# Debian source), PostgreSQL (Debian main: initdb and pg_ctl under
# /usr/lib/postgresql/*/bin) and tmux (the dashboard's real-terminal test).
# Idempotent; safe to run on every CI start.
set -euo pipefail

has_postgres() { compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null || command -v initdb >/dev/null; }

if command -v redis-server >/dev/null && command -v valkey-server >/dev/null && command -v tmux >/dev/null \
  && has_postgres; then
  exit 0
fi

src=/etc/apt/sources.list.d/bookworm-backports.sources
if [ ! -f "$src" ]; then
  mirror=$(grep -hE '^URIs: .*debian/?$' /etc/apt/sources.list.d/*.sources 2>/dev/null | head -n1 | awk '{print $2}')
  mirror=${mirror:-http://deb.debian.org/debian}
  cat >"$src" <<SRC
Types: deb
URIs: $mirror
Suites: bookworm-backports
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SRC
fi

export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
command -v redis-server >/dev/null || apt-get install -y -qq redis-server
command -v valkey-server >/dev/null || apt-get install -y -qq -t bookworm-backports valkey-server
command -v tmux >/dev/null || apt-get install -y -qq tmux
has_postgres || apt-get install -y -qq postgresql
# The packages' services are not wanted: tests start their own servers.
systemctl disable --now valkey-server 2>/dev/null || true
systemctl disable --now postgresql 2>/dev/null || true
