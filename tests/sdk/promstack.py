"""A real Prometheus (Debian's package) scraping itself and a real node_exporter every second and
remote-writing to a Lookout server: the `prometheus` fixture (registered in conftest.py) and the
helpers of the tests that compare the two."""

import json
import os
import shutil
import socket
import subprocess
import tempfile
import time
import urllib.request

import pytest


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


def promtool_query(promtool, *args):
    """`promtool query ARGS…`: its output lines, sorted; fails the test on a non-zero exit."""
    out = subprocess.run([promtool, "query", *args], capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    return sorted(out.stdout.splitlines())
