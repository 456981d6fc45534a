"""The same rule file evaluated by a real Prometheus (Debian's package, scraping itself and a real
node_exporter every second) and by Lookout (fed by that Prometheus's remote write): both must
list the same groups and rules with the same health, and each alerting rule must have the same
state and the same alerts (label sets and expanded annotations). The recorded series must have
the same labels and values.

Prometheus's own rule results (`ALERTS*`, `job:*`) are dropped from its remote write, so what
Lookout shows is what Lookout evaluated."""

import json
import os
import shutil
import subprocess
import tempfile
import time
import urllib.parse
import urllib.request

from harness import ADMIN_TOKEN, Server
from promstack import free_port, get, need, wait_http

RULES = """groups:
  - name: compare
    interval: 1s
    rules:
      - record: job:up:sum
        expr: sum by (job) (up)
      - alert: TargetUp
        expr: up == 1
        labels:
          severity: info
        annotations:
          summary: "{{ $labels.job }} is up ({{ $value }})"
      - alert: TargetDown
        expr: up == 0
      - alert: SlowToFire
        expr: up == 1
        for: 1h
      - alert: BigValue
        expr: up * 2147483648 > 0
        annotations:
          summary: "{{ $value }}"
      - alert: SmallValue
        expr: up * 0.00001 > 0
        annotations:
          summary: "{{ $value }}"
"""


def put_rules(url):
    req = urllib.request.Request(url + "/api/v1/prometheus/rules?file=compare.yml", data=RULES.encode(),
                                 method="PUT")
    req.add_header("Authorization", "Bearer " + ADMIN_TOKEN)
    req.add_header("Content-Type", "application/yaml")
    with urllib.request.urlopen(req, timeout=10) as r:
        assert r.status == 200


def summary(groups):
    """Groups → rules → (type, health, state, sorted alerts as (labels, annotations, state))."""
    out = {}
    for g in groups:
        for r in g["rules"]:
            alerts = sorted(
                json.dumps([a["labels"], a["annotations"], a["state"]], sort_keys=True)
                for a in r.get("alerts", [])
            )
            out[(g["name"], r["name"])] = (r["type"], r["health"], r.get("state"), alerts)
    return out


def test_lookout_evaluates_rules_like_prometheus():
    prom_bin = need("prometheus")
    exporter_bin = need("prometheus-node-exporter")
    promtool = need("promtool")
    server = Server()
    tmp = tempfile.mkdtemp(prefix="lookout-rules-")
    procs = []
    try:
        with open(os.path.join(tmp, "rules.yml"), "w") as f:
            f.write(RULES)
        check = subprocess.run([promtool, "check", "rules", os.path.join(tmp, "rules.yml")],
                               capture_output=True, text=True)
        assert check.returncode == 0, check.stdout + check.stderr
        prom_port, exporter_port = free_port(), free_port()
        key = server.dsn.split("://")[1].split("@")[0]
        config = f"""
global:
  scrape_interval: 1s
  evaluation_interval: 1s
rule_files: [rules.yml]
scrape_configs:
  - job_name: prometheus
    static_configs: [{{targets: ["127.0.0.1:{prom_port}"]}}]
  - job_name: node
    static_configs: [{{targets: ["127.0.0.1:{exporter_port}"]}}]
remote_write:
  - url: {server.url}/prometheus/api/v1/write
    authorization: {{credentials: "{key}"}}
    queue_config: {{batch_send_deadline: 1s, min_backoff: 100ms, max_backoff: 1s}}
    write_relabel_configs:
      - source_labels: [__name__]
        regex: "ALERTS.*|job:.*"
        action: drop
"""
        with open(os.path.join(tmp, "prometheus.yml"), "w") as f:
            f.write(config)
        procs.append(subprocess.Popen([exporter_bin, f"--web.listen-address=127.0.0.1:{exporter_port}"],
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        procs.append(subprocess.Popen([prom_bin, f"--config.file={tmp}/prometheus.yml",
                                       f"--storage.tsdb.path={tmp}/data",
                                       f"--web.listen-address=127.0.0.1:{prom_port}"],
                                      stdout=subprocess.DEVNULL,
                                      stderr=open(os.path.join(tmp, "prometheus.log"), "w")))
        prom = f"http://127.0.0.1:{prom_port}"
        wait_http(prom + "/-/ready")
        put_rules(server.url)
        deadline = time.time() + 90
        while True:
            p = summary(get(prom + "/api/v1/rules")["data"]["groups"])
            lk = summary(get(server.url + "/prometheus/api/v1/rules", ADMIN_TOKEN)["data"]["groups"])
            settled = p.get(("compare", "TargetUp"), (None, None, None, []))[3]
            if p == lk and len(settled) == 2:
                break
            assert time.time() < deadline, f"Prometheus {p}\nLookout {lk}"
            time.sleep(1)
        assert p[("compare", "TargetUp")][2] == "firing"
        assert p[("compare", "SlowToFire")][2] == "pending"
        assert p[("compare", "TargetDown")][2] == "inactive"
        # The recorded series: the same label sets and values.
        q = urllib.parse.quote("job:up:sum")
        def rec(v):
            return sorted((json.dumps(r["metric"], sort_keys=True), r["value"][1]) for r in v["data"]["result"])
        assert rec(get(prom + "/api/v1/query?query=" + q)) == rec(
            get(server.url + "/prometheus/api/v1/query?query=" + q, ADMIN_TOKEN))
    finally:
        for proc in procs:
            proc.terminate()
            proc.wait(timeout=15)
        server.stop()
        shutil.rmtree(tmp, ignore_errors=True)
