"""Helpers for the browser tests: a page that records console errors and failed requests, and
the check of a readable time."""

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
