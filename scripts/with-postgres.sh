#!/usr/bin/env bash
# Runs a command with a throwaway PostgreSQL server of its own: installs Debian's `postgresql`
# when its server binaries are missing, creates a cluster in a temp directory, starts it on a
# free loopback port, exports TEST_POSTGRES_URL (postgres://bridge@127.0.0.1:PORT, trust auth,
# no database: each test creates its own) and PG_BIN, runs the command, then stops the server
# and deletes the cluster whatever the command did. Exits with the command's status.
#   scripts/with-postgres.sh cargo test --test api_postgres
set -euo pipefail

find_bin() { ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1; }

PG_BIN="$(find_bin)"
if [ -z "$PG_BIN" ] || [ ! -x "$PG_BIN/initdb" ]; then
    sudo=()
    if [ "$(id -u)" -ne 0 ]; then
        sudo=(sudo)
    fi
    export DEBIAN_FRONTEND=noninteractive
    if ! apt-cache policy postgresql 2>/dev/null | grep -q 'Candidate: [0-9]'; then
        "${sudo[@]}" apt-get update -qq
    fi
    install() { "${sudo[@]}" apt-get install -y -qq --no-install-recommends postgresql >/dev/null; }
    install || { "${sudo[@]}" apt-get update -qq && install; }
    PG_BIN="$(find_bin)"
fi

dir="$(mktemp -d /tmp/bridge-pg.XXXXXX)"
# initdb refuses to run as root: the cluster then belongs to Debian's `postgres` user.
as_owner=()
if [ "$(id -u)" -eq 0 ]; then
    chown postgres "$dir"
    as_owner=(runuser -u postgres --)
fi
port="$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"

stop() {
    "${as_owner[@]}" "$PG_BIN/pg_ctl" -D "$dir/data" -m immediate stop >/dev/null 2>&1 || true
    rm -rf "$dir"
}
trap stop EXIT

"${as_owner[@]}" "$PG_BIN/initdb" -D "$dir/data" -U bridge --auth=trust -E UTF8 >"$dir/initdb.log" 2>&1 \
    || { cat "$dir/initdb.log"; exit 1; }
# Durable like production (fsync on); enough connections for the suite's parallel tests.
"${as_owner[@]}" "$PG_BIN/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -o \
    "-p $port -k $dir -c listen_addresses=127.0.0.1 -c max_connections=400 -c shared_buffers=128MB" \
    start >/dev/null || { cat "$dir/server.log"; exit 1; }

export TEST_POSTGRES_URL="postgres://bridge@127.0.0.1:$port"
export PG_BIN
echo "PostgreSQL $("$PG_BIN/postgres" --version | awk '{print $3}') at $TEST_POSTGRES_URL (cluster $dir)" >&2
set +e
"$@"
status=$?
set -e
exit "$status"
