"""Identity in a real browser: an admin invites a colleague from Settings (no password typed),
the colleague opens the link, chooses a name and password and is signed in, turns on two-factor
sign-in from their account page with a code computed by PyOTP, signs out and back in with a
fresh code; the admin sees both sign-ins in the audit log. No console error or failed request
on the way."""

import os
import sys
import time

import pyotp
import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from browser_support import Watched  # noqa: E402
from test_ui import log_in, shot  # noqa: E402


def test_an_invited_colleague_joins_and_signs_in_with_a_second_factor(server, watched, browser):
    admin = watched.page
    admin.set_viewport_size({"width": 1280, "height": 900})
    log_in(admin, server.url)
    admin.goto(server.url + "/settings")
    admin.fill("#uemail", "grace@example.com")
    admin.fill("#uname", "Grace")
    admin.select_option("#urole", "member")
    with admin.expect_navigation():
        admin.click("text=Invite or create")
    notice = admin.inner_text("#new-invite")
    assert "grace@example.com" in notice and "send them this link yourself" in notice, notice
    link = admin.inner_text("#new-invite code")
    assert link.startswith(server.url + "/invite/"), link
    assert "grace@example.com" in admin.inner_text("#invitations")
    shot(admin, "identity-invited")

    grace = Watched(browser, viewport={"width": 1280, "height": 900})
    try:
        page = grace.page
        page.goto(link)
        assert page.input_value("#email") == "grace@example.com"
        assert page.input_value("#name") == "Grace"
        page.fill("#name", "Grace Hopper")
        page.fill("#password", "cobol forever")
        with page.expect_navigation():
            page.click("button[type=submit]")
        page.wait_for_url(server.url + "/")
        assert "grace@example.com" in page.inner_text("#account-link")

        # Two-factor from the account page: the QR code, a code from the app, recovery codes.
        with page.expect_navigation():
            page.click("#account-link")
        assert page.input_value("#pname") == "Grace Hopper"
        page.fill("#tpass", "cobol forever")
        with page.expect_navigation():
            page.click("#two-factor button[type=submit]")
        assert page.locator("#totp-qr svg").is_visible()
        secret = page.inner_text("#totp-secret").strip()
        page.fill("#code", pyotp.TOTP(secret).now())
        with page.expect_navigation():
            page.click("text=Turn on")
        assert page.locator("#recovery-codes li").count() == 10
        shot(page, "identity-recovery-codes")

        # Out and in again: password, then a code (the next step's: the last one is spent).
        with page.expect_navigation():
            page.click("text=Log out")
        page.fill("input[name=email]", "grace@example.com")
        page.fill("input[name=password]", "cobol forever")
        with page.expect_navigation():
            page.click("button[type=submit]")
        assert page.url == server.url + "/login", page.url
        assert "authenticator app" in page.inner_text("main")
        page.fill("#code", pyotp.TOTP(secret).at(time.time() + 30))
        with page.expect_navigation():
            page.click("button[type=submit]")
        page.wait_for_url(server.url + "/")
        assert not grace.problems, grace.problems
    finally:
        grace.close()

    admin.goto(server.url + "/settings")
    with admin.expect_navigation():
        admin.click("#audit-link")
    admin.fill("#aactor", "grace@")
    with admin.expect_navigation():
        admin.click("text=Filter")
    log = admin.inner_text("#audit")
    assert log.count("session.login") >= 2 and "POST /account/2fa/confirm" in log, log
    assert not watched.problems, watched.problems


@pytest.mark.parametrize("width", [1280, 390])
def test_a_member_is_refused_the_admin_pages_with_a_page_that_says_why(server, browser, width):
    """A member who opens the single sign-on settings or the audit log (a bookmark, a shared
    link) gets a 403 page that names the role it needs and links back, not a blank page."""
    server.api("/api/v1/users", "POST", {"email": "mo@example.com", "name": "Mo", "role": "member",
                                         "password": "member password 1"})
    w = Watched(browser, viewport={"width": width, "height": 900})
    try:
        page = w.page
        page.goto(server.url + "/login")
        page.fill("input[name=email]", "mo@example.com")
        page.fill("input[name=password]", "member password 1")
        with page.expect_navigation():
            page.click("button[type=submit]")
        page.wait_for_url(server.url + "/")
        for path, name in [("/settings/sso", "sso"), ("/settings/audit", "audit")]:
            resp = page.goto(server.url + path)
            assert resp.status == 403, f"{path} answered {resp.status}"
            assert page.inner_text("h1") == "Forbidden"
            text = page.inner_text("main")
            assert "needs the admin role" in text and "you are a member" in text, text
            assert page.locator("main a[href='/']").is_visible(), "a way back"
            overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
            assert overflow <= 1, f"the refusal scrolls sideways by {overflow}px at {width}px"
            shot(page, f"forbidden-{name}-{width}")
        # Nothing else went wrong on the way (the two 403s are the answers asked for).
        unexpected = [p for p in w.problems if "403" not in p]
        assert not unexpected, unexpected
    finally:
        w.close()
