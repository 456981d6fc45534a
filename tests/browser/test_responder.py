"""The incident page serves a responder, on a phone: an Alertmanager alert pages an escalation
policy; at 390 px the list acknowledges it in bulk, and its page shows the alert's description,
labels, runbook and generator links, a link to its service, who was paged through which channel,
and the escalation level, without scrolling sideways."""

import json
import os
import sys
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from browser_support import Watched  # noqa: E402
from test_ui import log_in, shot  # noqa: E402


def post_json(url, body):
    req = urllib.request.Request(url, data=json.dumps(body).encode(),
                                 headers={"Content-Type": "application/json"}, method="POST")
    with urllib.request.urlopen(req, timeout=10) as r:
        assert r.status < 300, r.status


def no_sideways_scroll(page, what):
    overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
    assert overflow <= 1, f"{what} scrolls sideways by {overflow}px on a phone"


def test_a_responder_acknowledges_an_alertmanager_incident_on_a_phone(server, browser):
    ch = server.api("/api/v1/channels", "POST", {"name": "ops-hook", "type": "webhook",
                                                 "url": "http://127.0.0.1:9/hook"})
    ep = server.api("/api/v1/escalation-policies", "POST", {
        "name": "Payments on call", "escalation_rules": [
            {"escalation_delay_in_minutes": 15, "targets": [{"type": "channel", "id": ch["id"]}]}]})
    integ = server.api("/api/v1/integrations", "POST", {
        "name": "prometheus-phone", "type": "alertmanager", "escalation_policy_id": ep["id"],
        "service": "payments"})
    alert = {"status": "firing", "labels": {"alertname": "PaymentsLatencyHigh", "severity": "critical",
                                            "instance": "pay-1:9100", "team": "payments"},
             "annotations": {"summary": "Payments p99 above 2 s",
                             "description": "p99 latency of POST /pay has been above 2 s for 10 minutes",
                             "runbook_url": "https://wiki.example.com/runbooks/payments-latency"},
             "startsAt": "2026-12-06T10:00:00Z",
             "generatorURL": "http://prometheus.example.com/graph?g0.expr=latency",
             "fingerprint": "a1b2c3d4e5f60718"}
    post_json(integ["url"], {"version": "4", "status": "firing", "receiver": "lookout",
                             "groupKey": "{}:{alertname=\"PaymentsLatencyHigh\"}",
                             "commonLabels": {"alertname": "PaymentsLatencyHigh"},
                             "alerts": [alert]})

    w = Watched(browser, viewport={"width": 390, "height": 844}, device_scale_factor=2,
                is_mobile=True, has_touch=True)
    page = w.page
    log_in(page, server.url)
    # The overview answers "is anything broken?" first.
    assert "1 high-urgency incident" in page.inner_text("#status-line")
    assert "Payments p99 above 2 s" in page.inner_text("#open-incidents")
    no_sideways_scroll(page, "the overview")
    shot(page, "phone-overview-incident")
    page.goto(server.url + "/incidents?status=triggered")
    row = page.locator("#incidents tr", has_text="Payments p99 above 2 s")
    assert row.count() == 1, page.inner_text("#incidents")
    # Opened times read relative, with the absolute time on hover.
    assert row.locator("time").get_attribute("title")
    no_sideways_scroll(page, "the incident list")
    shot(page, "phone-incidents")
    row.locator("input[type=checkbox]").check()
    with page.expect_navigation():
        page.click("#bulk-ack")
    row = page.locator("#incidents tr", has_text="Payments p99 above 2 s")
    assert row.locator(".badge").first.inner_text() == "acknowledged"

    with page.expect_navigation():
        row.locator("a").first.click()
    assert page.inner_text("#incident-status") == "acknowledged"
    assert "above 2 s for 10 minutes" in page.inner_text("#alert-description")
    labels = page.inner_text("#alert-labels")
    assert "team=payments" in labels and "instance=pay-1:9100" in labels, labels
    assert page.get_attribute("#alert-runbook", "href") == "https://wiki.example.com/runbooks/payments-latency"
    assert page.locator("#alert-links a").first.get_attribute("href").startswith("http://prometheus.example.com/")
    assert page.locator("#alert-sources a", has_text="Service payments").count() == 1
    escalation = page.inner_text("#escalation")
    assert "Payments on call" in escalation and "level 1 of 1" in escalation, escalation
    assert "ops-hook (webhook)" in page.inner_text("#pages")
    assert "triggers again" in page.inner_text("#ack-until")
    timeline = page.inner_text("#timeline")
    assert "admin@example.com" in timeline, timeline
    no_sideways_scroll(page, "the incident page")
    shot(page, "phone-incident")
    with page.expect_navigation():
        page.click("#resolve")
    assert page.inner_text("#incident-status") == "resolved"
    no_sideways_scroll(page, "the resolved incident page")
    assert w.problems == [], "\n".join(w.problems)
    w.close()
