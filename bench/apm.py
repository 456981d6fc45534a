"""APM ingest and query benchmark; see bench/apm.sh."""

import http.client
import json
import os
import random
import re
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
import urllib.request

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans, Span

LOOKOUT, SECONDS = sys.argv[1], int(sys.argv[2])
TOKEN = "lk_bench_admin_token_0123456789abcdef"
TARGET_SPANS_S, TARGET_RSS_MB, TARGET_QUERY_MS = 50_000, 300, 100
SENDERS, BATCH = int(os.environ.get("APM_SENDERS", "8")), 512
SERVICES = ["frontend", "checkout", "catalog", "payments", "accounts"]
ROUTES = [f"/api/v{1 + i % 3}/resource{i}/:id" for i in range(200)]


def kv(k, v):
    a = AnyValue()
    if isinstance(v, bool):
        a.bool_value = v
    elif isinstance(v, int):
        a.int_value = v
    else:
        a.string_value = v
    return KeyValue(key=k, value=a)


def batch(seed, now_ns):
    """One export of BATCH spans from one service: requests, each with a database call and every
    third with an external call, durations log-normal around 40 ms."""
    rnd = random.Random(seed)
    service = SERVICES[seed % len(SERVICES)]
    resource = [kv("service.name", service), kv("service.instance.id", f"{service}-{seed % 3}"),
                kv("host.name", f"node-{seed % 7}"), kv("telemetry.sdk.name", "opentelemetry"),
                kv("telemetry.sdk.language", "python"), kv("telemetry.sdk.version", "1.45.1"),
                kv("process.pid", 4000 + seed % 100), kv("deployment.environment.name", "production")]
    spans = []
    while len(spans) < BATCH:
        trace_id = rnd.randbytes(16)
        root_id = rnd.randbytes(8)
        route = ROUTES[rnd.randrange(len(ROUTES))]
        start = now_ns - rnd.randrange(50_000_000_000)
        ms = rnd.lognormvariate(3.6, 0.6)
        status = 500 if rnd.random() < 0.02 else 200
        spans.append(Span(trace_id=trace_id, span_id=root_id, name=f"GET {route}", kind=Span.SPAN_KIND_SERVER,
                          start_time_unix_nano=start, end_time_unix_nano=start + int(ms * 1e6),
                          attributes=[kv("http.request.method", "GET"), kv("http.route", route),
                                      kv("url.path", route.replace(":id", str(rnd.randrange(10_000)))),
                                      kv("url.scheme", "https"), kv("http.response.status_code", status),
                                      kv("server.address", "shop.example.com"), kv("network.protocol.version", "1.1"),
                                      kv("user_agent.original", "Mozilla/5.0 (X11; Linux x86_64)"),
                                      kv("client.address", f"10.0.{rnd.randrange(255)}.{rnd.randrange(255)}")]))
        spans.append(Span(trace_id=trace_id, span_id=rnd.randbytes(8), parent_span_id=root_id, name="SELECT items",
                          kind=Span.SPAN_KIND_CLIENT, start_time_unix_nano=start + 1_000_000,
                          end_time_unix_nano=start + 1_000_000 + int(ms * 0.4e6),
                          attributes=[kv("db.system.name", "postgresql"), kv("db.namespace", "shop"),
                                      kv("db.query.text", f"SELECT id, name, price FROM items WHERE id = {rnd.randrange(10**6)}"),
                                      kv("server.address", "db.internal"), kv("server.port", 5432)]))
        if len(spans) % 3 == 0:
            spans.append(Span(trace_id=trace_id, span_id=rnd.randbytes(8), parent_span_id=root_id, name="POST",
                              kind=Span.SPAN_KIND_CLIENT, start_time_unix_nano=start + 2_000_000,
                              end_time_unix_nano=start + 2_000_000 + int(ms * 0.3e6),
                              attributes=[kv("http.request.method", "POST"), kv("server.address", "api.stripe.com"),
                                          kv("url.full", "https://api.stripe.com/v1/charges"),
                                          kv("http.response.status_code", 200)]))
    req = ExportTraceServiceRequest(resource_spans=[ResourceSpans(
        resource={"attributes": resource}, scope_spans=[ScopeSpans(spans=spans[:BATCH])])])
    return req.SerializeToString()


