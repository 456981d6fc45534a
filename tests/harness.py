"""The real lookout binary on free ports with a temp data dir, for the Python test suites.

The binary is LOOKOUT_BIN (default: target/debug/lookout under CARGO_TARGET_DIR or ./target,
built by `cargo build`). Each Server reads its banner for the URLs and the default DSN.
"""

import json
import os
import pathlib
import shutil
import subprocess
import tempfile
import threading
import time
import urllib.request

ROOT = pathlib.Path(__file__).resolve().parents[1]
ADMIN_EMAIL = "admin@example.com"
ADMIN_PASSWORD = "correct horse battery"
ADMIN_TOKEN = "lk_test_admin_token_0123456789abcdef"


def lookout_bin():
    target = os.environ.get("CARGO_TARGET_DIR", str(ROOT / "target"))
    path = os.environ.get("LOOKOUT_BIN", os.path.join(target, "debug", "lookout"))
    assert os.path.exists(path), f"{path} is missing: run `cargo build` first"
    return path


class Server:
    """A running `lookout serve` on a temp data dir, reading its banner for the URLs."""

    def __init__(self, env_extra=None):
        self.dir = tempfile.mkdtemp(prefix="lookout-browser-")
        env = {"PATH": os.environ.get("PATH", ""), "RUST_LOG": "warn", "LOOKOUT_BOOTSTRAP_TOKEN": ADMIN_TOKEN}
        env.update(env_extra or {})
        self.proc = subprocess.Popen(
            [lookout_bin(), "serve", "--data-dir", self.dir, "--listen", "127.0.0.1:0", "--otlp-listen", "127.0.0.1:0"],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
        self.url = None
        self.otlp_url = None
        self.dsn = None
        self.log = []
        for line in self.proc.stdout:
            self.log.append(line)
            if "UI and API:" in line:
                self.url = line.split()[-1]
            if "OTLP/HTTP:" in line:
                self.otlp_url = line.split()[-1]
            if "DSN:" in line:
                self.dsn = line.split()[-1]
                break
        assert self.url, "lookout did not start:\n" + "".join(self.log)
        # Keep reading so the server never blocks on a full pipe.
        threading.Thread(target=lambda: [self.log.append(l) for l in self.proc.stdout], daemon=True).start()

    def stop(self):
        self.proc.terminate()
        self.proc.wait(timeout=15)
        shutil.rmtree(self.dir, ignore_errors=True)



    def api(self, path, method="GET", body=None):
        """Calls the JSON API with the admin token; returns the decoded answer."""
        req = urllib.request.Request(self.url + path, method=method,
                                     headers={"Authorization": "Bearer " + ADMIN_TOKEN, "Content-Type": "application/json"},
                                     data=json.dumps(body).encode() if body is not None else None)
        with urllib.request.urlopen(req, timeout=10) as r:
            return json.loads(r.read())

    def metrics(self):
        with urllib.request.urlopen(self.url + "/metrics", timeout=10) as r:
            return r.read().decode()

    def wait_issues(self, done, project=1, timeout=20):
        """Polls the project's issues (all statuses) until done(items) is true."""
        deadline = time.time() + timeout
        while True:
            items = self.api(f"/api/v1/projects/{project}/issues?status=all&limit=1000")["items"]
            if done(items):
                return items
            if time.time() > deadline:
                raise AssertionError(f"issues never reached the expected state: {json.dumps(items, indent=1)}")
            time.sleep(0.1)
