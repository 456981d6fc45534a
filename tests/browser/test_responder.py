"""The incident page serves a responder, on a phone: an Alertmanager alert pages an escalation
policy; at 390 px the list acknowledges it in bulk, and its page shows the alert's description,
labels, runbook and generator links, a link to its service, who was paged through which channel,
and the escalation level, without scrolling sideways. At 1280 and 390 px a responder reassigns,
asks another team to respond, snoozes and merges from the page."""

import json
import os
import re
import sys
import urllib.request

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from browser_support import Watched  # noqa: E402
from test_ui import log_in, shot  # noqa: E402
from harness import ADMIN_TOKEN  # noqa: E402


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


def set_name(server, uid, name):
    req = urllib.request.Request(f"{server.url}/api/v1/users/{uid}/name", method="PUT",
                                 data=json.dumps({"name": name}).encode(),
                                 headers={"Authorization": "Bearer " + ADMIN_TOKEN,
                                          "Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=10) as r:
        assert r.status == 204, r.status


def person(server, email, name):
    uid = server.api("/api/v1/users", "POST", {"email": email, "password": "correct horse battery",
                                               "role": "member"})["id"]
    set_name(server, uid, name)
    server.api("/api/v1/channels", "POST", {"name": "pager", "type": "webhook", "user_id": uid,
                                            "url": "http://127.0.0.1:9/hook"})
    return uid


def open_menu(page, which):
    page.click(f"#{which}-menu > summary")
    assert page.locator(f"#{which}-menu").get_attribute("open") is not None


@pytest.mark.parametrize("width,height", [(1280, 900), (390, 844)])
def test_a_responder_reassigns_asks_for_help_snoozes_and_merges_from_the_page(server, browser, width, height):
    alice = person(server, "alice@example.com", "Alice Adams")
    carol = person(server, "carol@example.com", "Carol Chen")
    primary = server.api("/api/v1/escalation-policies", "POST", {
        "name": "Checkout on call", "escalation_rules": [
            {"escalation_delay_in_minutes": 15, "targets": [{"type": "user", "id": alice}]}]})
    server.api("/api/v1/escalation-policies", "POST", {
        "name": "Database team", "escalation_rules": [
            {"escalation_delay_in_minutes": 15, "targets": [{"type": "user", "id": carol}]}]})
    target = server.api("/api/v1/incidents", "POST", {
        "title": "Checkout errors above 5 %", "severity": "critical", "dedup_key": "checkout-5xx",
        "escalation_policy_id": primary["id"]})
    other = server.api("/api/v1/incidents", "POST", {
        "title": "Checkout latency above 2 s", "severity": "error", "dedup_key": "checkout-p99"})

    phone = width < 600
    w = Watched(browser, viewport={"width": width, "height": height}, device_scale_factor=2 if phone else 1,
                is_mobile=phone, has_touch=phone)
    page = w.page
    log_in(page, server.url)
    page.goto(f"{server.url}/incidents/{target['id']}")
    no_sideways_scroll(page, "the incident page with its actions")

    # Reassign to a person, chosen by name.
    open_menu(page, "reassign")
    page.select_option("#reassign-target", label="Carol Chen")
    with page.expect_navigation():
        page.click("#reassign")
    assert "Carol Chen" in page.inner_text("#assignee")
    assert "Reassigned to Carol Chen" in page.inner_text("#timeline")

    # Ask another team to respond, with a message; the incident stays with Carol.
    open_menu(page, "responder")
    page.select_option("#responder-target", label="Database team")
    page.fill("#responder-message", "Is the primary database healthy?")
    with page.expect_navigation():
        page.click("#add-responder")
    responders = page.inner_text("#responders")
    assert "Database team" in responders and "Is the primary database healthy?" in responders, responders
    assert "Carol Chen via pager (webhook)" in responders, responders
    assert "Carol Chen" in page.inner_text("#assignee")

    # Snooze for a custom length: acknowledged, with the end relative and absolute on hover.
    open_menu(page, "snooze")
    page.select_option("#snooze-duration", "custom")
    page.fill("#snooze-custom", "90")
    with page.expect_navigation():
        page.click("#snooze")
    assert page.inner_text("#incident-status") == "acknowledged"
    snoozed = page.locator("#snoozed-until")
    assert "Snoozed until in 1 h" in snoozed.inner_text(), snoozed.inner_text()
    assert "UTC" in snoozed.locator("time").get_attribute("title")

    # Merge the other incident into this one.
    open_menu(page, "merge")
    page.check(f"#merge-sources input[value='{other['id']}']")
    with page.expect_navigation():
        page.click("#merge")
    assert f"#{other['id']}" in page.inner_text("#merged-from")
    timeline = page.inner_text("#timeline")
    assert f"Merged in #{other['id']}" in timeline, timeline
    assert "user:" not in timeline, timeline
    assert re.search(r"\d{4}-\d\d-\d\dT\d\d:", timeline) is None, "times read relative: " + timeline
    assert page.locator("#timeline time").count() > 0
    no_sideways_scroll(page, "the incident page after every action")
    shot(page, f"incident-actions-{width}")

    page.goto(f"{server.url}/incidents/{other['id']}")
    assert page.inner_text("#incident-status") == "resolved"
    assert f"#{target['id']}" in page.inner_text("#merged-into")
    assert w.problems == [], "\n".join(w.problems)
    w.close()
