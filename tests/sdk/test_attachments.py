"""Attachments sent by the real sentry-python SDK: listed per event in the API and downloaded
byte for byte, always as a download (never rendered as a page of Lookout's origin)."""

import os
import subprocess
import sys
import urllib.error
import urllib.request

from harness import ADMIN_TOKEN

HERE = os.path.dirname(os.path.abspath(__file__))


def test_attachments_are_listed_and_downloaded_as_files(server):
    out = subprocess.run([sys.executable, os.path.join(HERE, "clients", "python_attachment.py"), server.dsn],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    issue = server.wait_issues(lambda i: len(i) == 1)[0]
    assert issue["title"] == "TimeoutError: payment gateway timed out"
    event_id = server.api(f"/api/v1/issues/{issue['id']}/events")["items"][0]["event_id"]
    items = server.api(f"/api/v1/projects/1/events/{event_id}/attachments")
    assert [(a["filename"], a["content_type"], a["size"]) for a in items] == [
        ("worker.log", "text/plain", 41), ('../"evil".html', "text/html", 39)]
    log, html = items
    req = urllib.request.Request(server.url + log["download_url"], headers={"Authorization": "Bearer " + ADMIN_TOKEN})
    with urllib.request.urlopen(req, timeout=10) as r:
        assert r.read() == b"line 1\nline 2: payment gateway timed out\n"
        assert r.headers["Content-Disposition"] == 'attachment; filename="worker.log"'
    req = urllib.request.Request(server.url + html["download_url"], headers={"Authorization": "Bearer " + ADMIN_TOKEN})
    with urllib.request.urlopen(req, timeout=10) as r:
        assert r.read() == b"<script>alert(document.cookie)</script>"
        assert r.headers["Content-Type"] == "application/octet-stream"
        assert r.headers["Content-Disposition"] == 'attachment; filename="..__evil_.html"'
        assert r.headers["X-Content-Type-Options"] == "nosniff"
    # Another event's id, or no token, finds nothing.
    for url, token in [(html["download_url"].replace(event_id, "0" * 32), ADMIN_TOKEN), (html["download_url"], "x")]:
        req = urllib.request.Request(server.url + url, headers={"Authorization": "Bearer " + token})
        try:
            urllib.request.urlopen(req, timeout=10)
            raise AssertionError(f"{url} answered")
        except urllib.error.HTTPError as e:
            assert e.code in (401, 404)
