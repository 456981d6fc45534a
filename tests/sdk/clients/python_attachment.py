"""Sends one error with two attachments through the real sentry-python SDK: a log file, and an
HTML file with a hostile name (the server must hand it back as a download, never as a page)."""

import sys

import sentry_sdk

sentry_sdk.init(dsn=sys.argv[1], release="shop@5.0.0")
with sentry_sdk.new_scope() as scope:
    scope.add_attachment(bytes=b"line 1\nline 2: payment gateway timed out\n", filename="worker.log",
                         content_type="text/plain")
    scope.add_attachment(bytes=b"<script>alert(document.cookie)</script>", filename='../"evil".html',
                         content_type="text/html")
    try:
        raise TimeoutError("payment gateway timed out")
    except TimeoutError:
        sentry_sdk.capture_exception()
sentry_sdk.flush(10)
