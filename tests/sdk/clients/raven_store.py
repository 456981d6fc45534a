"""Sends errors through raven, the legacy Sentry client that posts to /api/{id}/store/
(base64 of zlib-compressed JSON). The synchronous transport sends before each call returns."""

import sys

from raven import Client
from raven.transport.http import HTTPTransport

client = Client(sys.argv[1], transport=HTTPTransport, release="legacy@0.9", environment="production", raise_send_errors=True)
for _ in range(2):
    try:
        [][3]
    except IndexError:
        client.captureException()
    # raven skips a traceback it has seen (its key can repeat in a loop); a fresh context
    # makes the second failure count, as two real failures would.
    client.context.clear()
client.captureMessage("legacy job 77 finished with errors")
client.captureMessage("legacy job 78 finished with errors")
