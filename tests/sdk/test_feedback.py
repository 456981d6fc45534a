"""User feedback sent by the real sentry-python SDK (a `user_report` item and a current SDK's
feedback event) is kept with the issue it is about, and listed per project."""

import os
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))


def test_user_reports_and_feedback_events_are_on_the_issue(server):
    out = subprocess.run([sys.executable, os.path.join(HERE, "clients", "python_feedback.py"), server.dsn],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    event_id = out.stdout.strip().replace("-", "")
    issue = server.wait_issues(lambda i: len(i) == 1)[0]
    assert issue["title"] == "ValueError: coupon SPRING is not valid"
    deadline = time.time() + 20
    while True:
        reports = server.api(f"/api/v1/issues/{issue['id']}/feedback")
        if len(reports) == 2 or time.time() > deadline:
            break
        time.sleep(0.1)
    assert [(r["name"], r["email"], r["comments"], r["event_id"]) for r in reports] == [
        ("Grace", "grace@example.com", "Checkout broke right after I applied it.", event_id),
        ("Ada", "ada@example.com", "The coupon from the newsletter does not work.", event_id)]
    assert all(r["issue_id"] == issue["id"] for r in reports)
    listed = server.api("/api/v1/projects/1/feedback")["items"]
    assert [r["name"] for r in listed] == ["Grace", "Ada"]
    # The feedback event is feedback, not an error: still one issue.
    assert len(server.api("/api/v1/projects/1/issues?status=all")["items"]) == 1
