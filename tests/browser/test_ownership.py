"""Teams own things (and users decide how they are paged), in a real browser at desktop and phone widths: a monitor and an escalation
policy get their owning team from the forms' "Owning team" select, the lists show the team and
the "My teams" filter keeps only what the signed-in user's teams own, a team deleted while a form
is open is refused with the field marked and the typed values kept, and the Teams page says who
is on call now for the team through the schedule it owns."""

import os
import sys
import urllib.request

import pytest

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from browser_support import Watched  # noqa: E402
from test_ui import log_in, shot  # noqa: E402
from harness import ADMIN_TOKEN  # noqa: E402


def delete(server, path):
    """DELETE through the API as the admin (answers 204, which `server.api` cannot decode)."""
    req = urllib.request.Request(server.url + path, method="DELETE",
                                 headers={"Authorization": "Bearer " + ADMIN_TOKEN})
    with urllib.request.urlopen(req, timeout=10) as r:
        assert r.status == 204


def no_sideways_scroll(page, width, what):
    overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
    assert overflow <= 1, f"{what} scrolls sideways by {overflow}px at {width}px"


@pytest.mark.parametrize("width", [1280, 390])
def test_owning_team_in_forms_lists_filter_and_on_call_now(server, browser, width):
    team = server.api("/api/v1/teams", "POST", {"name": "Payments", "slug": "payments"})
    other = server.api("/api/v1/teams", "POST", {"name": "Search"})
    me = server.api("/api/v1/users?limit=10")["items"][0]
    # A schedule the team owns, with the admin on call since 2020, and one nobody owns.
    layer = {"start": "2020-01-01T00:00:00Z", "rotation_virtual_start": "2020-01-01T00:00:00Z",
             "rotation_turn_length_seconds": 86400, "users": [me["id"]]}
    server.api("/api/v1/schedules", "POST", {"name": "Payments primary", "time_zone": "UTC",
                                             "schedule_layers": [layer], "team_id": team["id"]})
    server.api("/api/v1/schedules", "POST", {"name": "Search primary", "time_zone": "UTC",
                                             "schedule_layers": [layer], "team_id": other["id"]})
    server.api("/api/v1/monitors", "POST", {"name": "Search index", "type": "tcp",
                                            "host": "127.0.0.1", "port": 1, "team_id": other["id"]})
    w = Watched(browser, viewport={"width": width, "height": 900})
    try:
        page = w.page
        log_in(page, server.url)
        # The admin joins Payments on the Teams page, which then says who is on call for it.
        page.goto(server.url + "/settings/teams")
        panel = page.locator(f"#team-{team['id']}")
        panel.locator("select[name=user_id]").select_option(label=me["email"])
        with page.expect_navigation():
            panel.locator("button", has_text="Add").click()
        now = page.locator(f"#team-{team['id']} .on-call-now").inner_text()
        assert "schedule Payments primary" in now, now
        assert "Search primary" not in now, now
        no_sideways_scroll(page, width, "the Teams page")
        shot(page, f"teams-on-call-now-{width}")

        # A monitor added with the Payments team chosen in the form.
        page.goto(server.url + "/uptime")
        if not page.is_visible("#m-name"):
            page.click("details:has(#new-monitor) summary")
        page.fill("#m-name", "Card API")
        page.select_option("#m-type", "tcp")
        page.fill("#m-target", "127.0.0.1:1")
        page.select_option("#team-select", label="Payments")
        with page.expect_navigation():
            page.click("#new-monitor button[type=submit]")
        assert "/uptime/monitors/" in page.url
        monitor_id = int(page.url.rstrip("/").split("/")[-1])
        assert server.api(f"/api/v1/monitors/{monitor_id}")["team_id"] == team["id"]

        # The list shows both monitors with their team; "My teams" keeps the admin's team's one.
        page.goto(server.url + "/uptime")
        assert page.locator("a.monitor-name").count() == 2
        assert "Team: Search" in page.locator("tr", has_text="Search index").inner_text()
        with page.expect_navigation():
            page.click("#my-teams")
        assert page.url.endswith("?team=mine")
        names = page.locator("a.monitor-name").all_inner_texts()
        assert names == ["Card API"], names
        assert page.locator("#my-teams").get_attribute("aria-current") == "page"
        no_sideways_scroll(page, width, "the filtered monitor list")
        shot(page, f"uptime-my-teams-{width}")

        # The edit form shows the stored owner.
        page.goto(f"{server.url}/uptime/monitors/{monitor_id}/edit")
        assert page.locator("#team-select option:checked").inner_text() == "Payments"

        # An escalation policy form whose chosen team is deleted before it is sent: refused
        # with the reason, the select marked, the typed name kept, nothing stored.
        doomed = server.api("/api/v1/teams", "POST", {"name": "Short lived"})
        page.goto(server.url + "/alerts/escalation-policies/new")
        page.fill("input[name=name]", "Payments night")
        page.locator("select[name=rule0_target]").select_option(label="User: " + (me.get("name") or me["email"]))
        page.select_option("#team-select", label="Short lived")
        delete(server, f"/api/v1/teams/{doomed['id']}")
        with page.expect_navigation():
            page.click("#escalation-form button[type=submit]")
        assert "team_id" in page.locator("#form-error").inner_text()
        assert page.locator("#team-select").get_attribute("aria-invalid") == "true"
        assert page.locator("input[name=name]").input_value() == "Payments night"
        assert server.api("/api/v1/escalation-policies")["items"] == []
        # Chosen again, it saves, and the Alerts list's "My teams" shows it and the team's
        # schedule but not the other team's.
        page.select_option("#team-select", label="Payments")
        with page.expect_navigation():
            page.click("#escalation-form button[type=submit]")
        policies = server.api("/api/v1/escalation-policies?team=payments")["items"]
        assert [p["name"] for p in policies] == ["Payments night"]
        page.goto(server.url + "/alerts?team=mine")
        assert page.locator("#escalation-policies tbody tr").count() == 1
        assert page.locator("#escalation-policies td.team").inner_text() == "Payments"
        schedules = page.locator("#schedules tbody").inner_text()
        assert "Payments primary" in schedules and "Search primary" not in schedules, schedules
        no_sideways_scroll(page, width, "the Alerts page")
        shot(page, f"alerts-my-teams-{width}")
        expected = ("/alerts/escalation-policies", "status of 422")
        assert [p for p in w.problems if not any(e in p for e in expected)] == [], w.problems
    finally:
        w.close()


