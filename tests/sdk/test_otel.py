"""APM ingest with the real OpenTelemetry Python SDK and its OTLP/HTTP exporters, protobuf and JSON.

Spans with known durations per route must come back from the transactions API with the exact
counts, percentiles within 1 % and the exact error rates; database child spans must not count as
requests; a cumulative counter exported twice must be counted once.
"""

import json
import time
import urllib.request

import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.trace import SpanKind, Status, StatusCode

EXPORTERS = {
    "protobuf": (
        "opentelemetry.exporter.otlp.proto.http.trace_exporter",
        "opentelemetry.exporter.otlp.proto.http.metric_exporter",
    ),
    "json": (
        "opentelemetry.exporter.otlp.json.http.trace_exporter",
        "opentelemetry.exporter.otlp.json.http.metric_exporter",
    ),
}


def exporters(encoding):
    import importlib

    t, m = EXPORTERS[encoding]
    return importlib.import_module(t).OTLPSpanExporter, importlib.import_module(m).OTLPMetricExporter


def lower_quantile(values, q):
    """The value at rank floor(q·(n−1)), the definition Lookout's sketch answers for."""
    s = sorted(values)
    return s[int(q * (len(s) - 1))]


def wait_for(fetch, done, timeout=20):
    deadline = time.time() + timeout
    while True:
        v = fetch()
        if done(v):
            return v
        if time.time() > deadline:
            raise AssertionError("never reached the expected state: " + json.dumps(v, indent=1)[:4000])
        time.sleep(0.2)


@pytest.mark.parametrize("encoding", ["protobuf", "json"])
def test_red_figures_from_the_real_sdk_match_the_spans_sent(server, encoding):
    span_exporter, _ = exporters(encoding)
    provider = TracerProvider(resource=Resource.create({"service.name": f"checkout-{encoding}",
                                                        "service.instance.id": "pod-1"}))
    provider.add_span_processor(BatchSpanProcessor(span_exporter(endpoint=server.otlp_url + "/v1/traces")))
    tracer = provider.get_tracer("test")
    base = time.time_ns() - 120 * 1_000_000_000
    routes = {
        "/cart": [i * 1.7 + 3 for i in range(1, 201)],          # 200 requests, 4.7 … 343 ms
        "/pay/:id": [50 + (i % 37) * 11.0 for i in range(90)],  # 90 requests, 10 of them 500s
    }
    failures = {"/pay/:id": set(range(0, 90, 9))}
    trace_ids = []
    for route, durations in routes.items():
        for i, ms in enumerate(durations):
            start = base + i * 1_000_000
            end = start + int(ms * 1_000_000)
            root = tracer.start_span(f"POST {route}", kind=SpanKind.SERVER, start_time=start, attributes={
                "http.request.method": "POST", "http.route": route, "url.path": route.replace(":id", str(i)),
                "http.response.status_code": 500 if i in failures.get(route, ()) else 200})
            if i in failures.get(route, ()):
                root.set_status(Status(StatusCode.ERROR))
            from opentelemetry import trace as api
            ctx = api.set_span_in_context(root)
            db = tracer.start_span("SELECT orders", kind=SpanKind.CLIENT, context=ctx, start_time=start + 100_000,
                                   attributes={"db.system": "postgresql",
                                               "db.statement": f"SELECT * FROM orders WHERE id = {i}"})
            db.end(end_time=start + 100_000 + int(ms * 400_000))
            root.end(end_time=end)
            trace_ids.append(format(root.get_span_context().trace_id, "032x"))
    provider.force_flush()
    provider.shutdown()

    service = f"checkout-{encoding}"
    got = wait_for(lambda: server.api(f"/api/v1/apm/services/{service}/transactions")["items"]
                   if any(s["name"] == service for s in server.api("/api/v1/apm/services")["items"]) else [],
                   lambda items: sum(t["count"] for t in items) == 290)
    by_name = {t["name"]: t for t in got}
    # Transactions are the server spans only: the 290 database children are not requests.
    assert set(by_name) == {"POST /cart", "POST /pay/:id"}
    for route, durations in routes.items():
        t = by_name[f"POST {route}"]
        assert t["count"] == len(durations)
        for q, key in [(0.5, "p50"), (0.95, "p95"), (0.99, "p99")]:
            want = lower_quantile(durations, q)
            assert abs(t[key] - want) <= 0.01 * want, (route, key, t[key], want)
        assert t["error_rate"] == pytest.approx(len(failures.get(route, ())) / len(durations))

    overview = server.api(f"/api/v1/apm/services/{service}")
    assert overview["summary"]["count"] == 290
    assert overview["status_classes"] == {"2xx": 280, "5xx": 10}
    assert [d["name"] for d in overview["databases"]] == ["SELECT orders"]
    assert overview["databases"][0]["count"] == 290
    assert overview["instances"][0]["instance"] == "pod-1"
    # The slow query log holds the normalised statement, never the literal id.
    slow = overview["slow_queries"]
    assert slow and all(s["statement"] == "SELECT * FROM orders WHERE id = ?" for s in slow)
    assert all(s["duration_ms"] >= overview["slow_query_ms"] for s in slow)

    trace = server.api(f"/api/v1/traces/{trace_ids[0]}")
    assert [(s["depth"], s["category"]) for s in trace["spans"]] == [(0, "request"), (1, "db")]
    assert trace["spans"][1]["parent_span_id"] == trace["spans"][0]["span_id"]


