#!/usr/bin/env bash
# Times `manage.py seed_demo` for 100,000 implantations on a fresh PostgreSQL database.
#
#   bash bench/seed_demo.sh [IMPLANTATIONS] [CENTRES]
#   SEED_ARGS=--no-copy bash bench/seed_demo.sh     # child tables through bulk_create too
#
# Needs PostgreSQL on 127.0.0.1:5432 with trust auth for user postgres. The
# database (default hai_bench_seed, override with BENCH_DB) is dropped and
# created anew, migrated, then seeded once; prints wall time and row counts.
set -euo pipefail
cd "$(dirname "$0")/.."

N="${1:-100000}"
CENTRES="${2:-12}"
DB="${BENCH_DB:-hai_bench_seed}"
PSQL=(psql -h 127.0.0.1 -U postgres -v ON_ERROR_STOP=1 -q)
PY="${PYTHON:-.venv/bin/python}"
export DATABASE_URL="postgres://postgres@127.0.0.1:5432/${DB}"
export DEBUG="${DEBUG:-1}"  # development settings for a bench database

"${PSQL[@]}" -d postgres -c "DROP DATABASE IF EXISTS ${DB}" -c "CREATE DATABASE ${DB}"
"$PY" manage.py migrate -v0

echo "Seeding ${N} implantations in ${CENTRES} centres into ${DB} ${SEED_ARGS:-}…"
echo "machine: $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg) before the run"
start=$(date +%s.%N)
# shellcheck disable=SC2086
"$PY" manage.py seed_demo --implantations "$N" --centres "$CENTRES" --seed 1 ${SEED_ARGS:-}
end=$(date +%s.%N)
printf 'wall time (seed_demo, incl. Python start-up): %.1f s\n' "$(echo "$end - $start" | bc)"

echo "Rows (exact counts):"
for t in sites_centre sites_surgeon sites_reportrecipient sites_membership registry_patient registry_implantation \
         registry_treatment registry_complication registry_livertest registry_perfusioncheck \
         registry_systemictherapyline registry_followup registry_systemictoxicity registry_readmission \
         registry_pumpmodel registry_historicalimplantation; do
  printf '  %-32s %9s\n' "$t" "$("${PSQL[@]}" -d "$DB" -At -c "SELECT count(*) FROM $t")"
done
"${PSQL[@]}" -d "$DB" -At -c "SELECT 'database size: ' || pg_size_pretty(pg_database_size('${DB}'))"
