#!/bin/sh
# A PostgreSQL backup of CivicBot: `pg_dump --format=custom` into BACKUP_DIR, named by the
# time, then the backups older than KEEP_DAYS are deleted. Run it daily (cron or a systemd
# timer) on a machine that can reach the database; copy BACKUP_DIR off the machine.
#   DATABASE_URL=postgresql://civicbot@127.0.0.1/civicbot BACKUP_DIR=/var/backups/civicbot \
#     deploy/backup/backup.sh
# PG_BIN: where pg_dump is (default: on PATH). Prints the file written.
set -eu
: "${DATABASE_URL:?the libpq URL of the database}"
: "${BACKUP_DIR:?where to write}"
KEEP_DAYS=${KEEP_DAYS:-14}
bin=${PG_BIN:+$PG_BIN/}
mkdir -p "$BACKUP_DIR"
file="$BACKUP_DIR/civicbot-$(date -u +%Y%m%dT%H%M%SZ).dump"
"${bin}pg_dump" --format=custom --no-owner --dbname="$DATABASE_URL" --file="$file.partial"
mv "$file.partial" "$file"  # a backup that exists is complete
find "$BACKUP_DIR" -name 'civicbot-*.dump' -mtime +"$KEEP_DAYS" -delete
echo "$file"
