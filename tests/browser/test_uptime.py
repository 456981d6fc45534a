"""The Uptime section in a real browser: add monitors through the form, see them go up and down
against a real local server, open a monitor's page, build a status page with an incident, and
read the public page without logging in."""

import http.server
import os
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
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
    assert page.locator("table.monitors svg").count() >= 2, "each row has a sparkline"
    shot(page, "uptime")

    with page.expect_navigation():
        page.click("a.monitor-name:text-is('Old database')")
    assert page.inner_text("#monitor-status") == "down"
    assert "cannot connect" in page.inner_text("#last-failure")
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
