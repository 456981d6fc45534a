"""Reports in a real browser: an error sent with the real Python SDK, an incident and an SLO
make the monthly deep dive; the Reports page lists it, the report renders in Chromium with its
SVG charts and prints to PDF, with no console error, no failed request and nothing wider than
the page; a report for another period is made from the page's form."""

import os
import re
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from browser_support import assert_readable_time  # noqa: E402
from test_ui import log_in, shot  # noqa: E402


def send_error(server, tmp_path):
    app = tmp_path / "shop.py"
    app.write_text(
        "import sentry_sdk, sys\n"
        "sentry_sdk.init(dsn=sys.argv[1], release='shop@2.0')\n"
        "try:\n"
        "    {}['cart']\n"
        "except Exception:\n"
        "    sentry_sdk.capture_exception()\n"
        "sentry_sdk.flush()\n")
    subprocess.run([sys.executable, str(app), server.dsn], check=True, timeout=60, cwd=tmp_path)
    server.wait_issues(lambda i: len(i) == 1)


def no_overflow(page):
    """Nothing is wider than the viewport, and every chart has a size."""
    wide = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
    assert wide <= 0, f"the page is {wide}px wider than the window"
    sizes = page.evaluate("[...document.querySelectorAll('figure.chart svg')].map(s => s.getBoundingClientRect().width * s.getBoundingClientRect().height)")
    assert sizes and all(s > 0 for s in sizes), sizes


def test_a_report_renders_cleanly_and_prints(server, watched, tmp_path):
    send_error(server, tmp_path)
    inc = server.api("/api/v1/incidents", "POST", {"title": "Checkout is slow", "severity": "error", "service": "shop"})
    server.api(f"/api/v1/incidents/{inc['id']}/acknowledge", "POST", {})
    server.api("/api/v1/slos", "POST", {"name": "Shop availability", "service": "shop",
                                         "indicator": "availability", "target": 99.9})
    made = server.api("/api/v1/reports", "POST", {"kind": "monthly"})

    page = watched.page
    page.set_viewport_size({"width": 1280, "height": 900})
    log_in(page, server.url)
    page.goto(server.url + "/reports")
    assert "Monthly deep dive #%d" % made["id"] in page.inner_text("#reports")
    # The period reads in the reports' zone (UTC here), when it was made relative with the
    # absolute on hover; no ISO strings.
    row = page.locator("#reports tbody tr").first
    assert row.locator("td").nth(1).inner_text().endswith(" UTC"), row.inner_text()
    assert not re.search(r"\d{4}-\d\d-\d\dT", row.inner_text()), row.inner_text()
    assert_readable_time(row.locator("time"))
    assert "daily, weekly on monday, monthly on day 1 at 08:00 (UTC)" in page.inner_text("#schedule")
    shot(page, "reports")

    page.click("#reports a")
    page.wait_for_url(server.url + made["url"])
    assert page.inner_text("h1").startswith("Monthly deep dive")
    for section in ["summary", "incidents", "errors", "uptime", "services", "slos", "regressions",
                    "databases", "backups", "load", "noise", "capacity", "recurring", "suggestions"]:
        assert page.locator(f"section#{section} h2").count() == 1, section
    assert "KeyError" in page.inner_text("section#errors")
    assert "Checkout is slow" in page.inner_text("section#incidents")
    assert "Shop availability" in page.inner_text("section#slos")
    # Every link in the report leads to a page that exists.
    hrefs = set(page.eval_on_selector_all("main a, section a", "as => as.map(a => a.getAttribute('href'))"))
    assert any(h.startswith("/errors/issues/") for h in hrefs), hrefs
    for h in sorted(hrefs):
        r = page.request.get(server.url + h)
        assert r.status == 200, (h, r.status)
    no_overflow(page)
    shot(page, "report-monthly")
    # Printable: the navigation link is hidden in print, and Chromium makes a PDF of it.
    page.emulate_media(media="print")
    assert not page.is_visible("nav.back")
    pdf = page.pdf(format="A4")
    assert pdf.startswith(b"%PDF") and len(pdf) > 10_000
    page.emulate_media(media="screen")

    # Any period from the form: the weekly review, not kept.
    page.goto(server.url + "/reports")
    page.select_option("#make-report select[name=kind]", "weekly")
    with page.expect_navigation():
        page.click("#make-report button")
    assert page.inner_text("h1").startswith("Weekly review")
    assert "KeyError" in page.inner_text("section#errors")
    no_overflow(page)
    shot(page, "report-weekly")
    assert watched.problems == [], "\n".join(watched.problems)
