"""The Performance pages in a real browser, fed by the real OpenTelemetry Python SDK: the services
list, a service's golden metrics, a transaction, trace search, the waterfall with the trace's
logs, and the service map with a service-to-service call."""

import logging
import os
import sys
import time

from opentelemetry import trace as api
from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk._logs import LoggerProvider, LoggingHandler
from opentelemetry.sdk._logs.export import SimpleLogRecordProcessor
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.trace import SpanKind

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from browser_support import assert_readable_time  # noqa: E402
from test_ui import log_in, shot  # noqa: E402


def provider(server, service):
    p = TracerProvider(resource=Resource.create({"service.name": service, "service.instance.id": service + "-1"}))
    p.add_span_processor(SimpleSpanProcessor(OTLPSpanExporter(endpoint=server.otlp_url + "/v1/traces")))
    return p


def send_traffic(server):
    """12 checkouts of `shop`, each with a slow database call, a call to `payments` (another
    service) and an external call; one log line inside the first request."""
    shop, payments = provider(server, "shop"), provider(server, "payments")
    logs = LoggerProvider(resource=Resource.create({"service.name": "shop"}))
    logs.add_log_record_processor(SimpleLogRecordProcessor(OTLPLogExporter(endpoint=server.otlp_url + "/v1/logs")))
    log = logging.getLogger("shop-test")
    log.addHandler(LoggingHandler(logger_provider=logs))
    log.setLevel(logging.INFO)
    t, tp = shop.get_tracer("t"), payments.get_tracer("t")
    base = time.time_ns() - 30 * 1_000_000_000
    ids = []
    for i in range(12):
        start = base + i * 100_000_000
        root = t.start_span("POST /checkout", kind=SpanKind.SERVER, start_time=start, attributes={
            "http.request.method": "POST", "http.route": "/checkout", "http.response.status_code": 200})
        ctx = api.set_span_in_context(root)
        if i == 0:
            with api.use_span(root, end_on_exit=False):
                log.info("checkout started for cart 7")
        db = t.start_span("SELECT carts", kind=SpanKind.CLIENT, context=ctx, start_time=start + 1_000_000, attributes={
            "db.system.name": "postgresql", "db.query.text": f"SELECT * FROM carts WHERE id = {i}"})
        db.end(end_time=start + 181_000_000)
        call = t.start_span("POST", kind=SpanKind.CLIENT, context=ctx, start_time=start + 182_000_000, attributes={
            "http.request.method": "POST", "server.address": "payments.internal", "http.response.status_code": 200})
        served = tp.start_span("POST /charge", kind=SpanKind.SERVER, context=api.set_span_in_context(call),
                               start_time=start + 183_000_000, attributes={
                                   "http.request.method": "POST", "http.route": "/charge", "http.response.status_code": 200})
        served.end(end_time=start + 220_000_000)
        call.end(end_time=start + 221_000_000)
        root.end(end_time=start + 240_000_000)
        ids.append(format(root.get_span_context().trace_id, "032x"))
    for p in (shop, payments):
        p.shutdown()
    logs.shutdown()
    return ids


def wait_services(server, names):
    for _ in range(100):
        got = {s["name"]: s["count"] for s in server.api("/api/v1/apm/services")["items"]}
        if all(got.get(n) == 12 for n in names):
            return
        time.sleep(0.2)
    raise AssertionError(got)


def test_performance_pages_show_what_the_sdk_sent(server, watched):
    ids = send_traffic(server)
    wait_services(server, ["shop", "payments"])
    server.api("/api/v1/slos", "POST", {"name": "Shop availability", "service": "shop",
                                         "indicator": "availability", "target": 99.5})
    page = watched.page
    log_in(page, server.url)

    page.goto(server.url + "/performance")
    table = page.inner_text("#services")
    assert "shop" in table and "payments" in table
    shot(page, "performance")

    page.click("#services >> text=shop")
    assert page.inner_text("#count") == "12"
    assert page.inner_text("#error-rate") == "0 %"
    assert "SELECT carts" in page.inner_text("#db-total")
    assert "payments.internal" in page.inner_text("#externals")
    slow = page.inner_text("#slow-queries")
    assert "SELECT * FROM carts WHERE id = ?" in slow and "WHERE id = 3" not in slow
    assert_readable_time(page.locator("#slow-queries tbody time").first)
    assert "shop-1" in page.inner_text("#instances")
    assert page.locator("figure.chart svg").count() >= 5
    # The SLO on the service: 12 of 12 requests succeeded, so the budget is untouched.
    slos = page.inner_text("#slos")
    assert "Shop availability" in slos and slos.count("100 %") == 2, slos
    shot(page, "service")

    page.click("#consuming >> text=POST /checkout")
    assert page.inner_text("#count") == "12"
    assert page.locator("#samples tbody tr").count() == 12
    page.click("#samples a >> nth=0")
    assert page.inner_text("#span-count") == "4"
    started = page.locator("main p.muted time").first
    assert_readable_time(started)
    names = page.locator("#waterfall .label").all_inner_texts()
    assert any("POST /charge" in n and "payments" in n for n in names), names
    shot(page, "trace")

    page.goto(server.url + f"/performance/traces/{ids[0]}")
    assert "checkout started for cart 7" in page.inner_text("#logs")
    # Each log line: when (relative, absolute on hover) and where in the trace (+… ms).
    first_log = page.locator("#logs tbody tr").first
    assert_readable_time(first_log.locator("time"))
    assert "+" in first_log.locator("td").first.inner_text()

    page.goto(server.url + "/performance/traces?service=shop&min_ms=100")
    assert page.locator("#traces tbody tr").count() == 12
    page.goto(server.url + "/performance/traces?service=shop&min_ms=500")
    assert page.locator("#no-traces").count() == 1

    page.goto(server.url + "/performance/map")
    edges = page.inner_text("#edges")
    assert "shop\tpayments\tservice\t12" in edges, edges
    assert "shop\tpostgresql\tdb\t12" in edges
    assert page.locator('#service-map [data-node="payments.internal"]').count() == 1
    shot(page, "service-map")

    # The query console: the same figures as the service page, with the chart for each shape.
    page.goto(server.url + "/query")
    assert page.locator("#examples li").count() >= 3
    page.fill("#nrql", "SELECT count(*) FROM Transaction FACET appName SINCE 1 hour ago")
    with page.expect_navigation():
        page.click("#console button")
    rows = page.locator("#rows tbody tr").all_inner_texts()
    assert any(r.split("\t") == ["shop", "12"] for r in rows), rows
    assert page.locator("#chart svg rect.bar").count() >= 2, "one bar per service"
    page.fill("#nrql", "SELECT count(*) FROM Transaction WHERE appName = 'shop' SINCE 1 hour ago TIMESERIES 5 minutes")
    with page.expect_navigation():
        page.click("#console button")
    assert page.locator("#chart svg path.line, #chart svg polyline").count() >= 1
    counts = [int(r.split("\t")[-1] or 0) for r in page.locator("#rows tbody tr").all_inner_texts()]
    assert len(counts) in (12, 13) and sum(counts) == 12, counts  # an hour in 5-minute buckets
    shot(page, "query-timeseries")
    page.fill("#nrql", "SELECT count(*) FROM Transaction WHERE appName = 'shop'")
    with page.expect_navigation():
        page.click("#console button")
    assert page.inner_text(".tile .number") == "12"
    page.fill("#nrql", "SELECT count(*) FROM")
    with page.expect_navigation():
        page.click("#console button")
    err = page.inner_text("#query-error")
    assert "line 1, column" in err and "^" in err, err
    assert watched.problems == [], "\n".join(watched.problems)