@pytest.mark.parametrize("encoding", ["protobuf", "json"])
def test_a_cumulative_counter_exported_twice_is_counted_once(server, encoding):
    _, metric_exporter = exporters(encoding)
    reader = InMemoryMetricReader()
    provider = MeterProvider(resource=Resource.create({"service.name": "billing"}), metric_readers=[reader])
    counter = provider.get_meter("test").create_counter("invoices.created", unit="1")
    histogram = provider.get_meter("test").create_histogram("invoice.amount", unit="EUR")
    exporter = metric_exporter(endpoint=server.otlp_url + "/v1/metrics")

    counter.add(5, {"region": "eu"})
    for v in (3, 30, 300):
        histogram.record(v)
    first = reader.get_metrics_data()
    assert exporter.export(first).name == "SUCCESS"
    # The same export again, as a retry after a lost answer would send it.
    assert exporter.export(first).name == "SUCCESS"
    counter.add(3, {"region": "eu"})
    histogram.record(3000)
    assert exporter.export(reader.get_metrics_data()).name == "SUCCESS"

    def series(name):
        items = server.api(f"/api/v1/apm/metrics?name={name}")["items"]
        assert len(items) == 1, items
        return server.api(f"/api/v1/apm/metrics/{items[0]['id']}/points")["items"]

    counts = series("invoices.created")
    assert sum(p["sum"] for p in counts) == 8
    hist = series("invoice.amount")
    assert sum(p["count"] for p in hist) == 4
    assert sum(p["sum"] for p in hist) == 3333
    provider.shutdown()


@pytest.mark.parametrize("encoding", ["protobuf", "json"])
def test_otlp_metrics_are_queryable_with_promql_under_prometheus_names(server, encoding):
    """The names and labels Prometheus's OTLP receiver gives (unit words, `_total`, `job` and
    `instance` from the resource), with the exact values exported."""
    import urllib.parse

    _, metric_exporter = exporters(encoding)
    reader = InMemoryMetricReader()
    resource = Resource.create({"service.name": f"shop-{encoding}", "service.instance.id": "pod-7"})
    provider = MeterProvider(resource=resource, metric_readers=[reader])
    meter = provider.get_meter("test")
    meter.create_counter("orders.placed", unit="{order}").add(5, {"region": "eu"})
    duration = meter.create_histogram("checkout.duration", unit="s")
    for v in (0.25, 2, 7):
        duration.record(v)
    exporter = metric_exporter(endpoint=server.otlp_url + "/v1/metrics")
    assert exporter.export(reader.get_metrics_data()).name == "SUCCESS"

    def promql(q):
        answer = server.api("/prometheus/api/v1/query?query=" + urllib.parse.quote(q))
        return [(r["metric"], float(r["value"][1])) for r in answer["data"]["result"]]

    target = {"job": f"shop-{encoding}", "instance": "pod-7"}
    got = wait_for(lambda: promql("orders_placed_total"), lambda v: len(v) == 1)
    assert got == [({"__name__": "orders_placed_total", "region": "eu", **target}, 5.0)]
    assert promql("checkout_duration_seconds_count") == [
        ({"__name__": "checkout_duration_seconds_count", **target}, 3.0)]
    assert promql("checkout_duration_seconds_sum")[0][1] == 9.25
    buckets = {m["le"]: v for m, v in promql("checkout_duration_seconds_bucket")}
    # The SDK's default bounds: 0, 5, 10, … ; counts are cumulative, as Prometheus has them.
    assert (buckets["0"], buckets["5"], buckets["10"], buckets["+Inf"]) == (0, 2, 3, 3)
    provider.shutdown()


