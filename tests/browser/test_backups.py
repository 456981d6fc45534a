"""The Backups page in a real browser: Lookout's own backup (directory, restorable window, newest
drill) after a drill through the API, and the failed drill after the backup was damaged."""

import os
import shutil
import sys
import tempfile

import pytest

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from harness import ADMIN_EMAIL, ADMIN_PASSWORD, Server  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from browser_support import assert_readable_time  # noqa: E402
from test_ui import log_in, shot  # noqa: E402


@pytest.fixture()
def backed_up():
    d = tempfile.mkdtemp(prefix="lookout-backups-")
    s = Server({"LOOKOUT_ADMIN_EMAIL": ADMIN_EMAIL, "LOOKOUT_ADMIN_PASSWORD": ADMIN_PASSWORD,
                "LOOKOUT_BACKUP_DIR": d, "LOOKOUT_BACKUP_DRILL_INTERVAL": "0"})
    yield s, d
    s.stop()
    shutil.rmtree(d, ignore_errors=True)


def test_the_backups_page_shows_the_backup_and_its_drills(backed_up, watched):
    server, d = backed_up
    run = server.api("/api/v1/backups/drill", "POST", {})
    assert run["ok"], run
    page = watched.page
    log_in(page, server.url)
    page.goto(server.url + "/backups")
    builtin = page.inner_text("#builtin")
    assert d in builtin
    assert "passed" in page.inner_text("#builtin-drill")
    # Times read relative with the absolute on hover, not as ISO strings.
    assert_readable_time(page.locator("#builtin-drill time"))
    assert_readable_time(page.locator("#builtin-shipped time"))
    assert page.locator("#builtin-window time").count() == 2
    assert "Z" not in page.inner_text("#builtin"), page.inner_text("#builtin")
    assert "No targets yet" in page.inner_text("#no-targets")
    shot(page, "backups")
    # A damaged snapshot: the next drill fails, and the page says so.
    runs = os.path.join(d, "runs")
    snap = os.path.join(runs, os.listdir(runs)[0], "snapshot-000001.lks")
    with open(snap, "r+b") as f:
        f.seek(20)
        b = f.read(1)
        f.seek(20)
        f.write(bytes([b[0] ^ 0xFF]))
    run = server.api("/api/v1/backups/drill", "POST", {})
    assert not run["ok"], run
    page.goto(server.url + "/backups")
    assert "failed: " in page.inner_text("#builtin-drill")
    shot(page, "backups-failed")
