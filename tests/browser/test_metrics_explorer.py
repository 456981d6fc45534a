"""The Metrics explorer and a PromQL dashboard widget in a real browser, at 1280 and 390 px:
metrics remote-written (Prometheus remote write 1.0, built here byte by byte) are offered by
name, a metric is charted and filtered by its labels, typed PromQL is charted and listed, a
broken query and an unsupported function are shown readably with the query kept, and a
dashboard widget in PromQL draws its chart and billboard."""

import json
import os
import struct
import sys
import time
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from test_ui import log_in, shot  # noqa: E402

from harness import ADMIN_TOKEN  # noqa: E402
from protowire import message, varint  # noqa: E402


def write_request(series):
    """A prometheus.WriteRequest: series as (labels dict, [(t ms, value)])."""
    body = b""
    for labels, samples in series:
        ts = b"".join(message(1, message(1, k.encode()) + message(2, v.encode())) for k, v in sorted(labels.items()))
        ts += b"".join(message(2, varint(1 << 3 | 1) + struct.pack("<d", v) + varint(2 << 3) + varint(t))
                       for t, v in samples)
        body += message(1, ts)
    return body


def snappy_literal(data):
    """Snappy's block format with literals only: valid input for any decoder."""
    out = bytearray(varint(len(data)))
    for i in range(0, len(data), 65536):
        chunk = data[i:i + 65536]
        n = len(chunk) - 1
        if n < 60:
            out.append(n << 2)
        elif n < 256:
            out += bytes([60 << 2, n])
        else:
            out += bytes([61 << 2]) + n.to_bytes(2, "little")
        out += chunk
    return bytes(out)


def remote_write(server, series):
    key = server.dsn.split("://")[1].split("@")[0]
    req = urllib.request.Request(
        server.url + "/prometheus/api/v1/write", data=snappy_literal(write_request(series)), method="POST",
        headers={"Content-Type": "application/x-protobuf", "Content-Encoding": "snappy",
                 "X-Prometheus-Remote-Write-Version": "0.1.0", "Authorization": "Bearer " + key})
    with urllib.request.urlopen(req, timeout=10) as r:
        assert r.status == 204, r.status


def seed(server):
    """30 minutes every 15 s: requests by job and code (counters rising 1, 2 and 4 a second)
    and a memory gauge."""
    now = int(time.time() * 1000)
    times = [now - 30 * 60_000 + i * 15_000 for i in range(121)]
    series = []
    for job, code, per_s in [("shop", "200", 4), ("shop", "500", 1), ("payments", "200", 2)]:
        labels = {"__name__": "demo_requests_total", "job": job, "code": code}
        series.append((labels, [(t, per_s * (t - times[0]) / 1000) for t in times]))
    series.append(({"__name__": "demo_memory_bytes", "job": "shop"}, [(t, 512 * 1024 * 1024) for t in times]))
    remote_write(server, series)


def rows(page):
    return [r.split("\t") for r in page.locator("#rows tbody tr").all_inner_texts()]


def fits(page, width):
    return page.evaluate("document.documentElement.scrollWidth") <= width


def test_metrics_explorer_and_promql_widget(server, watched):
    seed(server)
    page = watched.page
    page.set_viewport_size({"width": 1280, "height": 900})
    log_in(page, server.url)
    page.click("nav.side a:text-is('Metrics')")
    assert page.locator("h1").inner_text() == "Metrics"
    names = page.eval_on_selector_all("#metric-names option", "os => os.map(o => o.value)")
    assert "demo_requests_total" in names and "demo_memory_bytes" in names, names

    # Pick a metric: its selector is charted, one line per series, and listed.
    page.fill("#metric", "demo_requests_total")
    with page.expect_navigation():
        page.click("#pick")
    assert page.input_value("#promql") == "demo_requests_total"
    assert page.locator("#chart svg").count() == 1
    listed = rows(page)
    assert len(listed) == 3, listed
    assert any('code="500"' in r[0] and 'job="shop"' in r[0] for r in listed), listed
    # Each label is a filter offering its values.
    codes = page.eval_on_selector_all("#filters select[name='l.code'] option", "os => os.map(o => o.value)")
    assert codes == ["", "200", "500"], codes
    shot(page, "metrics-explorer-metric")

    page.select_option("#filters select[name='l.code']", "500")
    with page.expect_navigation():
        page.click("#pick")
    assert page.input_value("#promql") == 'demo_requests_total{code="500"}'
    listed = rows(page)
    assert len(listed) == 1 and 'job="shop"' in listed[0][0], listed

    # Typed PromQL: charted and listed (the shop's counters rise 4 + 1 a second).
    page.fill("#promql", "sum by (job) (rate(demo_requests_total[5m]))")
    with page.expect_navigation():
        page.click("#run")
    listed = dict((r[0], r[1]) for r in rows(page))
    assert listed == {'{job="payments"}': "2", '{job="shop"}': "5"}, listed
    assert page.locator("#chart svg").count() == 1
    shot(page, "metrics-explorer-promql")

    # Errors are readable, the query kept as typed, nothing charted from a broken query.
    page.fill("#promql", "sum(rate(demo_requests_total[5m])")
    with page.expect_navigation():
        page.click("#run")
    error = page.inner_text("#query-error")
    assert error.startswith("PromQL: "), error
    assert page.input_value("#promql") == "sum(rate(demo_requests_total[5m])"
    assert page.get_attribute("#promql", "aria-invalid") == "true"
    assert page.locator("#chart").count() == 0
    page.fill("#promql", "histogram_count(demo_memory_bytes)")
    with page.expect_navigation():
        page.click("#run")
    assert 'function "histogram_count" is not supported' in page.inner_text("#query-error")
    shot(page, "metrics-explorer-error")

    # On a phone: the same page, nothing wider than the screen.
    page.set_viewport_size({"width": 390, "height": 844})
    page.fill("#promql", "demo_requests_total")
    with page.expect_navigation():
        page.click("#run")
    assert len(rows(page)) == 3
    assert fits(page, 390), "the explorer is wider than a phone"
    shot(page, "metrics-explorer-phone")

    # A dashboard widget in PromQL: the chart over the range, a billboard of the instant.
    spec = {"name": "Demo metrics", "pages": [{"name": "Overview", "widgets": [
        {"title": "Requests by job", "type": "line", "language": "promql",
         "query": "sum by (job) (rate(demo_requests_total[5m]))"},
        {"title": "Errors per second", "type": "billboard", "language": "promql",
         "query": 'sum(rate(demo_requests_total{code="500"}[5m]))', "thresholds": {"warning": 0.5, "critical": 2}}]}]}
    req = urllib.request.Request(server.url + "/api/v1/dashboards", data=json.dumps(spec).encode(), method="POST",
                                 headers={"Authorization": "Bearer " + ADMIN_TOKEN, "Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=10) as r:
        url = json.loads(r.read())["url"]
    for width in (1280, 390):
        page.set_viewport_size({"width": width, "height": 900})
        page.goto(server.url + url)
        chart = page.locator("section.widget:has(h2:text-is('Requests by job'))")
        assert chart.locator("svg").count() == 1, chart.inner_html()
        assert "shop" in chart.inner_html() and "payments" in chart.inner_html()
        board = page.locator("section.widget:has(h2:text-is('Errors per second')) .billboard")
        assert board.locator("strong").inner_text() == "1", board.inner_text()
        assert board.get_attribute("data-state") == "warning"
        assert fits(page, width), f"the dashboard is wider than {width} px"
        shot(page, f"metrics-dashboard-{width}")
    assert watched.problems == [], "\n".join(watched.problems)
