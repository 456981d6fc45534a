"""A whole rotation set up in the browser, without the API: users (Settings) → a schedule with an
override typed in the schedule's time zone → an escalation policy → a webhook contact method
whose Send test reaches a capture server on 127.0.0.1 → an Alertmanager integration and an
alert policy. Then an Alertmanager notification posted to the integration's URL pages the
on-call user through the webhook, and the incident is acknowledged from its page on a 390 px
phone screen; the capture server holds every delivery. The new pages fit 1280 and 390 px."""

import datetime
import json
import os
import sys
import threading
import time
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from zoneinfo import ZoneInfo

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from browser_support import Watched  # noqa: E402
from test_ui import log_in, shot  # noqa: E402


class Capture:
    """An HTTP server on 127.0.0.1 that records every POST body (the webhook receiver)."""

    def __init__(self):
        self.got = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                n = int(self.headers.get("content-length") or 0)
                body = self.rfile.read(n)
                outer.got.append({"headers": {k.lower(): v for k, v in self.headers.items()},
                                  "json": json.loads(body or b"null")})
                reply = b'{"ok":true,"who":"capture"}'
                self.send_response(200)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(reply)))
                self.end_headers()
                self.wfile.write(reply)

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/hook"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def events(self):
        return [g["json"].get("event") for g in self.got]

    def wait_for(self, event, timeout=20):
        deadline = time.time() + timeout
        while time.time() < deadline:
            if event in self.events():
                return
            time.sleep(0.1)
        raise AssertionError(f"no {event!r} webhook arrived; got {self.events()}")

    def stop(self):
        self.httpd.shutdown()


def fits(page, path, width):
    overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
    assert overflow <= 1, f"{path} scrolls sideways by {overflow}px at {width} px"


def submit(page, form):
    with page.expect_navigation():
        page.click(f"{form} button[type=submit]")


def test_a_rotation_set_up_in_the_browser_pages_and_is_acknowledged_on_a_phone(server, watched, browser):
    capture = Capture()
    try:
        run(server, watched, browser, capture)
    finally:
        capture.stop()


