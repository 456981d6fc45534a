"""Sends a known mix of errors through the real sentry-python SDK.

Usage: python_errors.py DSN gzip|brotli. In `gzip` mode the brotli module is hidden, so the SDK
falls back to gzip, as it does on machines without brotli; in `brotli` mode it is importable
and the SDK picks `br` by itself.
"""

import logging
import sys

if sys.argv[2] == "gzip":
    sys.modules["brotli"] = None  # import fails: the SDK uses gzip

import sentry_sdk  # noqa: E402
from sentry_sdk.integrations.logging import LoggingIntegration  # noqa: E402

sentry_sdk.init(
    dsn=sys.argv[1],
    release="shop@2.1.0",
    environment="staging",
    traces_sample_rate=1.0,
    integrations=[LoggingIntegration(event_level=logging.ERROR)],
)
sentry_sdk.set_user({"id": "ada"})


def divide(a, b):
    return a / b


def lookup(sku):
    return {}[sku]


def checkout():
    try:
        int("not a number")
    except ValueError as e:
        raise RuntimeError("checkout failed") from e


for _ in range(3):
    try:
        divide(1, 0)
    except ZeroDivisionError:
        sentry_sdk.capture_exception()

for sku in ["A-1", "B-2"]:
    try:
        lookup(sku)
    except KeyError:
        sentry_sdk.capture_exception()

try:
    checkout()
except RuntimeError:
    sentry_sdk.capture_exception()

for uid in [17, 42, 99, 1234]:
    sentry_sdk.capture_message(f"user {uid} not found")

log = logging.getLogger("shop.db")
log.error("could not connect to %s after %d tries", "db1", 3)
log.error("could not connect to %s after %d tries", "db2", 5)

for msg in ["card declined", "card expired"]:
    with sentry_sdk.new_scope() as scope:
        scope.fingerprint = ["checkout-payment"]
        scope.add_attachment(bytes=b"cart contents", filename="cart.txt")
        sentry_sdk.capture_message(msg, level="warning")

with sentry_sdk.start_transaction(op="task", name="nightly-report"):
    with sentry_sdk.start_span(op="db", description="SELECT 1"):
        pass

sentry_sdk.flush(timeout=10)
