"""Locations in a real browser: an admin creates a location and sees its token once, with the
`lookout probe` command line; the test runs that command line (the real binary, as a separate
process) and the page shows the agent connected; a monitor's form sets its locations and the
failing-locations rule (a wrong rule comes back as typed, naming the field); the monitor page
shows each location's state. The pages fit 1280 and 390 px."""

import http.server
import os
import shlex
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from browser_support import Watched  # noqa: E402
from harness import lookout_bin  # noqa: E402
from test_ui import log_in, shot  # noqa: E402


class Ok(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = b"ok"
        self.send_response(200)
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *a):
        pass


def fits(page, what, width):
    overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
    assert overflow <= 1, f"{what} scrolls sideways by {overflow}px at {width} px"


def until(page, url, selector, text, timeout=30):
    deadline = time.time() + timeout
    while True:
        page.goto(url)
        got = page.inner_text(selector) if page.locator(selector).count() else ""
        if text in got:
            return got
        assert time.time() < deadline, f"{selector} never showed {text!r}: {got!r}"
        time.sleep(1)


def submit(page, button):
    with page.expect_navigation():
        page.click(button)


def test_a_location_made_in_the_browser_gets_an_agent_and_checks_a_monitor(server, watched, browser):
    target = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Ok)
    threading.Thread(target=target.serve_forever, daemon=True).start()
    page = watched.page
    page.set_viewport_size({"width": 1280, "height": 900})
    log_in(page, server.url)
    page.goto(server.url + "/uptime")
    page.click("#locations-link")
    assert "No locations yet" in page.inner_text("main")

    # A bad name is refused, naming the field, with what was typed kept.
    page.fill("#l-name", "EU West!")
    page.fill("#l-description", "Frankfurt VPS")
    submit(page, "#location-form button[type=submit]")
    assert "name" in page.inner_text("#form-error")
    assert page.get_attribute("#l-name", "aria-invalid") == "true"
    assert page.input_value("#l-name") == "EU West!"
    assert page.input_value("#l-description") == "Frankfurt VPS"
    watched.problems.clear()  # the 422 above is expected

    page.fill("#l-name", "eu-west")
    submit(page, "#location-form button[type=submit]")
    token = page.inner_text("#token-value").strip()
    command = page.inner_text("#probe-command").strip()
    assert token.startswith("lkp_") and command.startswith(f"LOOKOUT_PROBE_TOKEN={token} ")
    assert "--token" not in command  # never in argv, where `ps` shows it
    assert "--location eu-west" in command and f"--server {server.url}" in command
    assert page.locator("#new-token button.copy").count() == 2
    shot(page, "locations-token-1280")
    # Shown once: reading the page again does not show it.
    page.goto(server.url + "/uptime/locations")
    assert token not in page.content()
    assert "waiting" in page.inner_text("#location-eu-west .location-status")

    # The command line from the page, as an operator would paste it, with this build's binary.
    # `LOOKOUT_PROBE_TOKEN=… lookout probe …`: the token in the environment, as a shell runs it.
    args = shlex.split(command)
    var, value = args[0].split("=", 1)
    assert var == "LOOKOUT_PROBE_TOKEN" and value == token
    assert args[1] == "lookout"
    state = tempfile.TemporaryDirectory(prefix="probe-state-")
    log = tempfile.NamedTemporaryFile(prefix="probe-", suffix=".log", delete=False)
    agent = subprocess.Popen([lookout_bin()] + args[2:] + ["--agent-id", "browser-agent"],
                             stdout=subprocess.DEVNULL, stderr=log,
                             # The default state directory is under $HOME: a temporary one here.
                             env={"PATH": os.environ.get("PATH", ""), "RUST_LOG": "info", "HOME": state.name,
                                  var: value})
    try:
        until(page, server.url + "/uptime/locations", "#location-eu-west .location-status", "online")
        assert page.inner_text("#location-eu-west .live-agents") == "1"
        row = page.inner_text("#location-eu-west table.agents")
        assert "browser-agent" in row and "connected" in row
        assert page.inner_text("#location-eu-west .agent-version").strip()
        # Last seen is a relative time with the absolute one on hover.
        seen = page.locator("#location-eu-west table.agents time").first
        assert seen.get_attribute("title")

        # A monitor checked from local and eu-west, set in the add form.
        page.goto(server.url + "/uptime")
        if not page.is_visible("#m-name"):
            page.click("details:has(#new-monitor) summary")
        page.fill("#m-name", "Shop")
        page.select_option("#m-type", "http")
        page.fill("#m-target", f"http://127.0.0.1:{target.server_port}/")
        page.fill("#m-interval", "1")
        page.check("#new-monitor input[name=loc_eu-west]")
        assert page.is_checked("#new-monitor input[name=loc_local]")
        # More failing locations than locations: refused, naming the field, as typed.
        page.fill("#m-min-failing", "3")
        submit(page, "#new-monitor button[type=submit]")
        assert "min_failing_locations" in page.inner_text("#form-error")
        assert page.get_attribute("#m-min-failing", "aria-invalid") == "true"
        assert page.input_value("#m-min-failing") == "3"
        assert page.is_checked("#new-monitor input[name=loc_eu-west]")
        assert page.input_value("#m-name") == "Shop"
        watched.problems.clear()  # the 422 above is expected
        page.fill("#m-min-failing", "2")
        submit(page, "#new-monitor button[type=submit]")
        assert "/uptime/monitors/" in page.url
        monitor_url = page.url

        # Each location's own state on the monitor page, once the agent has reported.
        until(page, monitor_url, "#location-states tr[data-location=eu-west]", "up")
        until(page, monitor_url, "#location-states tr[data-location=local]", "up")
        assert "2 of those online fail" in page.inner_text("#monitor-locations")
        assert page.locator("#monitor-locations svg").count() == 1, "a latency chart by location"
        shot(page, "locations-monitor-1280")

        # The edit form shows the locations and the rule as stored.
        page.goto(monitor_url + "/edit")
        assert page.is_checked("input[name=loc_eu-west]") and page.is_checked("input[name=loc_local]")
        assert page.input_value("#m-min-failing") == "2"

        page.goto(server.url + "/uptime/locations")
        assert page.inner_text("#location-eu-west .monitor-count") == "1"
        assert "Shop" in page.inner_text("#location-eu-west")
        until(page, server.url + "/uptime/locations", "#location-eu-west .lag", "ago")
        fits(page, "locations", 1280)
        shot(page, "locations-1280")

        # Description edited in place.
        page.click("#location-eu-west summary")
        page.fill("#desc-1", "Frankfurt VPS")
        submit(page, "#location-eu-west form:has(#desc-1) button[type=submit]")
        assert "Frankfurt VPS" in page.inner_text("#location-eu-west .location-description")

        # On a phone.
        phone = Watched(browser, viewport={"width": 390, "height": 844}, device_scale_factor=2, is_mobile=True, has_touch=True)
        try:
            p = phone.page
            log_in(p, server.url)
            for path, name in [("/uptime/locations", "locations"), (monitor_url, "monitor"),
                               (monitor_url + "/edit", "monitor-edit")]:
                p.goto(path if path.startswith("http") else server.url + path)
                fits(p, name, 390)
                shot(p, f"locations-{name}-390")
            assert phone.problems == [], "\n".join(phone.problems)
        finally:
            phone.close()

        # Rotating shows a new token once; the old one stops the agent with a clear error.
        page.on("dialog", lambda d: d.accept())
        submit(page, "#location-eu-west button.rotate-token")
        new = page.inner_text("#token-value").strip()
        assert new.startswith("lkp_") and new != token
        deadline = time.time() + 60
        while agent.poll() is None:
            assert time.time() < deadline, "the agent with the rotated-away token kept running"
            time.sleep(0.5)
        with open(log.name) as f:
            assert "token" in f.read().lower()
    finally:
        if agent.poll() is None:
            agent.kill()
        agent.wait()
        os.unlink(log.name)
        state.cleanup()
        target.shutdown()
    assert watched.problems == [], "\n".join(watched.problems)
