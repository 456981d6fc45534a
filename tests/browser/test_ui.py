"""The web UI in a real browser: login, every navigation entry, setup, settings, phone layout."""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from browser_support import Watched  # noqa: E402
from harness import ADMIN_EMAIL, ADMIN_PASSWORD  # noqa: E402

SHOTS = os.environ.get("LOOKOUT_SCREENSHOTS")


def shot(page, name):
    if SHOTS:
        os.makedirs(SHOTS, exist_ok=True)
        page.screenshot(path=os.path.join(SHOTS, name + ".png"), full_page=True)


def log_in(page, base):
    page.goto(base + "/")
    assert page.url.startswith(base + "/login"), page.url
    page.fill("input[name=email]", ADMIN_EMAIL)
    page.fill("input[name=password]", ADMIN_PASSWORD)
    with page.expect_navigation():
        page.click("button[type=submit]")
    page.wait_for_url(base + "/")


def test_login_and_every_navigation_entry_loads_cleanly(server, watched):
    page = watched.page
    log_in(page, server.url)
    links = page.eval_on_selector_all("nav.side a", "els => els.map(e => [e.textContent.trim(), e.getAttribute('href')])")
    labels = [l for l, _ in links]
    for expected in ["Errors", "Performance", "Uptime", "Incidents", "On-call", "Alerts", "Dashboards",
                     "Load tests", "Regressions", "Databases", "Backups", "Settings"]:
        assert expected in labels, f"navigation lacks {expected}: {labels}"
    for label, href in links:
        resp = page.goto(server.url + href)
        assert resp.status < 400, f"{label} answered {resp.status}"
        assert page.locator("h1").first.inner_text().strip() == label, f"{href} shows the wrong page"
        current = page.get_attribute("nav.side a[aria-current=page]", "href")
        assert current == href
        shot(page, "nav-" + href.strip("/").replace("/", "-") or "overview")
    assert watched.problems == [], "\n".join(watched.problems)


def test_wrong_password_is_refused_and_logout_ends_the_session(server, browser):
    w = Watched(browser)
    page = w.page
    page.goto(server.url + "/login")
    page.fill("input[name=email]", ADMIN_EMAIL)
    page.fill("input[name=password]", "not the password")
    with page.expect_navigation():
        page.click("button[type=submit]")
    assert "Wrong email or password" in page.inner_text("[role=alert]")
    page.fill("input[name=password]", ADMIN_PASSWORD)
    with page.expect_navigation():
        page.click("button[type=submit]")
    page.wait_for_url(server.url + "/")
    page.click("text=Log out")
    page.wait_for_url(server.url + "/login")
    page.goto(server.url + "/settings")
    assert page.url.startswith(server.url + "/login"), "settings reachable after logout"
    w.close()


def test_first_visit_creates_the_first_admin(fresh_server, watched):
    page = watched.page
    page.goto(fresh_server.url + "/")
    assert page.url == fresh_server.url + "/setup"
    page.fill("input[name=email]", "first@example.com")
    page.fill("input[name=password]", "a long password")
    with page.expect_navigation():
        page.click("button[type=submit]")
    page.wait_for_url(fresh_server.url + "/")
    assert "first@example.com" in page.inner_text("header")
    # The DSN of the default project is on the overview, ready to paste into an SDK.
    dsn = page.inner_text("#dsn code")
    assert dsn.startswith("http://") and dsn.endswith("/1") and len(dsn.split("@")[0].split("//")[1]) == 32
    # Setup is closed once an admin exists.
    page.goto(fresh_server.url + "/setup")
    assert page.url.startswith(fresh_server.url + "/login")
    assert watched.problems == [], "\n".join(watched.problems)


def test_settings_create_project_switch_to_it_and_mint_a_token(server, watched):
    page = watched.page
    log_in(page, server.url)
    page.goto(server.url + "/settings")
    page.fill("#pname", "Checkout API")
    with page.expect_navigation():
        page.click("form[action='/settings/projects'] button")
    assert "Project Checkout API created." in page.inner_text("[role=status]")
    assert "checkout-api" in page.inner_text("main")
    # Switch project from the header; the overview follows.
    page.goto(server.url + "/")
    # Choosing a project submits the switcher (app.js); wait for that navigation to land.
    with page.expect_navigation(url=server.url + "/"):
        page.select_option("select[name=project]", label="Checkout API")
    assert page.inner_text("#dsn h2").strip() == "Checkout API"
    # A token is shown once and works against the API.
    page.goto(server.url + "/settings")
    page.fill("#tname", "ci")
    page.select_option("#trole", "viewer")
    with page.expect_navigation():
        page.click("form[action='/settings/tokens'] button")
    token = page.inner_text("[role=status] code")
    assert token.startswith("lk_")
    api = page.request.get(server.url + "/api/v1/me", headers={"Authorization": "Bearer " + token})
    assert api.status == 200 and api.json()["role"] == "viewer"
    with page.expect_navigation():
        page.click("tr:has(td:text-is('ci')) form[action$='/revoke'] button")
    assert "Token ci revoked." in page.inner_text("[role=status]")
    api = page.request.get(server.url + "/api/v1/me", headers={"Authorization": "Bearer " + token})
    assert api.status == 401
    watched.problems = [p for p in watched.problems if "/api/v1/me" not in p]  # the 401 above is expected
    shot(page, "settings")
    assert watched.problems == [], "\n".join(watched.problems)


