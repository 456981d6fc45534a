"""The Load tests pages in a real browser: two runs of `lookout load run --report-to` are listed,
a run's page charts req/s, latency and failures with its thresholds and checks, and two runs
are compared side by side."""

import http.server
import os
import subprocess
import sys
import tempfile
import threading

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from harness import ADMIN_TOKEN, lookout_bin  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from test_ui import log_in, shot  # noqa: E402


class Ok(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self):
        body = b'{"ok": true}'
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


SCENARIO = """
scenarios:
  browse:
    executor: constant-arrival-rate
    rate: {rate}
    duration: 3s
    preAllocatedVUs: 4
    steps:
      - request: {{ name: home, url: "{base}/" }}
        checks: {{ status: 200, jsonpath: {{ "$.ok": true }} }}
thresholds:
  http_req_duration: ["p(95)<2000"]
  http_req_failed: ["rate<0.01"]
"""


def test_runs_are_listed_charted_and_compared(server, watched):
    target = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Ok)
    threading.Thread(target=target.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{target.server_address[1]}"
    try:
        with tempfile.TemporaryDirectory() as d:
            for rate, commit in ((20, "c0ffee1"), (40, "c0ffee2")):
                path = os.path.join(d, "shop.yaml")
                with open(path, "w") as f:
                    f.write(SCENARIO.format(rate=rate, base=base))
                r = subprocess.run([lookout_bin(), "load", "run", path, "-q", "--report-to", server.url,
                                    "--token", ADMIN_TOKEN, "--commit", commit], capture_output=True, text=True, timeout=60)
                assert r.returncode == 0, r.stdout + r.stderr
    finally:
        target.shutdown()
    runs = server.api("/api/v1/load-runs")["items"]
    assert [r["commit"] for r in runs] == ["c0ffee2", "c0ffee1"]

    page = watched.page
    log_in(page, server.url)
    page.goto(server.url + "/load-tests")
    table = page.inner_text("#load-runs")
    assert "shop" in table and "c0ffee1" in table and "passed" in table
    shot(page, "load-tests")
    page.click(f"a[href='/load-tests/{runs[1]['id']}']")
    assert "Thresholds passed" in page.inner_text("#verdict")
    assert page.locator("svg").count() >= 3
    assert "Requests per second" in page.content()
    assert "p(95)<2000" in page.inner_text("#thresholds")
    assert "home: status is 200" in page.inner_text("#checks")
    assert "60" in page.inner_text("#scenarios")  # 20/s for 3 s
    shot(page, "load-test-run")
    page.goto(server.url + "/load-tests")
    page.check(f"input[name=a][value='{runs[1]['id']}']")
    page.check(f"input[name=b][value='{runs[0]['id']}']")
    with page.expect_navigation():
        page.click("#compare")
    cmp = page.inner_text("#comparison")
    rps = next(line.split("\t") for line in cmp.splitlines() if "req/s" in line)
    # Twice the arrival rate: about twice the requests per second.
    assert 80 <= float(rps[-1].rstrip("%")) <= 120, cmp
    assert "p95" in cmp and "errors" in cmp
    shot(page, "load-test-compare")