def start_server(data_dir):
    env = {"PATH": os.environ["PATH"], "RUST_LOG": "warn", "LOOKOUT_BOOTSTRAP_TOKEN": TOKEN}
    p = subprocess.Popen([LOOKOUT, "serve", "--data-dir", data_dir, "--listen", "127.0.0.1:0",
                          "--otlp-listen", "127.0.0.1:0"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                         text=True, env=env)
    urls = {}
    for line in p.stdout:
        if "UI and API:" in line:
            urls["api"] = line.split()[-1]
        if "OTLP/HTTP:" in line:
            urls["otlp"] = line.split()[-1]
        if "DSN:" in line:
            break
    threading.Thread(target=lambda: [None for _ in p.stdout], daemon=True).start()
    return p, urls


def rolled(api):
    with urllib.request.urlopen(api + "/metrics", timeout=10) as r:
        for line in r.read().decode().splitlines():
            if line.startswith("lookout_apm_rolled_spans_total"):
                return int(float(line.split()[-1]))
    return 0


def rss_mb(pid, field="VmHWM"):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(field):
                return int(line.split()[1]) / 1024
    return 0.0


def get(api, path):
    req = urllib.request.Request(api + path, headers={"Authorization": "Bearer " + TOKEN})
    with urllib.request.urlopen(req, timeout=60) as r:
        return json.loads(r.read())


WRK_SCRIPT = """
local bodies = {}
local n = 0
function init(args)
  for i, path in ipairs(args) do
    local f = io.open(path, "rb"); bodies[i] = f:read("*a"); f:close()
  end
end
function request()
  n = n % #bodies + 1
  return wrk.format("POST", "/v1/traces", {["Content-Type"] = "application/x-protobuf"}, bodies[n])
end
"""


def ingest(data_dir):
    """wrk (C, one thread) posts the batches over SENDERS connections, so the sender takes little
    of this 2-core machine's CPU; spans acknowledged = 2xx answers x BATCH."""
    p, urls = start_server(data_dir)
    now = time.time_ns()
    files = []
    for i in range(40):
        path = os.path.join(data_dir, f"batch{i}.pb")
        with open(path, "wb") as f:
            f.write(batch(i, now))
        files.append(path)
    script = os.path.join(data_dir, "post.lua")
    with open(script, "w") as f:
        f.write(WRK_SCRIPT)
    t0 = time.time()
    out = subprocess.run(["wrk", "-t1", f"-c{SENDERS}", f"-d{SECONDS}s", "-s", script, urls["otlp"] + "/v1/traces",
                          "--", *files], capture_output=True, text=True, check=True).stdout
    elapsed = time.time() - t0
    total = int(re.search(r"(\d+) requests in", out).group(1))
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    refused = int(non2xx.group(1)) if non2xx else 0
    acked = (total - refused) * BATCH
    rolled_at_end = rolled(urls["api"])
    # Let the rollup consumer catch up, and time how long it lags.
    t1 = time.time()
    while rolled(urls["api"]) < acked and time.time() - t1 < 300:
        time.sleep(0.5)
    catch_up = time.time() - t1
    peak = rss_mb(p.pid)
    p.terminate()
    p.wait(timeout=30)
    return acked / elapsed, rolled_at_end / elapsed, acked / (elapsed + catch_up), peak, refused, catch_up


def encode_sketch(bins, zero=0):
    """Lookout's sketch encoding (crates/lookout-apm/src/sketch.rs): version, zero count, then
    (index delta zig-zag, count) varint pairs."""
    def varint(v):
        out = bytearray()
        while v >= 0x80:
            out.append((v & 0x7F) | 0x80)
            v >>= 7
        out.append(v)
        return bytes(out)
    out = bytearray([1]) + varint(zero) + varint(len(bins))
    prev = 0
    for i in sorted(bins):
        d = i - prev
        out += varint((d << 1) ^ (d >> 63) if d >= 0 else ((-d) << 1) - 1) + varint(bins[i])
        prev = i
    return bytes(out)


def sketch_of(rnd, n):
    import math
    g = math.log(1.01 / 0.99)
    bins, total = {}, 0.0
    for _ in range(n):
        v = rnd.lognormvariate(3.6, 0.6)
        i = math.ceil(math.log(v) / g)
        bins[i] = bins.get(i, 0) + 1
        total += v
    return bins, total


def seed(db, project, service, per_minute=60):
    """7 days of rollups for 200 routes of one service: minute rows (`per_minute` requests a
    minute per route), and the hour and day rows the rollup consumer would have written."""
    rnd = random.Random(7)
    minute_ms = 60_000
    now = int(time.time() * 1000)
    start = (now - 7 * 86_400_000) // 86_400_000 * 86_400_000
    protos = []
    for _ in range(32):
        bins, total = sketch_of(rnd, per_minute)
        protos.append((bins, total))
    con = sqlite3.connect(db)
    con.execute("PRAGMA synchronous=OFF")
    rows = []

    def merged(k, n):
        bins, total = {}, 0.0
        for j in range(n):
            b, t = protos[(k + j) % len(protos)]
            total += t
            for i, c in b.items():
                bins[i] = bins.get(i, 0) + c
        return encode_sketch(bins), total

    hour_sketches = [merged(k, 60) for k in range(8)]
    day_sketches = [merged(k, 1440) for k in range(4)]
    minute_sketches = [(encode_sketch(b), t) for b, t in protos]
    n = 0
    for r, route in enumerate(ROUTES):
        op = f"GET {route}"
        for tier, width, table, count in [(0, minute_ms, minute_sketches, per_minute),
                                          (1, 3_600_000, hour_sketches, per_minute * 60),
                                          (2, 86_400_000, day_sketches, per_minute * 1440)]:
            t = start
            k = r
            while t < now:
                sk, total = table[k % len(table)]
                rows.append((project, tier, service, t, "request", op, "2xx", 0, count, 0, total, 5.0, 400.0, sk))
                k += 1
                t += width
            if len(rows) > 200_000:
                con.executemany("INSERT INTO apm_rollups VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)", rows)
                n += len(rows)
                rows.clear()
    con.executemany("INSERT INTO apm_rollups VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)", rows)
    n += len(rows)
    con.execute("INSERT INTO apm_services (project_id, name, apdex_t_ms, slow_query_ms, first_seen, last_seen) VALUES (?,?,500,100,?,?)",
                (project, service, start, now))
    con.commit()
    con.close()
    return n


def big_trace(otlp, n=10_000):
    trace_id = os.urandom(16)
    now = time.time_ns() - 10_000_000_000
    root = os.urandom(8)
    spans = [Span(trace_id=trace_id, span_id=root, name="GET /report", kind=Span.SPAN_KIND_SERVER,
                  start_time_unix_nano=now, end_time_unix_nano=now + 9_000_000_000,
                  attributes=[kv("http.route", "/report"), kv("http.request.method", "GET")])]
    parents = [root]
    for i in range(n - 1):
        sid = os.urandom(8)
        spans.append(Span(trace_id=trace_id, span_id=sid, parent_span_id=parents[i % len(parents)],
                          name=f"step {i}", kind=Span.SPAN_KIND_INTERNAL, start_time_unix_nano=now + i * 800_000,
                          end_time_unix_nano=now + i * 800_000 + 500_000))
        if i % 10 == 0:
            parents.append(sid)
    body = ExportTraceServiceRequest(resource_spans=[ResourceSpans(
        resource={"attributes": [kv("service.name", "reports")]}, scope_spans=[ScopeSpans(spans=spans)])]).SerializeToString()
    req = urllib.request.Request(otlp + "/v1/traces", data=body, headers={"Content-Type": "application/x-protobuf"})
    urllib.request.urlopen(req, timeout=60).read()
    return trace_id.hex()


def queries(data_dir):
    p, urls = start_server(data_dir)
    api = urls["api"]
    p.terminate()
    p.wait(timeout=30)
    n = seed(os.path.join(data_dir, "lookout.db"), 1, "storefront")
    p, urls = start_server(data_dir)
    api = urls["api"]
    since = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() - 7 * 86400))
    path = f"/api/v1/apm/services/storefront/transactions?since={since}"
    got = get(api, path)
    assert len(got["items"]) == 200, len(got["items"])
    times = []
    for _ in range(15):
        t0 = time.perf_counter()
        get(api, path)
        times.append((time.perf_counter() - t0) * 1000)
    trace_id = big_trace(urls["otlp"])
    ttimes = []
    for _ in range(5):
        t0 = time.perf_counter()
        t = get(api, f"/api/v1/traces/{trace_id}")
        ttimes.append((time.perf_counter() - t0) * 1000)
    assert len(t["spans"]) == 10_000
    p.terminate()
    p.wait(timeout=30)
    return n, statistics.median(times), max(times), statistics.median(ttimes)


