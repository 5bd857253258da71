#!/usr/bin/env bash
# Starts a throwaway PostgreSQL for kiban's store tests (issue 2: "the store tests run against
# SQLite and PostgreSQL in CI").
#
# Idempotent: installs Debian's `postgresql` package only when no server binaries are present,
# initialises a cluster only when its data directory is empty, starts it only when it is not
# running, creates the role and database only when missing. Runs as root on a fresh Debian
# machine (the server itself runs as the `postgres` user: initdb refuses root); as a non-root
# user it works when PostgreSQL is already installed.
#
# Everything goes to stderr except the last line on stdout, so that CI can do:
#   eval "$(bash .ci/postgres.sh | tail -1)"
set -euo pipefail

PORT="${KIBAN_PG_PORT:-54329}"
DATA="${KIBAN_PG_DATA:-${TMPDIR:-/tmp}/kiban-pg-$PORT}"
ROLE=kiban
DB=kiban_test
export DEBIAN_FRONTEND=noninteractive

log() { echo "postgres.sh: $*" >&2; }

find_bin() {
    local d
    d="$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1 || true)"
    if [ -n "$d" ] && [ -x "$d/pg_ctl" ] && [ -x "$d/initdb" ]; then
        echo "$d"
    fi
}

BIN="$(find_bin)"
if [ -z "$BIN" ]; then
    if [ "$(id -u)" -ne 0 ]; then
        log "PostgreSQL is not installed and this script is not root: cannot apt-get install"
        exit 1
    fi
    log "installing PostgreSQL from Debian's packages"
    apt-get update -qq >&2
    apt-get install -y -qq --no-install-recommends postgresql >&2
    BIN="$(find_bin)"
    if [ -z "$BIN" ]; then
        log "postgresql installed but no server binaries under /usr/lib/postgresql/*/bin"
        exit 1
    fi
fi
log "using $BIN"

# The server runs as `postgres` when we are root, as ourselves otherwise.
if [ "$(id -u)" -eq 0 ]; then
    as_pg() { runuser -u postgres -- "$@"; }
    mkdir -p "$DATA"
    chown postgres:postgres "$DATA"
    chmod 700 "$DATA"
else
    as_pg() { "$@"; }
    mkdir -p "$DATA"
    chmod 700 "$DATA"
fi

if [ ! -s "$DATA/PG_VERSION" ]; then
    log "initdb into $DATA"
    as_pg "$BIN/initdb" -D "$DATA" -U postgres --auth=trust -E UTF8 --no-locale >&2
fi

if as_pg "$BIN/pg_ctl" -D "$DATA" status >/dev/null 2>&1; then
    log "already running on 127.0.0.1:$PORT"
else
    # A stale pid file from a killed server would make pg_ctl refuse to start.
    rm -f "$DATA/postmaster.pid"
    log "starting on 127.0.0.1:$PORT"
    as_pg "$BIN/pg_ctl" -D "$DATA" -l "$DATA/server.log" -w -t 60 \
        -o "-c listen_addresses=127.0.0.1 -p $PORT -k $DATA" start >&2
fi

psql_pg() { "$BIN/psql" -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$PORT" -U postgres -d postgres "$@"; }

if [ "$(psql_pg -tAc "SELECT 1 FROM pg_roles WHERE rolname = '$ROLE'")" != "1" ]; then
    log "creating role $ROLE"
    psql_pg -c "CREATE ROLE $ROLE LOGIN CREATEDB" >&2
fi
if [ "$(psql_pg -tAc "SELECT 1 FROM pg_database WHERE datname = '$DB'")" != "1" ]; then
    log "creating database $DB"
    psql_pg -c "CREATE DATABASE $DB OWNER $ROLE ENCODING 'UTF8' TEMPLATE template0" >&2
fi

echo "export KIBAN_TEST_POSTGRES_URL=postgres://$ROLE@127.0.0.1:$PORT/$DB"
