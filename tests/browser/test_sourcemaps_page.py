"""Source maps in a real browser: an error from a minified bundle arrives before its maps, the
maps are uploaded with the real sentry-cli, and the issue page's "Re-process with source maps"
button turns the minified frames into the original ones, with the minified stack one click away;
the uploads are listed on the Source maps page.

Needs `npm ci` in tests/sdk/clients/sourcemaps (sentry-cli, esbuild, @sentry/node)."""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from sourcemap_tools import CLIENT, build_app, run, upload_release  # noqa: E402
from test_ui import log_in, shot  # noqa: E402


def test_reprocess_button_shows_original_frames_and_minified_on_request(server, watched, tmp_path):
    dist = build_app(tmp_path)
    run(["node", os.path.join(CLIENT, "throw.js"), server.dsn, os.path.join(dist, "static", "app.min.js"),
         "shop@7.0.0", dist])
    issue = server.wait_issues(lambda i: len(i) == 1)[0]
    upload_release(server, "shop@7.0.0", os.path.join(dist, "static"))
    page = watched.page
    log_in(page, server.url)
    page.goto(f"{server.url}/errors/issues/{issue['id']}")
    top = page.locator("ol.frames li.frame .frame-h").first
    assert top.inner_text() == "app:///static/app.min.js in e at line 1 in app"
    assert page.locator("details.minified").count() == 0
    with page.expect_navigation():
        page.click("text=Re-process with source maps")
    top = page.locator("ol.frames li.frame .frame-h").first
    assert top.inner_text() == "src/cart.js in total at line 5 in app"
    assert page.locator("ol.frames li.frame .hl").first.inner_text() == '5    throw new Error("cart is empty");'
    minified = page.locator("details.minified")
    assert not minified.locator("ol.frames").is_visible()
    minified.locator("summary").click()
    assert minified.locator(".frame-h").first.inner_text() == "app:///static/app.min.js in e at line 1"
    shot(page, "issue-source-mapped")
    page.goto(server.url + "/errors/source-maps")
    rows = page.locator("table.source-maps tbody tr")
    assert rows.count() == 2
    assert sorted(r.locator("td").first.inner_text() for r in rows.all()) == [
        "~/static/app.min.js", "~/static/app.min.js.map"]
    assert "shop@7.0.0" in rows.first.inner_text()