def run(server, watched, browser, capture):
    page = watched.page
    page.set_viewport_size({"width": 1280, "height": 900})
    log_in(page, server.url)

    # Users, from the Settings page.
    page.goto(server.url + "/settings")
    for email in ["ana@example.com", "ben@example.com"]:
        page.fill("#uemail", email)
        page.fill("#upass", "correct horse battery")
        page.select_option("#urole", "member")
        submit(page, "form[action='/settings/users']")
    users = {u["email"]: u["id"] for u in server.api("/api/v1/users")["items"]}
    assert {"ana@example.com", "ben@example.com"} <= set(users)

    # A weekly rotation in Berlin time; a refused form first keeps what was typed.
    page.goto(server.url + "/on-call/schedules/new")
    page.fill("#schedule-form input[name=name]", "Primary")
    page.fill("#schedule-form input[name=time_zone]", "Europe/Berlyn")
    slots = page.locator("select[name=layer0_user]")
    slots.nth(0).select_option(str(users["ana@example.com"]))
    slots.nth(1).select_option(str(users["ben@example.com"]))
    page.select_option("select[name=layer0_turn]", "604800")
    page.fill("input[name=layer0_handoff]", "2020-01-06T09:00")
    page.fill("input[name=layer0_end]", "2099-01-04T09:00")
    submit(page, "#schedule-form")
    assert "time_zone" in page.inner_text("#form-error")
    assert page.get_attribute("input[name=time_zone]", "aria-invalid") == "true"
    # Users are kept by id, in turn order, and so is the layer's end.
    assert slots.nth(0).input_value() == str(users["ana@example.com"])
    assert slots.nth(1).input_value() == str(users["ben@example.com"])
    assert page.input_value("input[name=layer0_end]") == "2099-01-04T09:00"
    # That refusal was this test's own 422; anything else would be a problem.
    watched.problems[:] = [p for p in watched.problems if "422" not in p]
    page.fill("#schedule-form input[name=time_zone]", "Europe/Berlin")
    submit(page, "#schedule-form")
    schedule_url = page.url
    assert "/on-call/schedules/" in schedule_url, schedule_url
    assert page.locator("#calendar .day-label").count() == 7
    assert page.locator("#calendar .shift").count() >= 7

    # Ben covers from an hour ago for three hours, typed in Berlin time.
    berlin = datetime.datetime.now(ZoneInfo("Europe/Berlin"))
    fmt = "%Y-%m-%dT%H:%M"
    page.select_option("#override-form select[name=user]", str(users["ben@example.com"]))
    page.fill("#override-form input[name=start]", (berlin - datetime.timedelta(hours=1)).strftime(fmt))
    page.fill("#override-form input[name=end]", (berlin + datetime.timedelta(hours=2)).strftime(fmt))
    submit(page, "#override-form")
    assert page.inner_text("#on-call-now") == "ben@example.com"
    assert page.locator("#overrides tr[data-override]").count() == 1
    assert page.locator("#calendar .shift.override").count() >= 1
    fits(page, "schedule", 1280)
    shot(page, "alerting-schedule-1280")

    # Ben's webhook contact method, tested against the capture server.
    page.goto(server.url + "/alerts/channels/new")
    page.fill("#channel-form input[name=name]", "Ben's pager hook")
    page.select_option("#channel-form select[name=type]", "email")
    assert page.is_visible("input[name=smtp_host]") and not page.is_visible("input[name=secret]")
    page.select_option("#channel-form select[name=type]", "webhook")
    assert not page.is_visible("input[name=smtp_host]")
    page.fill("#channel-form input[name=url]", capture.url)
    page.fill("#channel-form input[name=secret]", "hook-secret")
    page.select_option("#channel-form select[name=owner]", str(users["ben@example.com"]))
    submit(page, "#channel-form")
    assert page.input_value("#channel-form input[name=secret]") == "********"
    with page.expect_navigation():
        page.click("#send-test")
    answer = page.inner_text("#test-answer")
    assert "HTTP 200" in answer and '"who":"capture"' in answer, answer
    capture.wait_for("test")
    assert capture.got[0]["headers"].get("x-lookout-signature", "").startswith("sha256=")
    fits(page, "channel", 1280)
    shot(page, "alerting-channel-1280")

    # The escalation policy pages whoever the schedule has on call.
    page.goto(server.url + "/alerts/escalation-policies/new")
    page.fill("#escalation-form input[name=name]", "Primary")
    page.select_option("select[name=rule0_target]", [f"schedule:{schedule_url.rsplit('/', 1)[1]}"])
    page.fill("input[name=rule0_delay]", "10")
    submit(page, "#escalation-form")
    assert "/alerts/escalation-policies/" in page.url
    shot(page, "alerting-escalation-1280")

    # Alertmanager's integration: the URL to paste, with a copy button.
    page.goto(server.url + "/alerts/integrations/new")
    page.fill("#integration-form input[name=name]", "prometheus")
    page.select_option("#integration-form select[name=type]", "alertmanager")
    page.select_option("#integration-form select[name=escalation_policy_id]", label="Primary")
    submit(page, "#integration-form")
    url = page.inner_text("#integration-url")
    assert url.startswith(server.url + "/integrations/") and url.endswith("/alertmanager"), url
    assert page.get_attribute("#endpoint button[data-copy]", "data-copy") == url
    assert "webhook_configs" in page.inner_text("#endpoint")
    fits(page, "integration", 1280)
    shot(page, "alerting-integration-1280")

    # An alert policy for monitors going down, paging the same policy.
    page.goto(server.url + "/alerts/policies/new")
    page.fill("#policy-form input[name=name]", "Production")
    page.select_option("#policy-form select[name=c0_source]", "monitor")
    page.fill("#policy-form input[name=c0_events]", "down, cron_missed")
    # A second condition from the empty row: only its source's fields show, in its row only.
    page.select_option("#policy-form select[name=c1_source]", "errors")
    assert page.is_visible("input[name=c1_threshold]") and not page.is_visible("input[name=c1_nrql]")
    assert not page.is_visible("input[name=c0_threshold]")
    page.fill("input[name=c1_events]", "frequency")
    page.fill("input[name=c1_threshold]", "0")
    page.fill("input[name=c1_window_minutes]", "5")
    page.select_option("#policy-form select[name=escalation_policy_id]", label="Primary")
    submit(page, "#policy-form")
    assert "conditions[1]" in page.inner_text("#form-error")
    assert page.get_attribute("input[name=c1_threshold]", "aria-invalid") == "true"
    assert page.input_value("input[name=c0_events]") == "down, cron_missed"
    watched.problems[:] = [p for p in watched.problems if "422" not in p]
    shot(page, "alerting-policy-refused-1280")
    page.fill("input[name=c1_threshold]", "50")
    submit(page, "#policy-form")
    assert "/alerts/policies/" in page.url
    assert page.locator("fieldset.condition").count() == 3, "two conditions and the empty row"
    assert page.input_value("input[name=c1_threshold]") == "50"
    fits(page, "policy", 1280)
    shot(page, "alerting-policy-1280")

    # A runbook, deleted again after the confirmation.
    page.goto(server.url + "/alerts/runbooks/new")
    page.fill("#runbook-form input[name=name]", "Scratch")
    page.fill("#runbook-form textarea[name=body]", "# Scratch\n\nNothing yet.")
    submit(page, "#runbook-form")
    asked = []
    page.once("dialog", lambda d: (asked.append(d.message), d.accept()))
    with page.expect_navigation():
        page.click("#runbook-delete button")
    assert asked and "Delete this runbook" in asked[0], asked
    assert "Scratch" not in page.inner_text("main")
    page.goto(server.url + "/alerts")
    assert "Production" in page.inner_text("#policies")
    # Ben's hook switched off from the list carries a Disabled badge; switched on again.
    hook = page.locator("#channels tr", has_text="Ben's pager hook")
    with page.expect_navigation():
        hook.locator("button", has_text="Disable").click()
    assert "Disabled" in hook.inner_text()
    shot(page, "alerting-alerts-disabled-1280")
    with page.expect_navigation():
        hook.locator("button", has_text="Enable").click()
    assert "Disabled" not in hook.inner_text()
    shot(page, "alerting-alerts-1280")
    assert watched.problems == [], "\n".join(watched.problems)

    # Alertmanager pages: the on-call user (Ben, by the override) gets the webhook.
    alert = {"version": "4", "status": "firing", "receiver": "lookout", "groupKey": "{}:{alertname=\"CheckoutDown\"}",
             "groupLabels": {"alertname": "CheckoutDown"}, "commonLabels": {"alertname": "CheckoutDown", "severity": "critical"},
             "commonAnnotations": {"summary": "Checkout is down"}, "externalURL": "http://alertmanager:9093",
             "alerts": [{"status": "firing", "labels": {"alertname": "CheckoutDown", "severity": "critical"},
                         "annotations": {"summary": "Checkout is down", "description": "5xx on every request"},
                         "startsAt": "2026-01-01T00:00:00Z", "endsAt": "0001-01-01T00:00:00Z", "fingerprint": "c0ffee"}]}
    req = urllib.request.Request(url, data=json.dumps(alert).encode(), method="POST",
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=10) as r:
        assert 200 <= r.status < 300
    capture.wait_for("triggered")
    paged = next(g["json"] for g in capture.got if g["json"].get("event") == "triggered")
    incident = paged["incident"]["incident_id"]

    # Acknowledged from the incident page on a phone.
    phone = Watched(browser, viewport={"width": 390, "height": 844}, device_scale_factor=2, is_mobile=True, has_touch=True)
    try:
        p = phone.page
        log_in(p, server.url)
        p.goto(f"{server.url}/incidents/{incident}")
        fits(p, "incident", 390)
        with p.expect_navigation():
            p.click("#ack")
        assert p.inner_text("#incident-status") == "acknowledged"
        capture.wait_for("acknowledged")
        shot(p, "alerting-incident-390")
        for path, name in [(schedule_url, "schedule"), (server.url + "/alerts", "alerts"),
                           (server.url + "/alerts/channels/new", "channel"),
                           (server.url + "/alerts/integrations/1", "integration"),
                           (server.url + "/alerts/escalation-policies/new", "escalation"),
                           (server.url + "/alerts/policies/new", "policy"),
                           (server.url + "/alerts/policies/1", "policy-rows"),
                           (server.url + "/alerts/runbooks/new", "runbook")]:
            p.goto(path if path.startswith("http") else server.url + path)
            fits(p, path, 390)
            shot(p, f"alerting-{name}-390")
        assert phone.problems == [], "\n".join(phone.problems)
    finally:
        phone.close()
    events = capture.events()
    assert events.count("triggered") == 1 and events.count("acknowledged") == 1, events
