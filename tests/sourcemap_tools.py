"""Shared by the source-map tests (tests/sdk/test_sourcemaps.py, tests/browser/test_sourcemaps_page.py,
tests/browser/test_sourcemaps_browser.py): the real tools of tests/sdk/clients/sourcemaps (esbuild,
sentry-cli 3.x and 2.x, @sentry/node, @sentry/browser), the app they build, and the exact original
frame every path must resolve to.

Needs `npm ci` in tests/sdk/clients/sourcemaps (scripts/setup-test-deps runs it)."""

import os
import shutil
import subprocess

from harness import ADMIN_TOKEN

CLIENT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "sdk", "clients", "sourcemaps")
BIN = os.path.join(CLIENT, "node_modules", ".bin")
# Named by package: both sentry-cli packages install a `sentry-cli` command into .bin.
SENTRY_CLI = os.path.join(CLIENT, "node_modules", "@sentry", "cli", "bin", "sentry-cli")
SENTRY_CLI_2 = os.path.join(CLIENT, "node_modules", "sentry-cli-2", "bin", "sentry-cli")

# Where the app's error is thrown, in the committed sources (clients/sourcemaps/app/src/cart.js).
THROW_LINE = '    throw new Error("cart is empty");'


def run(cmd, **kw):
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=120, **kw)
    assert out.returncode == 0, f"{cmd} failed:\n{out.stdout}\n{out.stderr}"
    return out


def build_app(d, entry="index.js"):
    """Copies the app's sources into d and minifies src/<entry> with esbuild into
    d/dist/static/app.min.js (+ .map); returns d/dist. The browser entry imports @sentry/browser,
    found through a link to the client's node_modules."""
    assert os.path.exists(SENTRY_CLI), "run npm ci in tests/sdk/clients/sourcemaps"
    d = str(d)
    shutil.copytree(os.path.join(CLIENT, "app", "src"), os.path.join(d, "src"))
    os.symlink(os.path.join(CLIENT, "node_modules"), os.path.join(d, "node_modules"))
    run([os.path.join(BIN, "esbuild"), os.path.join(d, "src", entry), "--bundle", "--format=iife",
         "--minify", "--sourcemap", "--outfile=" + os.path.join(d, "dist", "static", "app.min.js")])
    return os.path.join(d, "dist")


def cli(server, *args):
    """The real sentry-cli 3.x against the server, with the admin API token as its auth token."""
    return run([SENTRY_CLI, "--url", server.url, "--auth-token", ADMIN_TOKEN, *args],
               env={**os.environ, "SENTRY_LOG_LEVEL": "warn"})


def upload_release(server, release, static_dir):
    """`sentry-cli sourcemaps upload` by release and `~/static` URL prefix (no debug ids)."""
    return cli(server, "sourcemaps", "upload", "--org", "default", "--project", "default", "--release", release,
               "--url-prefix", "~/static", static_dir)


def newest_exception(server, issue_id):
    ev = server.api(f"/api/v1/issues/{issue_id}/events")["items"][0]
    return server.api(f"/api/v1/projects/1/events/{ev['event_id']}")["event"]["exception"]["values"][-1]


def assert_original_top_frame(exc, via, minified_lines=(1, 3)):
    """The thrown error's frame and its caller resolved to the original sources, exactly; the
    minified frame kept under raw_stacktrace, on one of `minified_lines` (None: any; a bundle
    with @sentry/browser keeps some of its line breaks)."""
    top = exc["stacktrace"]["frames"][-1]
    assert top["filename"] == "src/cart.js"
    assert (top["lineno"], top["colno"]) == (5, 11)
    assert top["function"] == "total"
    assert top["context_line"] == THROW_LINE
    assert top["pre_context"][-2:] == ["export function total(cart) {", "  if (cart.items.length === 0) {"]
    assert top["post_context"][0] == "  }"
    assert top["in_app"] is True
    assert top["data"]["resolved_with"] == via
    # The caller resolves too (its name comes from the minified file's token).
    caller = exc["stacktrace"]["frames"][-2]
    assert (caller["filename"], caller["lineno"], caller["function"]) == ("src/index.js", 4, "checkout")
    # The minified frame is kept beside it ("show minified").
    raw = exc["raw_stacktrace"]["frames"][-1]
    assert raw["filename"].endswith("static/app.min.js")
    # esbuild's one line (after the debug-id snippet when injected), at the minified column.
    assert minified_lines is None or raw["lineno"] in minified_lines
    assert raw["colno"] > 40
    assert raw["function"] != "total"
