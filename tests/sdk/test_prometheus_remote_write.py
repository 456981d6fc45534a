"""A real Prometheus (Debian's package) scraping itself and a real node_exporter, remote-writing
to Lookout: Lookout's /series, /labels and /label/…/values answers must equal Prometheus's own,
and `promtool query series|labels` must print the same against both.

Debian 12 ships Prometheus 2.42, which speaks remote write 1.0 only (2.0's
`protobuf_message: io.prometheus.write.v2.Request` came in 2.54); 2.0 is tested in the Rust e2e
suite (crates/lookout/tests/e2e/metrics) with messages built from the protocol's definitions.
"""

import json
import os
import shutil
import socket
import subprocess
import tempfile
import time
import urllib.parse
import urllib.request

import pytest

from harness import ADMIN_TOKEN


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def need(tool):
    path = shutil.which(tool)
    if path is None:
        if os.environ.get("CI") == "true":
            pytest.fail(f"{tool} is missing: scripts/setup-test-deps installs it")
        pytest.skip(f"{tool} is not installed (scripts/setup-test-deps installs it)")
    return path


def get(url, token=None):
    req = urllib.request.Request(url)
    if token:
        req.add_header("Authorization", "Bearer " + token)
    with urllib.request.urlopen(req, timeout=10) as r:
        return json.loads(r.read())


def wait_http(url, timeout=30):
    deadline = time.time() + timeout
    while True:
        try:
            urllib.request.urlopen(url, timeout=2).read()
            return
        except Exception:
            if time.time() > deadline:
                raise
            time.sleep(0.2)


@pytest.fixture()
def prometheus(server):
    """Prometheus and node_exporter on free ports, remote-writing to `server` with its DSN key."""
    prom_bin = need("prometheus")
    exporter_bin = need("prometheus-node-exporter")
    tmp = tempfile.mkdtemp(prefix="lookout-prom-")
    prom_port, exporter_port = free_port(), free_port()
    key = server.dsn.split("://")[1].split("@")[0]
    config = f"""
global:
  scrape_interval: 1s
scrape_configs:
  - job_name: prometheus
    static_configs: [{{targets: ["127.0.0.1:{prom_port}"]}}]
  - job_name: node
    static_configs: [{{targets: ["127.0.0.1:{exporter_port}"]}}]
remote_write:
  - url: {server.url}/prometheus/api/v1/write
    authorization: {{credentials: "{key}"}}
    queue_config: {{batch_send_deadline: 1s, min_backoff: 100ms, max_backoff: 1s}}
    metadata_config: {{send_interval: 1s}}
"""
    with open(os.path.join(tmp, "prometheus.yml"), "w") as f:
        f.write(config)
    procs = [
        subprocess.Popen([exporter_bin, f"--web.listen-address=127.0.0.1:{exporter_port}"],
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL),
        subprocess.Popen([prom_bin, f"--config.file={tmp}/prometheus.yml",
                          f"--storage.tsdb.path={tmp}/data", f"--web.listen-address=127.0.0.1:{prom_port}"],
                         stdout=subprocess.DEVNULL, stderr=open(os.path.join(tmp, "prometheus.log"), "w")),
    ]
    url = f"http://127.0.0.1:{prom_port}"
    wait_http(url + "/-/ready")
    yield url
    for p in procs:
        p.terminate()
        p.wait(timeout=15)
    shutil.rmtree(tmp, ignore_errors=True)


def answers(prom, lookout, path):
    """The same API path asked of Prometheus and of Lookout."""
    return get(prom + "/api/v1/" + path)["data"], get(lookout + "/prometheus/api/v1/" + path, ADMIN_TOKEN)["data"]


def until_equal(prom, lookout, path, timeout=60):
    """Waits until both answer `path` alike (Lookout trails Prometheus by a send interval, and
    Prometheus grows series of its own as it is queried); returns the answer."""
    deadline = time.time() + timeout
    while True:
        p, lk = answers(prom, lookout, path)
        key = lambda v: json.dumps(v, sort_keys=True)  # noqa: E731
        if isinstance(p, list) and sorted(p, key=key) == sorted(lk, key=key) and p:
            return p
        if time.time() > deadline:
            missing = [x for x in p if x not in lk][:5]
            extra = [x for x in lk if x not in p][:5]
            raise AssertionError(f"{path}: {len(p)} from Prometheus, {len(lk)} from Lookout; "
                                 f"missing {missing}, extra {extra}")
        time.sleep(1)


def test_lookout_answers_like_the_prometheus_that_writes_to_it(server, prometheus):
    # Let both scrape jobs run a few times first.
    deadline = time.time() + 30
    while len(get(prometheus + "/api/v1/query?query=up")["data"]["result"]) < 2:
        assert time.time() < deadline, "Prometheus did not scrape both targets"
        time.sleep(0.5)
    everything = urllib.parse.quote('{__name__=~".+"}')
    series = until_equal(prometheus, server.url, f"series?match[]={everything}")
    assert len(series) > 500, len(series)  # node_exporter alone has hundreds
    until_equal(prometheus, server.url, "labels")
    for label in ["job", "__name__", "instance", "mode"]:
        until_equal(prometheus, server.url, f"label/{label}/values")
    node_only = urllib.parse.quote('{job="node", __name__=~"node_cpu.*"}')
    until_equal(prometheus, server.url, f"series?match[]={node_only}")
    until_equal(prometheus, server.url, f"labels?match[]={node_only}")
    # Metadata came along: every family Lookout knows has the type Prometheus gives it.
    p_meta = get(prometheus + "/api/v1/metadata")["data"]
    l_meta = get(server.url + "/prometheus/api/v1/metadata", ADMIN_TOKEN)["data"]
    assert len(l_meta) > 100, len(l_meta)
    for name, entries in l_meta.items():
        assert name in p_meta, name
        assert entries[0]["type"] in {e["type"] for e in p_meta[name]}, name

    # promtool against both prints the same (credentials in the URL: promtool sends them as
    # basic auth, the way Lookout takes an API token).
    promtool = need("promtool")
    base = server.url.replace("http://", f"http://promtool:{ADMIN_TOKEN}@") + "/prometheus"

    def run(*args):
        out = subprocess.run([promtool, "query", *args], capture_output=True, text=True, timeout=30)
        assert out.returncode == 0, out.stderr
        return sorted(out.stdout.splitlines())

    want = run("series", "--match=up", prometheus)
    assert want == run("series", "--match=up", base) and len(want) == 2, want
    want = run("labels", prometheus, "job")
    assert want == run("labels", base, "job") == ["node", "prometheus"], want
