"""The Uptime section in a real browser: add monitors through the form, see them go up and down
against a real local server, open a monitor's page, build a status page with an incident, and
read the public page without logging in."""

import http.server
import os
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from browser_support import Watched, assert_readable_time  # noqa: E402
from test_ui import log_in, shot  # noqa: E402


class Ok(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = b'{"status":"UP"}'
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *a):
        pass


def wait_text(page, url, selector, text, timeout=20):
    deadline = time.time() + timeout
    while True:
        page.goto(url)
        got = page.inner_text(selector)
        if text in got:
            return got
        assert time.time() < deadline, f"{selector} never showed {text!r}: {got!r}"
        time.sleep(0.5)


def test_monitors_status_pages_and_the_public_page(server, watched, browser):
    target = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Ok)
    threading.Thread(target=target.serve_forever, daemon=True).start()
    page = watched.page
    log_in(page, server.url)
    page.goto(server.url + "/uptime")
    assert "No monitors yet" in page.inner_text("main")

    def open_form():
        page.goto(server.url + "/uptime")
        if not page.is_visible("#m-name"):
            page.click("details:has(#new-monitor) summary")

    def add(name, kind, target_text, conditions=""):
        open_form()
        page.fill("#m-name", name)
        page.select_option("#m-type", kind)
        page.fill("#m-target", target_text)
        page.fill("#m-interval", "1")
        page.fill("#m-conditions", conditions)
        with page.expect_navigation():
            page.click("#new-monitor button[type=submit]")

    add("Shop API", "http", f"http://127.0.0.1:{target.server_port}/health", "[STATUS] == 200\n[BODY].status == UP")
    assert "/uptime/monitors/" in page.url
    add("Old database", "tcp", "127.0.0.1:1")
    # A bad form is answered on the list with the reason, not a crash.
    open_form()
    page.fill("#m-name", "broken")
    page.select_option("#m-type", "http")
    page.fill("#m-target", "ftp://nowhere")
    with page.expect_navigation():
        page.click("#new-monitor button[type=submit]")
    assert "url" in page.inner_text("[role=alert]")
    watched.problems.clear()  # the 422 above is expected

    text = wait_text(page, server.url + "/uptime", "table.monitors", "down")
    wait_text(page, server.url + "/uptime", "table.monitors", "up")
    assert "Shop API" in text and "Old database" in text
    assert page.locator("table.monitors .beats").count() >= 2, "each row has a beat bar"
    shot(page, "uptime")

    with page.expect_navigation():
        page.click("a.monitor-name:text-is('Old database')")
    assert page.inner_text("#monitor-status") == "down"
    assert "cannot connect to 127.0.0.1:1: connection refused" in page.inner_text("#last-failure")
    assert "pending → down" in page.inner_text("#changes").replace("\u2192", "→")
    assert page.locator("figure.chart svg").count() == 1
    shot(page, "monitor")

    # Status page with both monitors and an incident.
    page.goto(server.url + "/uptime/status-pages")
    page.fill("#p-slug", "shop")
    page.fill("#p-title", "Shop status")
    for box in page.locator("#page-editor input[type=checkbox]").all():
        box.check()
    with page.expect_navigation():
        page.click("#page-editor button[type=submit]")
    page.fill("#i-title", "Database maintenance overran")
    page.select_option("#i-impact", "major")
    page.fill("#i-body", "We are restoring service.")
    with page.expect_navigation():
        page.click("#new-incident button[type=submit]")
    assert "Database maintenance overran" in page.inner_text("main")
    shot(page, "status-editor")

    anon = browser.new_context()
    public = anon.new_page()
    resp = public.goto(server.url + "/status/shop")
    assert resp.status == 200
    assert public.inner_text("h1") == "Shop status"
    assert "Some systems are down" in public.inner_text("#overall")
    assert public.locator(".component").count() == 2
    assert public.locator(".component").first.locator(".day").count() == 90
    assert "Database maintenance overran" in public.inner_text("main")
    shot(public, "status-public")
    anon.close()
    target.shutdown()
    assert watched.problems == [], "\n".join(watched.problems)


