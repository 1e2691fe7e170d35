# Gives POSTGRES_USER the password of the Secret (POSTGRES_PASSWORD) before the server starts, at every start of
# the chart's PostgreSQL (an init container on the same image and volume). The image's entrypoint sets it only
# when it initialises an empty data directory, so without this a rotated password would never reach the server
# and every WAREHOUSE_URL built from the new one would be refused.
#
# Single-user mode: no network, no authentication (it runs as the cluster's bootstrap superuser). The statement
# goes through stdin (printf is a shell builtin), so the password is in no argv; the server logs neither the
# statement nor, on an error, the statement that failed, and an error ends it with a non-zero status
# (exit_on_error), which fails the pod's start instead of starting a server that refuses the new password.
set -eu
if [ ! -s "$PGDATA/PG_VERSION" ]; then
    echo "no database cluster in $PGDATA yet: the server's first start sets the password"
    exit 0
fi
user=$(printf '%s' "$POSTGRES_USER" | sed 's/"/""/g')
password=$(printf '%s' "$POSTGRES_PASSWORD" | sed "s/'/''/g")
printf 'ALTER ROLE "%s" PASSWORD '"'"'%s'"'"';\n' "$user" "$password" |
    postgres --single -D "$PGDATA" -c exit_on_error=on -c log_statement=none -c log_min_error_statement=panic \
        -c log_checkpoints=off "$POSTGRES_DB" >/dev/null
echo "password of $POSTGRES_USER set from its Secret"
