"""Sends Sentry transactions with the real sentry-python SDK: 20 `GET /checkout` requests of the
`web` service, each with a database child span, 4 of them failing (internal_error)."""

import sys
import time

import sentry_sdk

sentry_sdk.init(dsn=sys.argv[1], traces_sample_rate=1.0, release="web@1.0.0")
for i in range(20):
    with sentry_sdk.start_transaction(op="http.server", name="GET /checkout") as t:
        t.set_tag("service", "web")
        with t.start_child(op="db.sql", description=f"SELECT * FROM carts WHERE id = {i}") as span:
            span.set_data("db.system", "postgresql")
            time.sleep(0.002)
        time.sleep(0.003)
        if i % 5 == 0:
            t.set_status("internal_error")
sentry_sdk.flush()
