"""Cron check-ins from the real sentry-python SDK: the `monitor` decorator (with monitor_config,
so Lookout creates the monitor), a failing job, and `capture_checkin` by hand.

Usage: python_crons.py DSN
"""

import sys
import time

import sentry_sdk
from sentry_sdk.crons import capture_checkin, monitor
from sentry_sdk.crons.consts import MonitorStatus

CONFIG = {
    "schedule": {"type": "crontab", "value": "0 * * * *"},
    "timezone": "Europe/Paris",
    "checkin_margin": 5,
    "max_runtime": 30,
}

sentry_sdk.init(dsn=sys.argv[1], environment="production")


@monitor(monitor_slug="hourly-report", monitor_config=CONFIG)
def hourly_report():
    time.sleep(0.2)


@monitor(monitor_slug="flaky-import", monitor_config={"schedule": {"type": "interval", "value": 10, "unit": "minute"}})
def flaky_import():
    raise RuntimeError("upstream unavailable")


hourly_report()
try:
    flaky_import()
except RuntimeError:
    pass

# By hand, the way long jobs report: in_progress first, then the outcome with the same id.
check_in_id = capture_checkin(monitor_slug="backup", status=MonitorStatus.IN_PROGRESS,
                              monitor_config={"schedule": {"type": "crontab", "value": "30 2 * * *"}})
capture_checkin(monitor_slug="backup", check_in_id=check_in_id, status=MonitorStatus.OK, duration=1.25)

sentry_sdk.flush(timeout=10)
