"""The Errors list's bulk action and comment mentions in a real browser, at desktop and phone
widths: two errors sent with the real Python SDK are ticked on the list and assigned to a team
at once; a comment mentioning the team, a user and somebody unknown shows the first two as
links, and the team's link lists what is assigned to it."""

import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from browser_support import Watched, python_errors  # noqa: E402
from test_ui import log_in, shot  # noqa: E402


@pytest.mark.parametrize("width", [1280, 390])
def test_tick_issues_assign_them_and_mention_the_team(server, browser, tmp_path, width):
    python_errors(server.dsn, tmp_path, "{}['missing']", "1 / 0")
    issues = server.wait_issues(lambda i: len(i) == 2)
    team = server.api("/api/v1/teams", "POST", {"name": "Payments"})
    me = server.api("/api/v1/users?limit=10")["items"][0]
    w = Watched(browser, viewport={"width": width, "height": 900})
    try:
        page = w.page
        log_in(page, server.url)
        page.goto(server.url + "/errors")
        for i in issues:
            page.check(f"tr[data-issue='{i['id']}'] input[name=id]")
        page.select_option("#bulk-to", value=f"team:{team['id']}")
        overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
        assert overflow <= 1, f"the list scrolls sideways by {overflow}px at {width}px"
        shot(page, f"errors-bulk-assign-{width}")
        with page.expect_navigation():
            page.click("#bulk-assign")
        assert page.url.startswith(server.url + "/errors")
        badges = page.locator("table.issues .badge.assignee")
        assert badges.count() == 2
        assert {b.inner_text() for b in badges.all()} == {"#payments"}
        for i in issues:
            assert server.api(f"/api/v1/issues/{i['id']}")["assignedTo"]["name"] == "payments"
        # Nothing ticked: the list says so instead of changing anything, and keeps the chosen
        # assignee so ticking and sending again is all it takes.
        page.select_option("#bulk-to", value=f"team:{team['id']}")
        with page.expect_navigation():
            page.click("#bulk-assign")
        assert "ids: tick at least one issue" in page.locator("#bulk-error").inner_text()
        assert page.locator("#bulk-to").input_value() == f"team:{team['id']}"
        page.go_back()

        # A comment's mentions: the team and the user are links, somebody unknown stays text.
        local = me["email"].split("@")[0]
        page.goto(f"{server.url}/errors/issues/{issues[0]['id']}")
        page.fill("#comment-text", f"#payments and @{local}: please look. Not @ghost.")
        with page.expect_navigation():
            page.click("#comment-form button[type=submit]")
        comment = page.locator("ol.activity blockquote.comment").last
        assert comment.locator("p").inner_text() == f"#payments and @{local}: please look. Not @ghost."
        links = comment.locator("a.mention")
        assert [a.inner_text() for a in links.all()] == ["#payments", f"@{local}"]
        overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
        assert overflow <= 1, f"the issue page scrolls sideways by {overflow}px at {width}px"
        shot(page, f"issue-mentions-{width}")
        with page.expect_navigation():
            links.first.click()
        assert page.locator("#q").input_value() == "assigned:#payments"
        assert page.locator("table.issues a.issue-title").count() == 2
        # Only the empty bulk action answered >= 400 (and the console said so).
        expected = ("/errors/assign", "status of 422")
        assert [p for p in w.problems if not any(e in p for e in expected)] == [], w.problems
    finally:
        w.close()
