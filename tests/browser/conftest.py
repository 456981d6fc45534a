"""Fixtures for the browser tests: the real lookout binary on free ports, and headless Chromium.

The binary is LOOKOUT_BIN (default: target/debug/lookout, built by `cargo build`). Chromium is
Debian's /usr/bin/chromium (CHROMIUM_PATH overrides); when it is missing the tests fail rather
than skip, so CI cannot pass without a real browser.
"""

import os
import sys

import pytest
from playwright.sync_api import sync_playwright

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from harness import ADMIN_EMAIL, ADMIN_PASSWORD, Server  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from browser_support import Watched  # noqa: E402

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


@pytest.fixture()
def watched(browser):
    w = Watched(browser)
    yield w
    w.close()