def test_monitor_page_edit_clone_check_now_and_beats(server, browser):
    """A monitor's page as an Uptime Kuma user expects it: Check now adds a beat at once, the
    beat bar shows up and down checks with their time and reason on hover, Edit keeps typed
    values and names the wrong field, Clone makes "… (copy)"; no sideways scrolling on a phone."""
    target = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Ok)
    threading.Thread(target=target.serve_forever, daemon=True).start()
    w = Watched(browser, viewport={"width": 1280, "height": 900})
    page = w.page
    log_in(page, server.url)
    page.goto(server.url + "/uptime")
    page.fill("#m-name", "Checkout API")
    page.select_option("#m-type", "http")
    page.fill("#m-target", f"http://127.0.0.1:{target.server_port}/health")
    page.fill("#m-interval", "3600")
    page.fill("#m-failures", "1")
    with page.expect_navigation():
        page.click("#new-monitor button[type=submit]")
    monitor_url = page.url
    assert "/uptime/monitors/" in monitor_url
    assert "every 1 h" in page.inner_text("#monitor-every")
    wait_text(page, monitor_url, "#monitor-status", "up")
    assert page.locator("#beats .beat-up").count() == 1

    # Check now: one more beat, recorded at once.
    with page.expect_navigation():
        page.click("#check-now")
    assert page.locator("#beats .beat").count() == 2, page.inner_text("main")

    # The target goes away: Check now records a red beat whose hover names the reason.
    port = target.server_port
    target.shutdown()
    target.server_close()
    with page.expect_navigation():
        page.click("#check-now")
    down = page.locator("#beats .beat-down")
    assert down.count() == 1, page.inner_html("#beats")
    tip = down.first.get_attribute("data-tip")
    assert f"cannot connect to 127.0.0.1:{port}: connection refused" in tip, tip
    down.first.hover()
    assert "connection refused" in page.inner_text("#tip")
    assert page.inner_text("#monitor-status") == "down"
    assert "down for" in page.inner_text("#down-for")
    assert "ongoing" in page.inner_text("#outages")
    shot(page, "monitor-beats-1280")

    # Edit: a bad interval comes back as typed, the field marked and named.
    with page.expect_navigation():
        page.click("#edit-monitor")
    assert page.input_value("#m-name") == "Checkout API"
    page.fill("#m-name", "Checkout API v2")
    page.fill("#m-interval", "0")
    with page.expect_navigation():
        page.click("#monitor-form button[type=submit]")
    assert "interval_seconds" in page.inner_text("#form-error")
    assert page.input_value("#m-name") == "Checkout API v2"
    assert page.get_attribute("#m-interval", "aria-invalid") == "true"
    w.problems.clear()  # the 422 above is expected
    page.fill("#m-interval", "86400")
    with page.expect_navigation():
        page.click("#monitor-form button[type=submit]")
    assert page.url == monitor_url
    assert "Checkout API v2" in page.inner_text("h1")
    assert "every 1 day" in page.inner_text("#monitor-every")

    # Clone: the add form prefilled, named "… (copy)".
    with page.expect_navigation():
        page.click("#clone-monitor")
    assert page.input_value("#m-name") == "Checkout API v2 (copy)"
    with page.expect_navigation():
        page.click("#monitor-form button[type=submit]")
    assert page.url != monitor_url and "/uptime/monitors/" in page.url
    assert "Checkout API v2 (copy)" in page.inner_text("h1")
    assert w.problems == [], "\n".join(w.problems)
    w.close()

    # A phone: the page, the list and the form fit the screen.
    phone = Watched(browser, viewport={"width": 390, "height": 844}, device_scale_factor=2, is_mobile=True, has_touch=True)
    p = phone.page
    log_in(p, server.url)
    for path, name in [(monitor_url.replace(server.url, ""), "monitor-beats-390"), ("/uptime", "uptime-390"),
                       (monitor_url.replace(server.url, "") + "/edit", "monitor-edit-390")]:
        p.goto(server.url + path)
        width = p.evaluate("document.documentElement.scrollWidth")
        assert width <= 390, f"{path} is {width}px wide on a 390px phone"
        shot(p, name)
    assert phone.problems == [], "\n".join(phone.problems)
    phone.close()


