"""Cron monitoring with the real sentry-python SDK: check-ins create the monitors from their
monitor_config and report runs that end up as the monitor's results."""

import os
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))


def monitors_by_slug(server, want, timeout=30):
    """Polls until every slug in `want` has a judged run, returns {slug: monitor}."""
    deadline = time.time() + timeout
    while True:
        items = server.api("/api/v1/monitors?limit=1000")["items"]
        by = {m.get("slug"): m for m in items}
        if all(s in by and by[s].get("last_check_at") for s in want):
            return by
        if time.time() > deadline:
            raise AssertionError(f"monitors never got their check-ins: {items}")
        time.sleep(0.2)


def test_sentry_python_crons(server):
    out = subprocess.run([sys.executable, os.path.join(HERE, "clients", "python_crons.py"), server.dsn],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    by = monitors_by_slug(server, ["hourly-report", "flaky-import", "backup"])

    hourly = by["hourly-report"]
    assert hourly["type"] == "cron"
    assert hourly["schedule"] == "0 * * * *" and hourly["timezone"] == "Europe/Paris"
    assert hourly["grace_seconds"] == 300 and hourly["max_runtime_seconds"] == 1800
    assert hourly["status"] == "up" and hourly["last_ok"] is True
    assert hourly["push_url"].endswith("/cron/hourly-report/" + server.dsn.split("//")[1].split("@")[0] + "/")

    flaky = by["flaky-import"]
    assert flaky["interval_seconds"] == 600 and "schedule" not in flaky
    assert flaky["status"] == "down", flaky
    assert flaky["last_failure"] == "the job reported an error"

    backup = by["backup"]
    assert backup["status"] == "up" and backup["last_latency_ms"] == 1250.0

    # The failure reached alerting as a domain event.
    events = server.api("/api/v1/events?limit=1000")["items"]
    assert any(e["kind"] == "cron.failed" and e["payload"]["monitor_id"] == flaky["id"] for e in events)