def test_overview_says_what_is_broken_and_activity_charts_have_tooltips(server, watched):
    page = watched.page
    log_in(page, server.url)
    # Record a deploy through the API with the session's CSRF token, as the UI's own scripts would.
    csrf = page.get_attribute("input[name=csrf]", "value")
    r = page.request.post(server.url + "/api/v1/projects/1/markers", headers={"X-CSRF-Token": csrf},
                          data={"title": "Deploy 1.4.2", "version": "1.4.2"})
    assert r.status == 201, r.text()
    no_csrf = page.request.post(server.url + "/api/v1/projects/1/markers", data={"title": "x"})
    assert no_csrf.status == 403 and no_csrf.json()["error"]["code"] == "csrf_failed"
    watched.problems = [p for p in watched.problems if "/markers" not in p]
    page.goto(server.url + "/")
    assert "Deploy 1.4.2" in page.inner_text("#deploys")
    assert page.locator("#deploys time").get_attribute("title"), "relative time with the absolute on hover"
    assert "Nothing is broken" in page.inner_text("#status-line")
    shot(page, "overview")
    # The event feed and its charts are on the Activity page.
    page.click("text=Activity")
    page.wait_for_url(server.url + "/activity")
    assert page.locator("figure.chart svg").count() == 2
    assert page.locator("figure.chart path.line").count() >= 1
    point = page.locator("figure.chart circle.pt").last  # drawn last, so on top
    point.hover()
    assert page.locator("#tip").is_visible()
    tip = page.inner_text("#tip")
    assert tip == point.get_attribute("data-tip") and " UTC · " in tip, tip
    kinds = page.inner_text("figure.chart ul.legend")
    assert "marker.created" in kinds and "project.created" in kinds, kinds
    assert "marker.created" in page.inner_text("#events")
    shot(page, "activity")
    assert watched.problems == [], "\n".join(watched.problems)


def test_pages_fit_a_phone_screen(server, browser):
    w = Watched(browser, viewport={"width": 390, "height": 844}, device_scale_factor=2, is_mobile=True, has_touch=True)
    page = w.page
    log_in(page, server.url)
    for path in ["/", "/activity", "/settings", "/errors"]:
        page.goto(server.url + path)
        overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
        assert overflow <= 1, f"{path} scrolls sideways by {overflow}px on a phone"
        nav = page.locator("nav.side").bounding_box()
        assert nav and nav["height"] < 80, f"{path}: the navigation takes {nav} on a phone"
        shot(page, "phone" + path.replace("/", "-"))
    assert w.problems == [], "\n".join(w.problems)
    w.close()


def test_errors_list_issue_page_and_resolve(server, watched, tmp_path):
    """An error sent with the real Python SDK appears in the list; its page shows the stack trace
    with in-app frames and context lines; Resolve changes its status."""
    import subprocess
    import sys as _sys
    script = (
        "import sentry_sdk, sys\n"
        "sentry_sdk.init(dsn=sys.argv[1], release='shop@1.0', environment='prod')\n"
        "def charge(amount):\n"
        "    ratio = amount / 0\n"
        "    return ratio\n"
        "try:\n"
        "    charge(5)\n"
        "except Exception:\n"
        "    sentry_sdk.capture_exception()\n"
        "sentry_sdk.flush()\n"
    )
    # A real file, run from its own directory as an app would be: the SDK reads the source
    # lines it sends as context, and marks frames under its working directory as in-app.
    app = tmp_path / "shop.py"
    app.write_text(script)
    subprocess.run([_sys.executable, str(app), server.dsn], check=True, timeout=60, cwd=tmp_path)
    server.wait_issues(lambda i: len(i) == 1)
    page = watched.page
    log_in(page, server.url)
    page.goto(server.url + "/errors")
    row = page.locator("table.issues a.issue-title")
    assert row.inner_text() == "ZeroDivisionError: division by zero"
    assert page.locator("table.issues svg.spark rect").count() == 24
    page.fill("#q", "nothing-matches-this")
    with page.expect_navigation():
        page.click("form.filters button")
    assert "No issue matches these filters." in page.inner_text("main")
    page.goto(server.url + "/errors?release=shop@1.0&new=1")
    assert page.locator("table.issues a.issue-title").count() == 1, "new in shop@1.0"
    assert page.is_checked("#new")
    page.goto(server.url + "/errors?release=nope@9&new=1")
    assert "No issue matches these filters." in page.inner_text("main")
    page.goto(server.url + "/errors?environment=prod")
    with page.expect_navigation():
        page.click("table.issues a.issue-title")
    assert "ZeroDivisionError" in page.inner_text("h1")
    top = page.locator("li.frame.in-app").first
    assert "charge" in top.inner_text() and "ratio = amount / 0" in top.locator("pre.ctx .hl").inner_text()
    assert page.locator("li.frame.in-app").count() >= 2
    assert "shop@1.0" in page.inner_text("aside")
    issue_url = page.url
    shot(page, "issue")
    with page.expect_navigation():
        page.click("form[action$='/status'] button:text-is('Resolve')")
    assert "resolved" in page.inner_text(".stats")
    page.goto(server.url + "/errors")
    assert "No issue matches" in page.inner_text("main"), "a resolved issue must leave the default list"
    # Project settings carry copy-paste SDK setup with the project's DSN.
    page.goto(server.url + "/settings")
    snippets = page.locator("details.snippets").first.text_content()
    assert server.dsn in snippets and "sentry_sdk.init" in snippets and "@sentry/node" in snippets and "sentry::init" in snippets
    assert watched.problems == [], "\n".join(watched.problems)
