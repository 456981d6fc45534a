#!/usr/bin/env bash
# The peer figure for bench/errors.sh: Bugsink (pip install bugsink, SQLite) under the same replay
# of a real sentry-python envelope. Bugsink's "local" template (inline digestion, so accepted means
# processed), 5 gunicorn workers, and its event quotas raised so nothing is refused with 429.
# Prints accepted and processed events/s and the peak RSS summed over its worker processes.
# Usage: bench/errors_peer_bugsink.sh [events] [concurrency]   (needs network access to PyPI)
set -euo pipefail
cd "$(dirname "$0")/.."
target="${CARGO_TARGET_DIR:-target}"
events="${1:-5000}"
conc="${2:-64}"
port=8010
cargo build --release -q -p lookout-testkit --example sentry_replay
replay="$(cd "$target" && pwd)/release/examples/sentry_replay"
work=$(mktemp -d)
trap 'pkill -f "gunicorn bugsink.wsgi --bind 127.0.0.1:'$port'" || true; kill "${rss_loop:-0}" 2>/dev/null || true; rm -rf "$work"' EXIT
python3 -m venv "$work/venv"
"$work/venv/bin/pip" install -q bugsink
cd "$work"
"$work/venv/bin/bugsink-create-conf" --template=local --port=$port -o bugsink_conf.py >/dev/null
python3 - <<'PY'
p = "bugsink_conf.py"
s = open(p).read()
big = ('    "MAX_EVENTS_PER_PROJECT_PER_5_MINUTES": 10_000_000, "MAX_EVENTS_PER_PROJECT_PER_HOUR": 10_000_000,\n'
       '    "MAX_EVENTS_PER_5_MINUTES": 10_000_000, "MAX_EVENTS_PER_HOUR": 10_000_000,\n'
       '    "MAX_EVENTS_PER_PROJECT_PER_MONTH": 100_000_000, "MAX_EVENTS_PER_MONTH": 100_000_000,\n')
open(p, "w").write(s.replace("BUGSINK = {", "BUGSINK = {\n" + big, 1))
PY
export DJANGO_SETTINGS_MODULE=bugsink_conf PYTHONPATH="$work"
"$work/venv/bin/bugsink-manage" migrate >/dev/null
"$work/venv/bin/bugsink-manage" migrate snappea --database=snappea >/dev/null
"$work/venv/bin/bugsink-manage" shell -c "
from projects.models import Project
from teams.models import Team
Project.objects.create(name='bench', team=Team.objects.create(name='bench'))" >/dev/null
key=$(python3 -c "import sqlite3; print(sqlite3.connect('db.sqlite3').execute('select sentry_key from projects_project').fetchone()[0].replace('-', ''))")
"$work/venv/bin/gunicorn" bugsink.wsgi --bind 127.0.0.1:$port --workers 5 --max-requests 1000 --max-requests-jitter 100 >gunicorn.log 2>&1 &
sleep 3
(while true; do t=0; for p in $(pgrep -f "gunicorn bugsink.wsgi --bind 127.0.0.1:$port"); do
   r=$(awk '/VmRSS/ {print $2}' /proc/$p/status 2>/dev/null || echo 0); t=$((t + ${r:-0})); done; echo $t; sleep 0.5; done > rss.log) &
rss_loop=$!
echo "== Bugsink $("$work/venv/bin/pip" show bugsink | awk '/^Version/ {print $2}') (SQLite, local template, 5 workers): $events events, $conc concurrent clients"
"$replay" --url "http://127.0.0.1:$port/api/1/envelope/" --key "$key" --events "$events" \
  --concurrency "$conc" --count-cmd "python3 -c \"import sqlite3; print(sqlite3.connect('file:$work/db.sqlite3?mode=ro', uri=True).execute('select count(*) from events_event').fetchone()[0])\""
echo "peak RSS (sum of its processes): $(sort -n rss.log | tail -1 | awk '{printf "%.1f MB", $1/1024}')"