def main():
    failed = False
    with tempfile.TemporaryDirectory() as d:
        rate, rolled_rate, end_to_end, peak, refused, catch_up = ingest(d)
    print(f"ingest (wrk, {SENDERS} connections x {BATCH}-span protobuf batches, {SECONDS} s, SQLite):")
    print(f"  spans/s acknowledged (durable)   {rate:>10,.0f}   target >= {TARGET_SPANS_S:,}")
    print(f"  spans/s rolled up during the run {rolled_rate:>10,.0f}   (consumer caught up {catch_up:.1f} s after the senders stopped)")
    print(f"  spans/s end to end (ack+rollup)  {end_to_end:>10,.0f}")
    print(f"  refused (503, retried)           {refused:>10}")
    print(f"  peak RSS                         {peak:>10.0f} MB  target <= {TARGET_RSS_MB}")
    failed |= rate < TARGET_SPANS_S or peak > TARGET_RSS_MB
    with tempfile.TemporaryDirectory() as d:
        rows, median, worst, trace_ms = queries(d)
    print(f"7-day p95-by-route query (200 routes, {rows:,} rollup rows seeded):")
    print(f"  median {median:.1f} ms, worst {worst:.1f} ms   target <= {TARGET_QUERY_MS} ms")
    print(f"10,000-span trace (GET /api/v1/traces/{{id}}): median {trace_ms:.0f} ms")
    failed |= median > TARGET_QUERY_MS
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
