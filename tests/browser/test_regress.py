"""The Regressions pages in a real browser: a series pushed with `lookout regress push` that
slowed down is listed as a regression with its commit and magnitude; its page charts the points
with the change point marked and compares the distributions before and after."""

import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from harness import ADMIN_TOKEN, lookout_bin  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from test_ui import log_in, shot  # noqa: E402


def test_a_slowdown_is_listed_charted_and_compared(server, watched):
    # 40 points around 100 ms, then a build that is 25 % slower, one push per commit from CI.
    base = [{"value": 100 + (i * 37 % 11) * 0.5, "commit": f"good{i:02}"} for i in range(40)]
    server.api("/api/v1/series/checkout.p95_ms/points", "POST",
               {"unit": "ms", "tags": {"branch": "main"}, "points": base})
    for i in range(40, 50):
        r = subprocess.run([lookout_bin(), "regress", "push", "--series", "checkout.p95_ms",
                            "--value", str(125 + (i * 37 % 11) * 0.5), "--unit", "ms", "--tag", "branch=main",
                            "--commit", f"slow{i}", "--server", server.url, "--token", ADMIN_TOKEN],
                           capture_output=True, text=True, timeout=30)
        assert r.returncode == 0, r.stdout + r.stderr
    r = subprocess.run([lookout_bin(), "regress", "check", "--series", "checkout.p95_ms",
                        "--server", server.url, "--token", ADMIN_TOKEN], capture_output=True, text=True, timeout=30)
    assert r.returncode == 1 and "REGRESSION" in r.stdout, r.stdout + r.stderr

    page = watched.page
    log_in(page, server.url)
    page.goto(server.url + "/regressions")
    changes = page.inner_text("#changes")
    assert "checkout.p95_ms {branch=main}" in changes
    assert "regression" in changes and "slow40" in changes and "+2" in changes
    assert "checkout.p95_ms" in page.inner_text("#series")
    shot(page, "regressions")

    page.click("#changes a")
    assert "Regressed" in page.inner_text("#state")
    chart = page.locator("#series-chart svg")
    assert chart.count() == 1
    assert page.locator("#series-chart .change-point").count() == 1
    assert "slow40" in page.inner_text("#series-chart")
    assert page.locator("#series-chart circle").count() == 50
    compare = page.inner_text("#compare")
    assert "Before and after #41" in compare
    rows = page.inner_text("#sides")
    assert "before\t40" in rows and "after\t10" in rows, rows
    assert page.locator("#compare .box").count() == 2
    shot(page, "regression-series")
