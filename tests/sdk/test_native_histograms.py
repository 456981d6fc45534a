"""A real Prometheus (Debian's 2.42, `--enable-feature=native-histograms`) scraping a target that
exposes a native histogram in the protobuf exposition format, and remote-writing it to Lookout
with `send_native_histograms: true`. Lookout keeps it as the classic histogram it equals
(`_bucket{le}`, `_count`, `_sum`), so what Prometheus answers with its native-histogram
functions Lookout must answer from those series: `histogram_count(rate(x[w]))` as
`rate(x_count[w])`, `histogram_sum` as `_sum`, and `histogram_quantile` over the native series
as over `x_bucket`, at the same evaluation times within 1e-9 relative.
"""

import http.server
import math
import os
import shutil
import struct
import subprocess
import tempfile
import threading
import time
import urllib.parse

import pytest
from harness import ADMIN_TOKEN
from promstack import free_port, get, need, wait_http
from protowire import field, message, text, varint, zigzag


# The protobuf exposition (io.prometheus.client.MetricFamily) is written by hand (tests/protowire.py):
# the official Python client has no native histograms.

# Schema 0 buckets -2, -1, 0 ((1/8, 1/4], (1/4, 1/2], (1/2, 1]) and 3, 4 ((4, 8], (8, 16]);
# each scrape adds these observations to them.
SCHEMA = 0
SPANS = [(-2, 3), (2, 2)]
PER_SCRAPE = [1, 3, 2, 1, 5]


def exposition(n):
    """The family after `n` scrapes' worth of observations, length-delimited."""
    counts = [n * c + 1 for c in PER_SCRAPE]
    deltas, prev = [], 0
    for c in counts:
        deltas.append(c - prev)
        prev = c
    h = field(1, 0, varint(sum(counts)))
    h += field(2, 1, struct.pack("<d", 17.25 * n))
    h += field(5, 0, varint(zigzag(SCHEMA)))
    h += field(6, 1, struct.pack("<d", 2.0 ** -128))
    h += field(7, 0, varint(0))
    for offset, length in SPANS:
        h += message(12, field(1, 0, varint(zigzag(offset))) + field(2, 0, varint(length)))
    h += message(13, b"".join(varint(zigzag(d)) for d in deltas))
    label = message(1, text(1, "route") + text(2, "/pay"))
    metric = label + message(7, h)
    family = text(1, "rpc_duration_seconds")
    family += text(2, "RPC time")
    family += field(3, 0, varint(4))  # HISTOGRAM
    family += message(4, metric)
    return varint(len(family)) + family


class Target(http.server.BaseHTTPRequestHandler):
    scrapes = 0

    def do_GET(self):
        Target.scrapes += 1
        body = exposition(Target.scrapes)
        self.send_response(200)
        self.send_header("Content-Type", "application/vnd.google.protobuf; "
                         "proto=io.prometheus.client.MetricFamily; encoding=delimited")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture()
def native_prometheus(server):
    prom_bin = need("prometheus")
    target = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Target)
    threading.Thread(target=target.serve_forever, daemon=True).start()
    tmp = tempfile.mkdtemp(prefix="lookout-native-")
    port = free_port()
    key = server.dsn.split("://")[1].split("@")[0]
    with open(os.path.join(tmp, "prometheus.yml"), "w") as f:
        f.write(f"""
global:
  scrape_interval: 1s
scrape_configs:
  - job_name: rpc
    static_configs: [{{targets: ["127.0.0.1:{target.server_address[1]}"]}}]
remote_write:
  - url: {server.url}/prometheus/api/v1/write
    authorization: {{credentials: "{key}"}}
    send_native_histograms: true
    queue_config: {{batch_send_deadline: 1s, min_backoff: 100ms, max_backoff: 1s}}
    metadata_config: {{send_interval: 1s}}
""")
    log = open(os.path.join(tmp, "prometheus.log"), "w")
    proc = subprocess.Popen([prom_bin, f"--config.file={tmp}/prometheus.yml", "--enable-feature=native-histograms",
                             f"--storage.tsdb.path={tmp}/data", f"--web.listen-address=127.0.0.1:{port}"],
                            stdout=subprocess.DEVNULL, stderr=log)
    url = f"http://127.0.0.1:{port}"
    wait_http(url + "/-/ready")
    yield url
    proc.terminate()
    proc.wait(timeout=15)
    target.shutdown()
    shutil.rmtree(tmp, ignore_errors=True)


def instant(base, query, t, token=None):
    q = urllib.parse.urlencode({"query": query, "time": f"{t:.3f}"})
    return {tuple(sorted((k, v) for k, v in r["metric"].items() if k != "__name__")): float(r["value"][1])
            for r in get(f"{base}/api/v1/query?{q}", token)["data"]["result"]}


PAIRS = [
    # (Prometheus over the native series, Lookout over the classic ones)
    ("histogram_count(rpc_duration_seconds)", "rpc_duration_seconds_count"),
    ("histogram_sum(rpc_duration_seconds)", "rpc_duration_seconds_sum"),
    ("histogram_count(rate(rpc_duration_seconds[10s]))", "rate(rpc_duration_seconds_count[10s])"),
    ("histogram_sum(rate(rpc_duration_seconds[10s]))", "rate(rpc_duration_seconds_sum[10s])"),
    ("histogram_quantile(0.5, rate(rpc_duration_seconds[10s]))",
     "histogram_quantile(0.5, rate(rpc_duration_seconds_bucket[10s]))"),
    ("histogram_quantile(0.9, rpc_duration_seconds)", "histogram_quantile(0.9, rpc_duration_seconds_bucket)"),
    ("histogram_quantile(0.99, sum by (route) (rate(rpc_duration_seconds[10s])))",
     "histogram_quantile(0.99, sum by (route, le) (rate(rpc_duration_seconds_bucket[10s])))"),
]


def close(a, b):
    return a.keys() == b.keys() and all(math.isclose(a[k], b[k], rel_tol=1e-9) for k in a)


def test_native_histograms_written_by_prometheus_answer_like_prometheus(server, native_prometheus):
    lookout = server.url + "/prometheus"
    deadline = time.time() + 60
    while Target.scrapes < 15:
        assert time.time() < deadline, "Prometheus did not scrape the target"
        time.sleep(0.5)
    # Lookout trails Prometheus by a send; each pair is compared at one evaluation time a few
    # seconds back, retried at a later time while Lookout's answer is still missing.
    for native, classic in PAIRS:
        deadline = time.time() + 30
        while True:
            t = time.time() - 4
            want, got = instant(native_prometheus, native, t), instant(lookout, classic, t, ADMIN_TOKEN)
            if want and close(want, got):
                break
            if time.time() > deadline:
                raise AssertionError(f"{native} = {want}, but Lookout's {classic} = {got} at {t}")
            time.sleep(1)
    # The native series itself is not one of Lookout's; its classic parts are, with metadata.
    names = get(f"{lookout}/api/v1/label/__name__/values", ADMIN_TOKEN)["data"]
    assert {"rpc_duration_seconds_bucket", "rpc_duration_seconds_count", "rpc_duration_seconds_sum"} <= set(names)
    meta = get(f"{lookout}/api/v1/metadata?metric=rpc_duration_seconds", ADMIN_TOKEN)["data"]
    assert meta.get("rpc_duration_seconds", [{}])[0].get("type") == "histogram", meta
