#!/bin/sh
# The restore drill: restore a backup into a scratch database beside the live one and check
# it: the same migration revision and the same number of rows in every table as the live
# database had (run it right after backup.sh, or compare with the counts it prints). The
# scratch database is dropped afterwards unless KEEP=1.
#   ADMIN_URL=postgresql://postgres@127.0.0.1/postgres \
#     deploy/backup/restore-drill.sh /var/backups/civicbot/civicbot-….dump [LIVE_DATABASE]
# Exit 0: restored and identical in counts; 1: it differs; 2: it did not restore.
set -eu
dump=${1:?the backup file}
live=${2:-}
: "${ADMIN_URL:?libpq URL of a database on the server, as a user that may create databases}"
bin=${PG_BIN:+$PG_BIN/}
scratch="civicbot_drill_$(date -u +%Y%m%d%H%M%S)_$$"
base=${ADMIN_URL%/*}
psql() { "${bin}psql" -X -q -v ON_ERROR_STOP=1 "$@"; }
counts() {  # "table rows" for every table of the database, sorted
    psql --dbname="$base/$1" -At -F' ' -c "
        SELECT format('SELECT %L, count(*) FROM %I.%I', table_name, table_schema, table_name)
        FROM information_schema.tables
        WHERE table_schema = 'public' AND table_type = 'BASE TABLE' ORDER BY table_name" |
    while read -r query; do psql --dbname="$base/$1" -At -F' ' -c "$query"; done
}
psql --dbname="$ADMIN_URL" -c "CREATE DATABASE $scratch"
cleanup() { [ "${KEEP:-0}" = 1 ] || psql --dbname="$ADMIN_URL" -c "DROP DATABASE IF EXISTS $scratch WITH (FORCE)"; }
trap cleanup EXIT
if ! "${bin}pg_restore" --no-owner --exit-on-error --dbname="$base/$scratch" "$dump"; then
    echo "restore-drill: $dump did not restore" >&2
    exit 2
fi
restored=$(counts "$scratch")
echo "$restored" | sed 's/^/restored: /'
revision=$(psql --dbname="$base/$scratch" -At -c "SELECT version_num FROM alembic_version")
echo "restored: alembic revision $revision"
if [ -n "$live" ]; then
    if [ "$(counts "$live")" != "$restored" ]; then
        echo "restore-drill: row counts differ from $live" >&2
        exit 1
    fi
    echo "restore-drill: row counts equal to $live's"
fi
