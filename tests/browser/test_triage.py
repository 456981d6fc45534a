"""Triage in a real browser, at desktop and phone widths: an error sent with the real Python SDK
is assigned to a team from the issue page, commented on (an empty comment comes back with the
reason and the field marked), and found again with the "My teams" and "Unassigned" filters."""

import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from browser_support import Watched, python_errors  # noqa: E402
from test_ui import log_in, shot  # noqa: E402


@pytest.mark.parametrize("width", [1280, 390])
def test_assign_and_comment_from_the_issue_page(server, browser, tmp_path, width):
    python_errors(server.dsn, tmp_path, "{}['missing']")
    issue = server.wait_issues(lambda i: len(i) == 1)[0]
    team = server.api("/api/v1/teams", "POST", {"name": "Payments"})
    me = server.api("/api/v1/users?limit=10")["items"][0]
    w = Watched(browser, viewport={"width": width, "height": 900})
    try:
        page = w.page
        log_in(page, server.url)
        # The admin joins the team through the Teams page.
        page.goto(server.url + "/settings/teams")
        panel = page.locator(f"#team-{team['id']}")
        panel.locator("select[name=user_id]").select_option(label=me["email"])
        with page.expect_navigation():
            panel.locator("button", has_text="Add").click()
        assert me["email"] in page.locator(f"#team-{team['id']}").inner_text()

        page.goto(f"{server.url}/errors/issues/{issue['id']}")
        assert page.locator("#assignee").inner_text() == "Unassigned"
        page.select_option("#assigned_to", value=f"team:{team['id']}")
        with page.expect_navigation():
            page.click("#assign-form button[type=submit]")
        assert page.locator("#assignee").inner_text() == "#payments"
        assert "assigned it to #payments" in page.locator("ol.activity").inner_text()

        # An empty comment is refused with the reason, the field marked.
        page.fill("#comment-text", "   ")
        with page.expect_navigation():
            page.click("#comment-form button[type=submit]")
        assert "text: write something" in page.locator("#comment-error").inner_text()
        assert page.locator("#comment-text").get_attribute("aria-invalid") == "true"
        page.fill("#comment-text", "Card service timed out; retrying")
        with page.expect_navigation():
            page.click("#comment-form button[type=submit]")
        comment = page.locator("ol.activity blockquote.comment").last
        assert comment.locator("p").inner_text() == "Card service timed out; retrying"
        assert server.api(f"/api/v1/issues/{issue['id']}")["assignedTo"]["name"] == "payments"
        overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
        assert overflow <= 1, f"the issue page scrolls sideways by {overflow}px at {width}px"
        shot(page, f"issue-triage-{width}")

        # The list's quick filters.
        page.goto(server.url + "/errors")
        with page.expect_navigation():
            page.click("#f-teams")
        assert page.locator("table.issues a.issue-title").count() == 1
        assert page.locator("table.issues .badge.assignee").inner_text() == "#payments"
        with page.expect_navigation():
            page.click("#f-unassigned")
        assert page.locator("table.issues a.issue-title").count() == 0
        # Only the refused comment answered >= 400 (and the console said so).
        expected = ("/comments", "status of 422")
        assert [p for p in w.problems if not any(e in p for e in expected)] == [], w.problems
    finally:
        w.close()
