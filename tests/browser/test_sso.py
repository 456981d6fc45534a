"""Single sign-on with a real OpenID provider: the certified `oidc-provider` package (run by
tests/browser/oidc/provider.mjs on a free port) and Lookout signing users in through its login and
consent pages in Chromium. Groups map to roles; sign-out ends the provider's session too; in
SSO-only mode only the break-glass admin signs in with a password. Every forged ID token
(tampered, wrong audience, expired, wrong nonce, `none`, HS256 with the public key, an unknown
key), a replayed state and a callback opened in another browser are refused with a clear page
and nothing created."""

import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from urllib.parse import parse_qs, urlparse

import pyotp
import pytest

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from harness import ADMIN_EMAIL, ADMIN_PASSWORD, ADMIN_TOKEN, Server  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from browser_support import Watched  # noqa: E402
from test_ui import shot  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
CLIENT_SECRET = "lookout-test-secret-0123456789"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture()
def sso():
    """Lookout configured for the provider, then the provider with Lookout's redirect URI."""
    port = free_port()
    issuer = f"http://127.0.0.1:{port}"
    conf = tempfile.NamedTemporaryFile("w", suffix=".toml", delete=False)
    conf.write(f"""
[oidc]
issuer = "{issuer}"
client_id = "lookout"
scopes = ["email", "profile", "groups"]
allowed_domains = ["example.com"]
sso_only = true
break_glass_email = "{ADMIN_EMAIL}"
[oidc.roles]
admin = ["sre-leads"]
member = ["engineers"]
[oidc.teams]
payments = ["grp-payments"]
search = ["grp-search", "grp-index"]
ghosts = ["grp-ghosts"]
""")
    conf.close()
    server = Server({"LOOKOUT_ADMIN_EMAIL": ADMIN_EMAIL, "LOOKOUT_ADMIN_PASSWORD": ADMIN_PASSWORD,
                     "LOOKOUT_CONFIG": conf.name, "LOOKOUT_OIDC_CLIENT_SECRET": CLIENT_SECRET})
    node_modules = os.path.join(HERE, "oidc", "node_modules", "oidc-provider")
    assert os.path.isdir(node_modules), "run scripts/setup-test-deps (npm ci in tests/browser/oidc)"
    provider = subprocess.Popen(
        ["node", os.path.join(HERE, "oidc", "provider.mjs"), str(port),
         server.url + "/auth/oidc/callback", server.url + "/login"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    said = []
    for line in provider.stdout:  # its warnings first (development adapter and pages), then ready
        said.append(line)
        if "ready at" in line:
            break
    assert said and "ready at" in said[-1], "".join(said)
    threading.Thread(target=lambda: [None for _ in provider.stdout], daemon=True).start()
    try:
        yield server, issuer
    finally:
        provider.terminate()
        provider.wait(timeout=10)
        server.stop()
        os.unlink(conf.name)


def set_groups(issuer, user, groups):
    with urllib.request.urlopen(f"{issuer}/__test/groups?user={user}&g={','.join(groups)}", timeout=5) as r:
        assert json.loads(r.read())["groups"] == groups


def team_members(server):
    """Team slug → the emails of its members."""
    out = {}
    for t in server.api("/api/v1/teams?limit=100")["items"]:
        detail = server.api(f"/api/v1/teams/{t['id']}")
        out[t["slug"]] = sorted(m["email"] for m in detail["members"])
    return out


def set_mode(issuer, mode):
    with urllib.request.urlopen(f"{issuer}/__test/mode?m={mode}", timeout=5) as r:
        assert json.loads(r.read())["mode"] == mode


def users(server):
    return {u["email"]: u for u in server.api("/api/v1/users?limit=1000")["items"]}


def local_only(w):
    """Keeps the browser on loopback: the provider's stock pages import a web font from
    Google, which the tests must not fetch."""
    w.context.route("**/*", lambda route: route.continue_()
                    if route.request.url.startswith("http://127.0.0.1") else route.abort())
    return w


def sign_in_at_provider(page, login):
    """The provider's development login page, then its consent page."""
    page.wait_for_selector("input[name=login]")
    page.fill("input[name=login]", login)
    page.fill("input[name=password]", "any password")
    with page.expect_navigation():
        page.click("button[type=submit]")
    if page.locator("button:has-text('Continue')").count():
        with page.expect_navigation():
            page.click("button:has-text('Continue')")


def test_sign_in_with_sso_maps_groups_to_roles_and_signs_out_at_the_provider(sso, browser):
    server, issuer = sso
    w = local_only(Watched(browser, viewport={"width": 1280, "height": 900}))
    try:
        page = w.page
        page.goto(server.url + "/login")
        assert page.locator("#sso-login").is_visible()
        shot(page, "sso-login-1280")
        page.set_viewport_size({"width": 390, "height": 844})
        shot(page, "sso-login-390")
        page.set_viewport_size({"width": 1280, "height": 900})
        page.click("#sso-login")
        sign_in_at_provider(page, "alice")
        page.wait_for_url(server.url + "/")
        assert "alice@example.com" in page.inner_text("#account-link")
        alice = users(server)["alice@example.com"]
        assert alice["role"] == "admin" and alice["name"] == "Alice", alice

        # Sign-out ends Lookout's session and asks the provider to end its own.
        page.click("form[action='/logout'] button")
        page.wait_for_url(issuer + "/session/end**")
        page.click("button[value=yes]")
        page.wait_for_url(server.url + "/login**")
        page.goto(server.url + "/")
        assert page.url.startswith(server.url + "/login"), "the Lookout session must be gone"
        ours = [p for p in w.problems if server.url in p and "/session/end" not in p]
        assert not ours, ours
    finally:
        w.close()

    # A member by group, in a browser of their own.
    w = local_only(Watched(browser))
    try:
        w.page.goto(server.url + "/auth/oidc/login")
        sign_in_at_provider(w.page, "bob")
        w.page.wait_for_url(server.url + "/")
        assert users(server)["bob@example.com"]["role"] == "member"
    finally:
        w.close()

    # SSO-only: Bob cannot use a password, the break-glass admin can.
    w = local_only(Watched(browser))
    try:
        page = w.page
        page.goto(server.url + "/login")
        page.fill("input[name=email]", "bob@example.com")
        page.fill("input[name=password]", "whatever123")
        with page.expect_navigation():
            page.click("button[type=submit]")
        assert "single sign-on" in page.inner_text("[role=alert]")
        page.fill("input[name=email]", ADMIN_EMAIL)
        page.fill("input[name=password]", ADMIN_PASSWORD)
        with page.expect_navigation():
            page.click("button[type=submit]")
        page.wait_for_url(server.url + "/")
    finally:
        w.close()


@pytest.mark.parametrize("mode", ["tampered", "audience", "expired", "nonce", "none", "hs256", "unknown-key"])
def test_a_forged_id_token_is_refused_and_creates_nobody(sso, browser, mode):
    server, issuer = sso
    set_mode(issuer, mode)
    w = local_only(Watched(browser))
    try:
        page = w.page
        page.goto(server.url + "/auth/oidc/login")
        sign_in_at_provider(page, "eve")
        page.wait_for_url(server.url + "/auth/oidc/callback*")
        assert "did not pass verification" in page.inner_text("main"), page.inner_text("main")
        assert "eve@example.com" not in users(server)
        assert "mallory@example.com" not in users(server)
        page.goto(server.url + "/")
        assert page.url.startswith(server.url + "/login"), "no session may exist"
    finally:
        w.close()
    assert any("An ID token was refused" in line for line in server.log), "the refusal is logged"


def test_a_replayed_state_or_another_browsers_callback_is_refused(sso, browser):
    server, issuer = sso
    w = local_only(Watched(browser))
    callbacks = []
    try:
        page = w.page
        page.on("request", lambda r: "/auth/oidc/callback" in r.url and callbacks.append(r.url))
        page.goto(server.url + "/auth/oidc/login")
        state_cookie = next(c for c in w.context.cookies() if c["name"] == "lookout_sso")
        sign_in_at_provider(page, "carol")
        page.wait_for_url(server.url + "/")
        assert users(server)["carol@example.com"]["role"] == "viewer"
        assert callbacks, "the callback was seen"

        # The same answer again, with this browser's state cookie put back: already used.
        w.context.add_cookies([{k: state_cookie[k] for k in ("name", "value", "domain", "path")}])
        page.goto(callbacks[0])
        assert "already used or has expired" in page.inner_text("main")
    finally:
        w.close()

    # A sign-in begun in one browser and its answer opened in another (login CSRF, where an
    # attacker sends a victim the attacker's callback link): refused, the victim is signed in as
    # nobody, and the starter's own sign-in still works.
    starter = local_only(Watched(browser))
    victim = local_only(Watched(browser))
    try:
        asked = []
        starter.page.on("request", lambda r: r.url.startswith(issuer + "/auth?") and asked.append(r.url))
        starter.page.goto(server.url + "/auth/oidc/login")
        state = parse_qs(urlparse(asked[0]).query)["state"][0]
        victim.page.goto(f"{server.url}/auth/oidc/callback?code=stolen&state={state}")
        assert "not started in this browser" in victim.page.inner_text("main")
        victim.page.goto(server.url + "/")
        assert victim.page.url.startswith(server.url + "/login")
        sign_in_at_provider(starter.page, "dave")
        starter.page.wait_for_url(server.url + "/")
        assert "dave@example.com" in users(server)
    finally:
        starter.close()
        victim.close()


def test_groups_map_to_teams_at_each_sign_in(sso, browser):
    """`[oidc.teams]`: each sign-in adds the user to the listed teams their groups name and takes
    them out of the listed ones they no longer name; unlisted teams are left alone, and a
    listed team that does not exist is not created."""
    server, issuer = sso
    for name in ("Payments", "Search", "Hand made"):
        server.api("/api/v1/teams", "POST", {"name": name})

    def sign_in(login):
        w = local_only(Watched(browser))
        try:
            w.page.goto(server.url + "/auth/oidc/login")
            sign_in_at_provider(w.page, login)
            w.page.wait_for_url(server.url + "/")
        finally:
            w.close()

    sign_in("bob")
    bob = users(server)["bob@example.com"]
    teams = team_members(server)
    assert teams["search"] == ["bob@example.com"], teams
    assert teams["payments"] == [], teams
    assert "ghosts" not in teams, "a listed team that does not exist is not created"
    assert any("oidc.teams names teams that do not exist" in line for line in server.log)
    # An admin adds Bob to a team the rules do not list; sign-ins leave that alone.
    hand_made = next(t for t in server.api("/api/v1/teams")["items"] if t["slug"] == "hand-made")
    req = urllib.request.Request(f"{server.url}/api/v1/teams/{hand_made['id']}/members/{bob['id']}",
                                 method="PUT", data=b"{}",
                                 headers={"Authorization": "Bearer " + ADMIN_TOKEN,
                                          "Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=10) as r:
        assert r.status in (200, 204)

    # Bob moves from search to payments at the provider: the next sign-in follows.
    set_groups(issuer, "bob", ["engineers", "grp-payments"])
    sign_in("bob")
    teams = team_members(server)
    assert teams["payments"] == ["bob@example.com"], teams
    assert teams["search"] == [], teams
    assert teams["hand-made"] == ["bob@example.com"], teams
    # Losing every listed group takes Bob out of every listed team, not the hand-made one.
    set_groups(issuer, "bob", ["engineers"])
    sign_in("bob")
    teams = team_members(server)
    assert teams["payments"] == [] and teams["search"] == [], teams
    assert teams["hand-made"] == ["bob@example.com"], teams
    assert users(server)["bob@example.com"]["role"] == "member"


def test_an_email_outside_the_allowed_domains_is_refused_and_creates_nobody(sso, browser):
    """`allowed_domains = ["example.com"]`: a provider account at another domain gets a page that
    says why, no account and no session."""
    server, issuer = sso
    w = local_only(Watched(browser))
    try:
        page = w.page
        page.goto(server.url + "/auth/oidc/login")
        sign_in_at_provider(page, "zed@elsewhere.test")
        page.wait_for_url(server.url + "/auth/oidc/callback*")
        assert "email domain may not sign in here" in page.inner_text("main"), page.inner_text("main")
        assert "zed@elsewhere.test" not in users(server)
        page.goto(server.url + "/")
        assert page.url.startswith(server.url + "/login"), "no session may exist"
    finally:
        w.close()


def audit(server, action):
    return server.api(f"/api/v1/audit?action={action}&limit=100")["items"]


def test_groups_change_role_and_teams_only_after_the_second_factor(sso, browser):
    """An SSO user who must use two-factor sign-in: the role and teams their groups give are
    applied only once the code is right (at enrolment, then at a later sign-in), never by a
    sign-in left at the code step; each team joined or left is an audit entry by `sso` naming
    the team and the user. A sign-in overtaken by a newer one cannot restore the older role."""
    server, issuer = sso
    teams = {t: server.api("/api/v1/teams", "POST", {"name": t}) for t in ("Payments", "Search")}

    def provider_leg(w):
        w.page.goto(server.url + "/auth/oidc/login")
        sign_in_at_provider(w.page, "bob")
        w.page.wait_for_url(server.url + "/auth/oidc/callback*")

    w = local_only(Watched(browser))
    try:
        w.page.goto(server.url + "/auth/oidc/login")
        sign_in_at_provider(w.page, "bob")
        w.page.wait_for_url(server.url + "/")
    finally:
        w.close()
    bob = users(server)["bob@example.com"]
    assert bob["role"] == "member" and team_members(server)["search"] == ["bob@example.com"]
    joined = audit(server, "sso.team_join")
    assert [(e["actor"], e["target"]) for e in joined] == [
        ("sso", f"{teams['Search']['id']}/{bob['id']}")], joined
    assert joined[0]["details"] == {"team": "search", "user": "bob@example.com"}
    assert joined[0]["actor_label"] == issuer
    req = urllib.request.Request(f"{server.url}/api/v1/users/{bob['id']}/totp-required", method="PUT",
                                 data=json.dumps({"required": True}).encode(),
                                 headers={"Authorization": "Bearer " + ADMIN_TOKEN,
                                          "Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=10) as r:
        assert r.status in (200, 204)

    # Promoted and moved at the provider; the sign-in stops at the enrolment the admin required.
    set_groups(issuer, "bob", ["sre-leads", "grp-payments"])
    w = local_only(Watched(browser))
    try:
        provider_leg(w)
        assert w.page.locator("#totp-qr svg").is_visible()
        assert users(server)["bob@example.com"]["role"] == "member", "not before the second factor"
        assert team_members(server) == {"payments": [], "search": ["bob@example.com"]}
        assert len(audit(server, "sso.team")) == 1
        secret = w.page.inner_text("#totp-secret").strip()
        w.page.fill("#code", pyotp.TOTP(secret).now())
        with w.page.expect_navigation():
            w.page.click("button[type=submit]")
        assert w.page.locator("#recovery-codes li").count() == 10
        recovery = [c.strip() for c in w.page.locator("#recovery-codes li").all_inner_texts()]
    finally:
        w.close()
    assert users(server)["bob@example.com"]["role"] == "admin"
    assert team_members(server) == {"payments": ["bob@example.com"], "search": []}
    moves = [(e["action"], e["target"]) for e in audit(server, "sso.team")]
    assert moves == [("sso.team_leave", f"{teams['Search']['id']}/{bob['id']}"),
                     ("sso.team_join", f"{teams['Payments']['id']}/{bob['id']}"),
                     ("sso.team_join", f"{teams['Search']['id']}/{bob['id']}")], moves
    role = audit(server, "sso.role")[0]
    assert (role["actor"], role["details"]["before"], role["details"]["after"]) == ("sso", "member", "admin")

    # A sign-in still as an admin, left at the code step (a tab kept open, or a token captured).
    old = local_only(Watched(browser))
    provider_leg(old)
    assert "authenticator app" in old.page.inner_text("main")

    # Demoted at the provider: a sign-in left at the code step changes nothing; the code does.
    set_groups(issuer, "bob", ["engineers"])
    w = local_only(Watched(browser))
    try:
        provider_leg(w)
        assert "authenticator app" in w.page.inner_text("main")
    finally:
        w.close()
    assert users(server)["bob@example.com"]["role"] == "admin"
    assert team_members(server)["payments"] == ["bob@example.com"]
    w = local_only(Watched(browser))
    try:
        provider_leg(w)
        w.page.fill("#code", pyotp.TOTP(secret).at(time.time() + 30))
        with w.page.expect_navigation():
            w.page.click("button[type=submit]")
        w.page.wait_for_url(server.url + "/")
    finally:
        w.close()
    assert users(server)["bob@example.com"]["role"] == "member"
    assert team_members(server) == {"payments": [], "search": []}
    assert audit(server, "sso.team")[0]["action"] == "sso.team_leave"
    # The admin-era sign-in finished after the newer one, even with a right (recovery) code:
    # refused, and neither the role nor the team comes back.
    try:
        old.page.fill("#code", recovery[0])
        with old.page.expect_navigation():
            old.page.click("button[type=submit]")
        assert "Sign-in expired" in old.page.inner_text("body")
        assert not any(c["name"] == "lookout_session" for c in old.context.cookies())
    finally:
        old.close()
    assert users(server)["bob@example.com"]["role"] == "member"
    assert team_members(server) == {"payments": [], "search": []}
    promotions = [e for e in audit(server, "sso.role") if e["details"]["after"] == "admin"]
    assert len(promotions) == 1, promotions
    # Neither the client secret nor anything from the tokens is in the log.
    log = json.dumps(server.api("/api/v1/audit?limit=1000"))
    assert CLIENT_SECRET not in log and "eyJ" not in log


@pytest.mark.parametrize("width", [1280, 390])
def test_admins_see_the_sso_settings_and_test_discovery(sso, browser, width):
    """Settings → Single sign-on: the effective [oidc] settings read-only with the secret masked,
    the redirect URI to register, and a discovery test against the real provider."""
    server, issuer = sso
    w = local_only(Watched(browser, viewport={"width": width, "height": 900}))
    try:
        page = w.page
        page.goto(server.url + "/login")
        page.fill("input[name=email]", ADMIN_EMAIL)
        page.fill("input[name=password]", ADMIN_PASSWORD)
        with page.expect_navigation():
            page.click("button[type=submit]")
        page.goto(server.url + "/settings")
        with page.expect_navigation():
            page.click("#sso-link")
        assert page.url == server.url + "/settings/sso"
        assert page.locator("#redirect-uri").inner_text() == server.url + "/auth/oidc/callback"
        table = page.locator("#sso-settings").inner_text()
        assert issuer in table and "grp-payments" in table, table
        assert page.locator("#client-secret").inner_text() == "********"
        assert CLIENT_SECRET not in page.content(), "the secret never reaches the page"
        with page.expect_navigation():
            page.click("#test-discovery button")
        result = page.locator("#discovery-result").inner_text()
        assert "Discovery works" in result, result
        assert issuer in result, result
        overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
        assert overflow <= 1, f"the SSO settings page scrolls sideways by {overflow}px at {width}px"
        shot(page, f"sso-settings-{width}")
        # The same through the API, for admins only.
        settings = server.api("/api/v1/settings/sso")
        assert settings["client_secret"] == "********" and settings["issuer"] == issuer
        assert server.api("/api/v1/settings/sso/test", "POST")["ok"] is True
    finally:
        w.close()