def test_maintenance_started_and_ended_from_the_monitor_page(server, browser):
    """Maintenance started from a down monitor's page silences it (its checks are grey beats);
    End maintenance now ends it at once: the monitor is checked straight away and reads down
    again, and both the monitor page and the public status page say the maintenance ended,
    with when on hover."""
    m = server.api("/api/v1/monitors", "POST", {"name": "Old database", "type": "tcp", "host": "127.0.0.1",
                                                 "port": 1, "interval_seconds": 3600, "failure_threshold": 1})
    server.api("/api/v1/status-pages", "POST", {"slug": "ops", "title": "Ops status", "monitor_ids": [m["id"]]})
    url = f"{server.url}/uptime/monitors/{m['id']}"
    w = Watched(browser, viewport={"width": 1280, "height": 900})
    page = w.page
    log_in(page, server.url)
    wait_text(page, url, "#monitor-status", "down")

    page.click("details.maintenance-menu summary")
    page.fill("#mw-title", "Database upgrade")
    page.select_option("#mw-minutes", "60")
    with page.expect_navigation():
        page.click("#maintenance-form button[value=maintenance]")
    assert page.inner_text("#monitor-status") == "maintenance"
    active = page.locator("#maintenance li[data-state=active]")
    assert "Database upgrade" in active.inner_text() and "in progress, ends" in active.inner_text()
    assert_readable_time(active.locator("time"))
    # Checked during maintenance: recorded, greyed, no alert.
    with page.expect_navigation():
        page.click("#check-now")
    assert page.locator("#beats .beat-maintenance").count() == 1, page.inner_html("#beats")
    shot(page, "monitor-maintenance-1280")
    public = browser.new_context().new_page()
    public.goto(server.url + "/status/ops")
    assert "Scheduled maintenance in progress" in public.inner_text("#overall")
    assert "Maintenance in progress: Database upgrade" in public.inner_text("main")

    downs = page.locator("#beats .beat-down").count()
    with page.expect_navigation():
        page.click("#maintenance button.end-maintenance")
    assert page.inner_text("#monitor-status") == "down"
    ended = page.locator("#maintenance li[data-state=ended]")
    assert "Database upgrade" in ended.inner_text() and "ended" in ended.inner_text()
    assert_readable_time(ended.locator("time"))
    assert page.locator("#maintenance button.end-maintenance").count() == 0
    # Checked at once, although the next scheduled check is an hour away.
    deadline = time.time() + 20
    while page.locator("#beats .beat-down").count() == downs:
        assert time.time() < deadline, page.inner_html("#beats")
        time.sleep(0.5)
        page.goto(url)
    shot(page, "monitor-maintenance-ended-1280")

    public.context.close()
    # A new reader (the page is cached for 30 s by the first one's browser).
    public = browser.new_context().new_page()
    public.goto(server.url + "/status/ops")
    assert "Major outage" in public.inner_text("#overall")
    notice = public.locator(".notice-ended")
    assert "Maintenance completed: Database upgrade" in notice.inner_text()
    assert_readable_time(notice.locator(".maintenance-ended time"))
    shot(public, "status-maintenance-ended")
    public.context.close()
    assert w.problems == [], "\n".join(w.problems)
    w.close()

    phone = Watched(browser, viewport={"width": 390, "height": 844}, device_scale_factor=2, is_mobile=True, has_touch=True)
    p = phone.page
    log_in(p, server.url)
    p.goto(url)
    width = p.evaluate("document.documentElement.scrollWidth")
    assert width <= 390, f"the monitor page is {width}px wide on a 390px phone"
    shot(p, "monitor-maintenance-ended-390")
    assert phone.problems == [], "\n".join(phone.problems)
    phone.close()