def test_exponential_histograms_from_the_sdk_are_queryable_as_buckets(server):
    """An exponential histogram (Prometheus's native histogram) comes back as the classic
    histogram it equals at its bucket boundaries: exact count and sum, +Inf bucket, and a median
    from `histogram_quantile` inside the bucket that holds the real one."""
    import urllib.parse

    from opentelemetry.sdk.metrics.view import ExponentialBucketHistogramAggregation, View

    _, metric_exporter = exporters("protobuf")
    reader = InMemoryMetricReader()
    view = View(instrument_name="queue.wait", aggregation=ExponentialBucketHistogramAggregation(max_size=20))
    provider = MeterProvider(resource=Resource.create({"service.name": "queue"}),
                             metric_readers=[reader], views=[view])
    wait = provider.get_meter("test").create_histogram("queue.wait", unit="s")
    values = [0.5, 1, 3, 3, 100]
    for v in values:
        wait.record(v)
    data = reader.get_metrics_data()
    point = data.resource_metrics[0].scope_metrics[0].metrics[0].data.data_points[0]
    exporter = metric_exporter(endpoint=server.otlp_url + "/v1/metrics")
    assert exporter.export(data).name == "SUCCESS"

    def promql(q):
        answer = server.api("/prometheus/api/v1/query?query=" + urllib.parse.quote(q))
        return [(r["metric"], float(r["value"][1])) for r in answer["data"]["result"]]

    got = wait_for(lambda: promql("queue_wait_seconds_count"), lambda v: len(v) == 1)
    assert got[0][1] == 5
    assert promql("queue_wait_seconds_sum")[0][1] == sum(values)
    buckets = sorted((float(m["le"]), v) for m, v in promql("queue_wait_seconds_bucket"))
    assert buckets[-1] == (float("inf"), 5)
    # Each value is counted at the first boundary at or above it, and not below its bucket.
    base = 2 ** (2 ** -point.scale)
    for v in values:
        at_or_above = min(le for le, _ in buckets if le >= v)
        below = sum(1 for x in values if x <= at_or_above)
        assert dict(buckets)[at_or_above] == below, (v, buckets)
        assert at_or_above < v * base * (1 + 1e-12), (v, at_or_above, point.scale)
    median = promql("histogram_quantile(0.5, queue_wait_seconds_bucket)")[0][1]
    assert 3 / base <= median <= 3 * base, (median, point.scale)
    provider.shutdown()


def test_exports_without_a_token_need_the_otlp_listener(server):
    body = json.dumps({"resourceSpans": []}).encode()
    main = urllib.request.Request(server.url + "/v1/traces", data=body, method="POST",
                                  headers={"Content-Type": "application/json"})
    with pytest.raises(urllib.error.HTTPError) as e:
        urllib.request.urlopen(main, timeout=10)
    assert e.value.code == 401
    key = server.dsn.split("//")[1].split("@")[0]
    main.add_header("Authorization", "Bearer " + key)
    with urllib.request.urlopen(main, timeout=10) as r:
        assert r.status == 200 and json.loads(r.read()) == {}
    bad = urllib.request.Request(server.otlp_url + "/v1/traces", data=b"{not json", method="POST",
                                 headers={"Content-Type": "application/json"})
    with pytest.raises(urllib.error.HTTPError) as e:
        urllib.request.urlopen(bad, timeout=10)
    assert e.value.code == 400
    assert "malformed JSON" in json.loads(e.value.read())["message"]


def test_sentry_transactions_feed_the_same_apm_figures(server):
    import subprocess
    import sys
    import os

    client = os.path.join(os.path.dirname(os.path.abspath(__file__)), "clients", "python_transactions.py")
    out = subprocess.run([sys.executable, client, server.dsn], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    items = wait_for(lambda: server.api("/api/v1/apm/services/web/transactions")["items"]
                     if any(s["name"] == "web" for s in server.api("/api/v1/apm/services")["items"]) else [],
                     lambda items: sum(t["count"] for t in items) == 20)
    assert [(t["name"], t["count"], t["error_rate"]) for t in items] == [("GET /checkout", 20, 0.2)]
    # Every request slept at least 5 ms, and its database call at least 2 ms.
    assert items[0]["p50"] >= 5
    overview = server.api("/api/v1/apm/services/web")
    assert [(d["name"], d["count"]) for d in overview["databases"]] == [("SELECT carts", 20)]
    assert overview["databases"][0]["p50"] >= 2
