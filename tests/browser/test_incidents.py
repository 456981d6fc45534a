"""The Incidents, On-call and Alerts pages in a real browser: an incident paged through the
PagerDuty Events API shows up, is acknowledged and resolved from its page with its runbook and
checklist, the on-call page says who is on call and takes an override, and the Alerts page lists
the configuration."""

import json
import os
import sys
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from test_ui import log_in, shot  # noqa: E402


def enqueue(server, body):
    req = urllib.request.Request(server.url + "/v2/enqueue", data=json.dumps(body).encode(),
                                 headers={"Content-Type": "application/json"}, method="POST")
    with urllib.request.urlopen(req, timeout=10) as r:
        assert r.status == 202


def test_incident_page_on_call_and_alerts(server, watched, browser):
    me = next(u["id"] for u in server.api("/api/v1/users")["items"] if u["email"] == "admin@example.com")
    other = server.api("/api/v1/users", "POST", {"email": "bo@example.com", "password": "correct horse battery",
                                                 "role": "member"})["id"]
    sched = server.api("/api/v1/schedules", "POST", {
        "name": "Primary", "time_zone": "Europe/Berlin",
        "schedule_layers": [{"start": "2020-01-01T00:00:00Z", "rotation_virtual_start": "2020-01-06T09:00:00+01:00",
                             "rotation_turn_length_seconds": 604800, "users": [other]}]})
    rb = server.api("/api/v1/runbooks", "POST", {
        "name": "Checkout down", "body": "# Checkout down\n\nRestart the **payment** worker.\n\n- [ ] Check the queue\n- [ ] Restart workers\n<script>alert(1)</script>\n"})
    ep = server.api("/api/v1/escalation-policies", "POST", {
        "name": "Primary", "escalation_rules": [
            {"escalation_delay_in_minutes": 10, "targets": [{"type": "schedule", "id": sched["id"]}]}]})
    integ = server.api("/api/v1/integrations", "POST", {
        "name": "monitoring", "type": "pagerduty", "escalation_policy_id": ep["id"], "runbook_id": rb["id"],
        "service": "checkout"})
    enqueue(server, {"routing_key": integ["key"], "event_action": "trigger", "dedup_key": "co-1",
                     "payload": {"summary": "Checkout returns 502", "source": "lb-1", "severity": "critical"}})

    page = watched.page
    log_in(page, server.url)
    page.goto(server.url + "/incidents")
    assert "Checkout returns 502" in page.inner_text("#incidents")
    shot(page, "incidents")
    page.click("text=Checkout returns 502")
    assert page.inner_text("#incident-status") == "triggered"
    # The runbook is rendered from Markdown, with raw HTML shown as text, not run.
    assert page.locator("#runbook strong").inner_text() == "payment"
    assert "<script>" in page.inner_text("#runbook")
    with page.expect_navigation():
        page.click("button.tick[data-item='1']")
    assert "Ticked checklist item: Restart workers" in page.inner_text("#timeline")
    with page.expect_navigation():
        page.click("#ack")
    assert page.inner_text("#incident-status") == "acknowledged"
    page.fill("#note", "payment worker restarted")
    with page.expect_navigation():
        page.click("text=Add note")
    with page.expect_navigation():
        page.click("#resolve")
    assert page.inner_text("#incident-status") == "resolved"
    timeline = page.inner_text("#timeline")
    for needle in ["triggered", "acknowledged", "payment worker restarted", "resolved"]:
        assert needle in timeline, needle
    assert "# Postmortem: Checkout returns 502" in page.inner_text("#postmortem")
    shot(page, "incident")

    # On-call: the first user of the layer is on call; an override puts the other in.
    page.goto(server.url + "/on-call")
    assert page.inner_text(".schedule .now") == "bo@example.com"
    page.click(".schedule details summary")
    page.select_option(".schedule select[name=user]", str(me))
    # Date-time pickers read in the schedule's zone (Europe/Berlin), not RFC 3339 text.
    assert "Europe/Berlin" in page.inner_text(".schedule form")
    page.fill(".schedule input[name=start]", "2020-01-01T00:00")
    page.fill(".schedule input[name=end]", "2099-01-01T00:00")
    with page.expect_navigation():
        page.click(".schedule form button")
    page.goto(server.url + "/on-call")
    assert page.inner_text(".schedule .now") != "bo@example.com"
    # Shifts read in the schedule's zone.
    assert "CET" in page.inner_text(".schedule .spans") or "CEST" in page.inner_text(".schedule .spans")
    assert page.locator("#my-shifts tr").count() >= 1
    shot(page, "on-call")

    page.goto(server.url + "/alerts")
    assert "monitoring" in page.inner_text("#integrations")
    assert "/v2/enqueue" in page.inner_text("#integrations")
    assert "Primary" in page.inner_text("#escalation-policies")
    assert watched.problems == [], "\n".join(watched.problems)