@pytest.mark.parametrize("width", [1280, 390])
def test_notification_rules_on_the_account_page(server, browser, width):
    """Your account → How you are paged: a delay that is not a number comes back as typed with
    its row marked; fixed, the rules are saved and the API shows them."""
    me = server.api("/api/v1/users?limit=10")["items"][0]
    push = server.api("/api/v1/channels", "POST", {"name": "Phone push", "type": "ntfy",
                                                   "url": "http://127.0.0.1:9/alerts", "user_id": me["id"]})
    mail = server.api("/api/v1/channels", "POST", {"name": "Mail", "type": "webhook",
                                                   "url": "http://127.0.0.1:9/mail", "user_id": me["id"]})
    w = Watched(browser, viewport={"width": width, "height": 900})
    try:
        page = w.page
        log_in(page, server.url)
        page.goto(server.url + "/account")
        form = page.locator("#rules-form")
        form.locator("select[name=high0_channel]").select_option(label="Phone push (ntfy)")
        form.locator("input[name=high0_delay]").fill("0")
        form.locator("select[name=high1_channel]").select_option(label="Mail (webhook)")
        form.locator("input[name=high1_delay]").fill("soon")
        with page.expect_navigation():
            form.locator("button[type=submit]").click()
        assert "high[1].delay_minutes" in page.locator("[role=alert]").inner_text()
        assert page.locator("input[name=high1_delay]").input_value() == "soon"
        assert page.locator("input[name=high1_delay]").get_attribute("aria-invalid") == "true"
        page.locator("input[name=high1_delay]").fill("5")
        with page.expect_navigation():
            page.locator("#rules-form button[type=submit]").click()
        assert "Notification rules saved" in page.inner_text("main")
        rules = server.api(f"/api/v1/users/{me['id']}/notification-rules")
        assert rules["high"] == [{"channel_id": push["id"], "delay_minutes": 0},
                                 {"channel_id": mail["id"], "delay_minutes": 5}], rules
        assert rules["low"] == []
        # The saved rows come back, with one empty row to add another.
        assert page.locator("select[name=high1_channel] option:checked").inner_text() == "Mail (webhook)"
        assert page.locator("select[name=high2_channel] option:checked").inner_text() == "—"
        assert page.locator("select[name=low0_channel] option:checked").inner_text() == "—"
        page.locator("#notification-rules").scroll_into_view_if_needed()
        no_sideways_scroll(page, width, "the account page")
        shot(page, f"account-notification-rules-{width}")
        expected = ("/account/notification-rules", "status of 422")
        assert [p for p in w.problems if not any(e in p for e in expected)] == [], w.problems
    finally:
        w.close()
