"""Fixtures for the browser tests: the real lookout binary on free ports, and headless Chromium.

The binary is LOOKOUT_BIN (default: target/debug/lookout, built by `cargo build`). Chromium is
Debian's /usr/bin/chromium (CHROMIUM_PATH overrides); when it is missing the tests fail rather
than skip, so CI cannot pass without a real browser.
"""

import os
import pathlib
import shutil
import subprocess
import tempfile
import threading

import pytest
from playwright.sync_api import sync_playwright

ROOT = pathlib.Path(__file__).resolve().parents[2]
ADMIN_EMAIL = "admin@example.com"
ADMIN_PASSWORD = "correct horse battery"


def lookout_bin():
    target = os.environ.get("CARGO_TARGET_DIR", str(ROOT / "target"))
    path = os.environ.get("LOOKOUT_BIN", os.path.join(target, "debug", "lookout"))
    assert os.path.exists(path), f"{path} is missing: run `cargo build` first"
    return path


class Server:
    """A running `lookout serve` on a temp data dir, reading its banner for the URLs."""

    def __init__(self, env_extra=None):
        self.dir = tempfile.mkdtemp(prefix="lookout-browser-")
        env = {"PATH": os.environ.get("PATH", ""), "RUST_LOG": "warn"}
        env.update(env_extra or {})
        self.proc = subprocess.Popen(
            [lookout_bin(), "serve", "--data-dir", self.dir, "--listen", "127.0.0.1:0", "--otlp-listen", "127.0.0.1:0"],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
        self.url = None
        self.log = []
        for line in self.proc.stdout:
            self.log.append(line)
            if "UI and API:" in line:
                self.url = line.split()[-1]
            if "DSN:" in line:
                break
        assert self.url, "lookout did not start:\n" + "".join(self.log)
        # Keep reading so the server never blocks on a full pipe.
        threading.Thread(target=lambda: [self.log.append(l) for l in self.proc.stdout], daemon=True).start()

    def stop(self):
        self.proc.terminate()
        self.proc.wait(timeout=15)
        shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture()
def server():
    s = Server({"LOOKOUT_ADMIN_EMAIL": ADMIN_EMAIL, "LOOKOUT_ADMIN_PASSWORD": ADMIN_PASSWORD})
    yield s
    s.stop()


@pytest.fixture()
def fresh_server():
    s = Server()
    yield s
    s.stop()


@pytest.fixture(scope="session")
def browser():
    exe = os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")
    assert os.path.exists(exe), f"Chromium is required for the browser tests ({exe}); apt-get install chromium"
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=exe, headless=True, args=[
            "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
            "--disable-background-networking", "--disable-component-update", "--disable-sync"])
        yield b
        b.close()


class Watched:
    """A page that records console errors and every HTTP answer >= 400."""

    def __init__(self, browser, **context_args):
        self.context = browser.new_context(**context_args)
        self.page = self.context.new_page()
        self.problems = []
        self.page.on("console", lambda m: m.type == "error" and self.problems.append(f"console: {m.text}"))
        self.page.on("pageerror", lambda e: self.problems.append(f"page error: {e}"))
        self.page.on("response", lambda r: r.status >= 400 and self.problems.append(f"HTTP {r.status} {r.url}"))

    def close(self):
        self.context.close()


@pytest.fixture()
def watched(browser):
    w = Watched(browser)
    yield w
    w.close()
