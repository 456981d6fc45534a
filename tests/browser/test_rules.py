"""The Rules page in a real browser, at 1280 and 390 px: reached from the Metrics page, a rule
file with mistakes is refused with each bad rule named and the text kept as typed, the fixed
file is saved, and its alert shows as firing with its labels once evaluated."""

import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from test_metrics_explorer import fits, remote_write  # noqa: E402
from test_ui import log_in, shot  # noqa: E402

BAD = """groups:
  - name: rooms
    interval: 1s
    rules:
      - alert: Hot
        expr: temp > (20
"""
GOOD = """groups:
  - name: rooms
    interval: 1s
    rules:
      - record: room:temp:doubled
        expr: temp * 2
      - alert: Hot
        expr: temp > 20
        labels:
          severity: critical
        annotations:
          summary: "Room {{ $labels.room }} is hot"
"""


def test_rules_page(server, watched):
    now = int(time.time() * 1000)
    remote_write(server, [({"__name__": "temp", "room": "a"}, [(now, 30.0)]),
                          ({"__name__": "temp", "room": "b"}, [(now, 10.0)])])
    page = watched.page
    page.set_viewport_size({"width": 1280, "height": 900})
    log_in(page, server.url)
    page.click("nav.side a:text-is('Metrics')")
    with page.expect_navigation():
        page.click("#rules-link")
    assert page.locator("h1").inner_text() == "Rules"
    assert page.locator("#no-rules").count() == 1

    page.fill("#content", BAD)
    with page.expect_navigation():
        page.click("#save-rules")
    errors = page.inner_text("#rule-errors")
    assert 'group "rooms", rule 1, "Hot": could not parse expression' in errors, errors
    assert page.input_value("#content") == BAD
    assert page.get_attribute("#content", "aria-invalid") == "true"
    shot(page, "rules-error")
    watched.problems.clear()  # the 422 above is expected

    page.fill("#content", GOOD)
    with page.expect_navigation():
        page.click("#save-rules")
    assert "saved" in page.inner_text("#saved")
    deadline = time.time() + 40
    while page.locator("#active-alerts tr.state-firing").count() == 0:
        assert time.time() < deadline, page.inner_text("main")
        time.sleep(1)
        page.reload()
    row = page.locator("#active-alerts tr.state-firing")
    assert row.count() == 1, page.inner_text("#active-alerts")
    assert 'room="a"' in row.inner_text() and 'severity="critical"' in row.inner_text()
    assert "Room a is hot" in row.inner_text()
    assert page.locator("tr.rule[data-rule='Hot'] .rule-state").inner_text() == "firing"
    assert page.locator("tr.rule[data-rule='room:temp:doubled'] .rule-health").inner_text() == "ok"
    # Last evaluation: relative, the exact time on hover.
    assert page.locator("tr.rule[data-rule='Hot'] time").get_attribute("title")
    shot(page, "rules-firing")
    page.set_viewport_size({"width": 390, "height": 844})
    page.reload()
    assert fits(page, 390), "the Rules page is wider than a phone"
    shot(page, "rules-phone")
    assert watched.problems == [], "\n".join(watched.problems)
