"""The real @sentry/browser SDK in headless Chromium: esbuild bundles it with the small app into
one minified file, the page is served from its own origin (so the SDK posts its envelope to
Lookout cross-origin, as from any real site), the app throws, and the stored issue's top frame
must be the original file, line, column, function and source line, exactly. Both ways maps are
found are covered: debug ids injected by the real sentry-cli, and release + `~/` URL, the maps
uploaded after the event and applied by re-processing.

Needs `npm ci` in tests/sdk/clients/sourcemaps (sentry-cli, esbuild, @sentry/browser)."""

import functools
import http.server
import json
import os
import sys
import threading

import pytest

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from sourcemap_tools import (assert_original_top_frame, build_app, cli, newest_exception,  # noqa: E402
                             upload_release)


@pytest.fixture()
def site(tmp_path):
    """The app bundled with @sentry/browser, served by a local HTTP server on a free port."""
    dist = build_app(tmp_path, entry="browser.js")
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=dist)
    handler.log_message = lambda *a: None
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield dist, f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()


def open_page(watched, dist, origin, dsn, release=None):
    """Writes the page that loads the minified bundle and opens it; the bundle throws at once."""
    cfg = {"dsn": dsn, "release": release}
    with open(os.path.join(dist, "index.html"), "w") as f:
        f.write(f"<!doctype html><title>shop</title><link rel=\"icon\" href=\"data:,\"><script>window.LOOKOUT = {json.dumps(cfg)};</script>"
                '<script src="/static/app.min.js"></script>')
    page = watched.page
    with page.expect_response(lambda r: "/envelope/" in r.url and r.request.method == "POST") as sent:
        page.goto(origin + "/index.html")
    answer = sent.value
    assert answer.status == 200, answer.text()
    # The SDK could read the answer: Lookout allowed the page's origin (CORS).
    assert answer.headers.get("access-control-allow-origin") == "*"
    return page


def browser_problems(watched):
    # The app's own uncaught error is expected on the console; nothing else may fail.
    return [p for p in watched.problems if "cart is empty" not in p]


def test_browser_sdk_error_resolves_through_injected_debug_ids(server, watched, site):
    dist, origin = site
    cli(server, "sourcemaps", "inject", dist)
    cli(server, "sourcemaps", "upload", "--org", "default", "--project", "default", dist)
    open_page(watched, dist, origin, server.dsn)
    issue = server.wait_issues(lambda i: len(i) == 1)[0]
    assert issue["title"] == "Error: cart is empty"
    # A browser frame has no module: the culprit names the file.
    assert issue["culprit"] == "src/cart.js in total"
    exc = newest_exception(server, issue["id"])
    assert_original_top_frame(exc, "debug-id", minified_lines=None)
    # The browser SDK sends the frame's URL as its filename.
    assert exc["raw_stacktrace"]["frames"][-1]["filename"] == origin + "/static/app.min.js"
    assert browser_problems(watched) == []


def test_browser_sdk_error_before_its_maps_resolves_by_release_on_reprocess(server, watched, site):
    dist, origin = site
    open_page(watched, dist, origin, server.dsn, release="shop@5.0.0")
    issue = server.wait_issues(lambda i: len(i) == 1)[0]
    before = newest_exception(server, issue["id"])["stacktrace"]["frames"][-1]
    assert before["filename"] == origin + "/static/app.min.js"
    assert before["filename"] != "src/cart.js"
    upload_release(server, "shop@5.0.0", os.path.join(dist, "static"))
    done = server.api(f"/api/v1/issues/{issue['id']}/reprocess", method="POST")
    assert done["events"] == 1 and done["updated"] == 1
    assert_original_top_frame(newest_exception(server, issue["id"]), "release", minified_lines=None)
    assert server.api(f"/api/v1/issues/{issue['id']}")["culprit"] == "src/cart.js in total"
    assert browser_problems(watched) == []
