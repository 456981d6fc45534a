"""Helpers for the browser tests: a page that records console errors and failed requests, the
check of a readable time, and errors reported by the real Python SDK."""

import subprocess
import sys
import time


class Watched:
    """A page that records console errors and every HTTP answer >= 400."""

    def __init__(self, browser, **context_args):
        self.context = browser.new_context(**context_args)
        self.page = self.context.new_page()
        self.problems = []
        self.page.on("console", lambda m: m.type == "error" and self.problems.append(f"console: {m.text}"))
        self.page.on("pageerror", lambda e: self.problems.append(f"page error: {e}"))
        self.page.on("response", lambda r: r.status >= 400 and self.problems.append(f"HTTP {r.status} {r.url}"))

    def close(self):
        self.context.close()


def assert_readable_time(loc):
    """A time as every page shows it (`ui::fmt::When`): relative text ("3 min ago", "in 2 h"),
    the absolute time on hover (app.js puts it in the viewer's zone), the ISO time in `datetime`."""
    text = loc.inner_text()
    assert text == "just now" or text.endswith(" ago") or text.startswith("in "), text
    title = loc.get_attribute("title")
    assert title and str(time.gmtime().tm_year) in title, title
    assert "T" in loc.get_attribute("datetime")


def python_errors(dsn, cwd, *statements):
    """Runs each statement under the real sentry-python SDK (release shop@1.0, environment prod)
    and reports the exception it raises, like an app's error handler."""
    lines = ["import sentry_sdk, sys",
             "sentry_sdk.init(dsn=sys.argv[1], release='shop@1.0', environment='prod')"]
    for st in statements:
        lines += ["try:", f"    {st}", "except Exception:", "    sentry_sdk.capture_exception()"]
    lines.append("sentry_sdk.flush()")
    app = cwd / "shop.py"
    app.write_text("\n".join(lines) + "\n")
    subprocess.run([sys.executable, str(app), dsn], check=True, timeout=60, cwd=cwd)
