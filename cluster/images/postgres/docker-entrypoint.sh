#!/bin/bash
# Entrypoint of the local postgres stand-in (cluster/images/postgres/Dockerfile): the official image's contract as
# the chart uses it. `postgres [options]` (or options alone) starts the server; on an empty PGDATA it first runs
# initdb with POSTGRES_USER (default postgres) and POSTGRES_PASSWORD (required, read from a file descriptor, never
# argv), POSTGRES_INITDB_ARGS, password authentication (scram-sha-256) for every TCP connection, creates
# POSTGRES_DB (default: the user's name) and runs /docker-entrypoint-initdb.d/*.sql and *.sh against it on a
# socket-only server. Any other command runs as given.
set -euo pipefail

if [[ ${1-} == -* ]]; then
    set -- postgres "$@"
fi
if [[ ${1-} != postgres ]]; then
    exec "$@"
fi
if [[ $(id -u) == 0 ]]; then
    # Started as root (docker run --user 0): the data directory becomes the postgres user's, and so does the server.
    install -d -o postgres -g postgres -m 0700 "$PGDATA"
    exec setpriv --reuid=postgres --regid=postgres --init-groups "$0" "$@"
fi

export POSTGRES_USER=${POSTGRES_USER:-postgres}
export POSTGRES_DB=${POSTGRES_DB:-$POSTGRES_USER}

if [[ ! -s $PGDATA/PG_VERSION ]]; then
    if [[ -z ${POSTGRES_PASSWORD-} ]]; then
        echo "docker-entrypoint.sh: the database is uninitialised and POSTGRES_PASSWORD is not set: give the" \
             "superuser's password in POSTGRES_PASSWORD" >&2
        exit 1
    fi
    mkdir -p "$PGDATA"
    chmod 0700 "$PGDATA"
    # shellcheck disable=SC2086  # POSTGRES_INITDB_ARGS is a list of options, split as the official image does
    initdb --username="$POSTGRES_USER" --pwfile=<(printf '%s\n' "$POSTGRES_PASSWORD") ${POSTGRES_INITDB_ARGS-}
    printf '\nhost all all all scram-sha-256\n' >> "$PGDATA/pg_hba.conf"

    # A server on the socket alone for the setup, so no client connects before it is done.
    pg_ctl -D "$PGDATA" -o "-c listen_addresses='' -p 5432" -w start
    psql=(psql -v ON_ERROR_STOP=1 --no-psqlrc --username "$POSTGRES_USER" --no-password)
    if [[ $POSTGRES_DB != postgres ]]; then
        "${psql[@]}" --dbname postgres --set db="$POSTGRES_DB" <<<'CREATE DATABASE :"db";'
    fi
    shopt -s nullglob
    for file in /docker-entrypoint-initdb.d/*; do
        case "$file" in
            *.sql) echo "docker-entrypoint.sh: running $file"; "${psql[@]}" --dbname "$POSTGRES_DB" -f "$file" ;;
            *.sh) echo "docker-entrypoint.sh: running $file"; bash "$file" ;;
            *) echo "docker-entrypoint.sh: ignoring $file" ;;
        esac
    done
    pg_ctl -D "$PGDATA" -m fast -w stop
    echo "docker-entrypoint.sh: database cluster initialised in $PGDATA"
fi

exec "$@"
