#!/usr/bin/env bash
# A throw-away PostgreSQL for the tests, started once and shared.
#
# Installs Debian's `postgresql` with apt-get when its binaries are missing
# (as root with apt-get; else stops at once saying how), creates a cluster in
# target/postgres/data owned by the unprivileged user `postgres` (initdb
# refuses to run as root), and starts it on 127.0.0.1 only, on a free port,
# with its socket in target/postgres/socket and trust authentication on
# loopback. A cluster already running there is reused.
#
# Prints the URL as its last line of stdout:
#   postgres://postgres@127.0.0.1:PORT/postgres
# `source`d, it exports PLATOS_TEST_POSTGRES too.
#   bash scripts/postgres-test-server.sh          # start (or reuse), print the URL
#   bash scripts/postgres-test-server.sh stop     # stop it (a start again keeps the port)
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# PLATOS_TEST_POSTGRES_BASE picks another cluster directory (a test that
# stops and restarts its own server uses one, leaving the shared one alone).
base="${PLATOS_TEST_POSTGRES_BASE:-$root/target/postgres}"
# As root the server runs as `postgres`, which must reach its directory: a
# checkout under a private home (/root is 0700) gets one under /var/tmp,
# named after the directory, instead.
if [ "$(id -u)" = 0 ] && id postgres >/dev/null 2>&1; then
  mkdir -p "$(dirname "$base")"
  if ! runuser -u postgres -- test -x "$(dirname "$base")" 2>/dev/null; then
    base="/var/tmp/platos-test-postgres-$(printf '%s' "$base" | sha256sum | cut -c1-12)"
  fi
fi
data="$base/data"
socket="$base/socket"
log="$base/server.log"
user=postgres

say() { echo "== postgres-test-server: $*" >&2; }
fail() {
  echo "error: postgres-test-server: $*" >&2
  exit 1
}

# The server binaries: Debian puts them under /usr/lib/postgresql/<major>/bin.
find_bin_dir() {
  local dir
  for dir in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V -r); do
    if [ -x "$dir/initdb" ] && [ -x "$dir/pg_ctl" ] && [ -x "$dir/postgres" ]; then
      echo "$dir"
      return
    fi
  done
  local initdb
  initdb="$(command -v initdb || true)"
  if [ -n "$initdb" ] && command -v pg_ctl >/dev/null; then
    dirname "$(readlink -f "$initdb")"
  fi
}

bin="$(find_bin_dir)"
if [ -z "$bin" ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    say "installing Debian's postgresql with apt-get (for the tests)"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
    bin="$(find_bin_dir)"
  fi
  [ -n "$bin" ] ||
    fail "the PostgreSQL server (initdb, pg_ctl) is missing; install it with: sudo apt-get update && sudo apt-get install -y postgresql"
fi

# Runs a server binary as the unprivileged cluster owner (as that user
# already when not root).
as_owner() {
  if [ "$(id -u)" = 0 ]; then
    id "$user" >/dev/null 2>&1 ||
      fail "user $user is missing (Debian's postgresql package creates it); create it with: sudo useradd --system $user"
    if command -v runuser >/dev/null; then
      runuser -u "$user" -- "$@"
    else
      setpriv --reuid="$user" --regid="$(id -g "$user")" --init-groups -- "$@"
    fi
  else
    user="$(id -un)"
    "$@"
  fi
}

running() { [ -f "$data/postmaster.pid" ] && as_owner "$bin/pg_ctl" -D "$data" status >/dev/null 2>&1; }

if [ "${1:-}" = stop ]; then
  if running; then as_owner "$bin/pg_ctl" -D "$data" -m fast -w stop >/dev/null; fi
  say "stopped"
  exit 0
fi

port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

if running && [ -f "$base/port" ]; then
  port="$(cat "$base/port")"
  say "reusing the cluster in $base on 127.0.0.1:$port"
else
  mkdir -p "$base"
  if [ "$(id -u)" = 0 ]; then chown "$user" "$base"; fi
  if [ ! -f "$data/PG_VERSION" ]; then
    rm -rf "$data"
    say "creating a cluster in $data ($("$bin/postgres" --version))"
    as_owner "$bin/initdb" -D "$data" -U postgres --auth=trust --encoding=UTF8 --no-locale >"$base/initdb.log" 2>&1 ||
      fail "initdb failed; see $base/initdb.log"
    # Loopback only: no other address is ever served or trusted.
    cat >"$data/pg_hba.conf" <<'EOF'
# Written by scripts/postgres-test-server.sh: a throw-away test cluster.
local all all             trust
host  all all 127.0.0.1/32 trust
host  all all ::1/128      trust
EOF
  fi
  as_owner mkdir -p "$socket"
  port=""
  # A restarted cluster keeps its port (and so its URL) while it is free.
  if [ -f "$base/port" ] && port_free "$(cat "$base/port")"; then port="$(cat "$base/port")"; fi
  for _ in $(seq 1 50); do
    [ -z "$port" ] || break
    candidate=$((20000 + RANDOM % 40000))
    if port_free "$candidate"; then port="$candidate"; break; fi
  done
  [ -n "$port" ] || fail "found no free port on 127.0.0.1"
  # A stale pid file of a killed server would stop pg_ctl from starting.
  rm -f "$data/postmaster.pid"
  as_owner "$bin/pg_ctl" -D "$data" -l "$log" -w -t 60 \
    -o "-c listen_addresses=127.0.0.1 -p $port -k $socket -c max_connections=300 -c fsync=off -c synchronous_commit=off -c full_page_writes=off" \
    start >/dev/null || fail "the server did not start; see $log"
  echo "$port" >"$base/port"
  say "started on 127.0.0.1:$port (socket in $socket, log in $log)"
fi

export PLATOS_TEST_POSTGRES="postgres://postgres@127.0.0.1:$port/postgres"
echo "$PLATOS_TEST_POSTGRES"
