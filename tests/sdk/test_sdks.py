"""Real Sentry SDKs against Lookout: sentry-python (gzip and brotli), @sentry/node, and raven
(the legacy /store/ client). Each sends a known mix; the tests assert the exact issues and counts
a Sentry user would see."""

import os
import re
import shutil
import subprocess
import sys

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
CLIENTS = os.path.join(HERE, "clients")


def run(cmd, **kw):
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=120, **kw)
    assert out.returncode == 0, f"{cmd} failed:\n{out.stdout}\n{out.stderr}"
    return out


def counts(items):
    return {i["title"]: i["count"] for i in items}


def requests_by(server, endpoint, encoding):
    """Ingest requests answered 200 with this endpoint and Content-Encoding, from /metrics."""
    pat = re.compile(r'lookout_ingest_requests_total\{([^}]*)\} (\d+)')
    total = 0
    for labels, n in pat.findall(server.metrics()):
        if f'endpoint="{endpoint}"' in labels and f'encoding="{encoding}"' in labels and 'status="200"' in labels:
            total += int(n)
    return total


PYTHON_ISSUES = {
    "ZeroDivisionError: division by zero": 3,
    "KeyError: 'A-1'": 2,
    "RuntimeError: checkout failed": 1,
    "user 17 not found": 4,
    "could not connect to db1 after 3 tries": 2,
    "card declined": 2,
}


@pytest.mark.parametrize("mode,encoding", [("gzip", "gzip"), ("brotli", "br")])
def test_sentry_python_sdk(server, mode, encoding):
    run([sys.executable, os.path.join(CLIENTS, "python_errors.py"), server.dsn, mode])
    items = server.wait_issues(lambda i: sum(x["count"] for x in i) == sum(PYTHON_ISSUES.values()))
    assert counts(items) == PYTHON_ISSUES
    by_title = {i["title"]: i for i in items}
    zde = by_title["ZeroDivisionError: division by zero"]
    assert zde["culprit"] == "__main__ in divide"
    assert zde["level"] == "error" and zde["status"] == "unresolved" and zde["user_count"] == 1
    assert zde["first_release"] == "shop@2.1.0"
    assert by_title["card declined"]["level"] == "warning"
    # The SDK chose the encoding we expect, and every request was accepted.
    assert requests_by(server, "envelope", encoding) >= 14
    other = "br" if encoding == "gzip" else "gzip"
    assert requests_by(server, "envelope", other) == 0
    # Filters and the event JSON as the UI shows them.
    staging = server.api("/api/v1/projects/1/issues?environment=staging&query=division")["items"]
    assert [i["title"] for i in staging] == ["ZeroDivisionError: division by zero"]
    assert server.api("/api/v1/projects/1/issues?environment=production")["items"] == []
    events = server.api(f"/api/v1/issues/{zde['id']}/events")["items"]
    assert len(events) == 3
    ev = server.api(f"/api/v1/projects/1/events/{events[0]['event_id']}")
    frames = ev["event"]["exception"]["values"][-1]["stacktrace"]["frames"]
    assert frames[-1]["function"] == "divide" and frames[-1]["context_line"].strip() == "return a / b"
    chained = server.api(f"/api/v1/issues/{by_title['RuntimeError: checkout failed']['id']}/events")["items"][0]
    values = server.api(f"/api/v1/projects/1/events/{chained['event_id']}")["event"]["exception"]["values"]
    assert [v["type"] for v in values] == ["ValueError", "RuntimeError"]


def test_sentry_node_sdk(server):
    node_dir = os.path.join(CLIENTS, "node")
    assert os.path.isdir(os.path.join(node_dir, "node_modules", "@sentry", "node")), "run npm ci in tests/sdk/clients/node"
    assert shutil.which("node"), "node is required"
    run(["node", os.path.join(node_dir, "errors.js"), server.dsn])
    items = server.wait_issues(lambda i: sum(x["count"] for x in i) == 5)
    titles = counts(items)
    assert len(titles) == 2, titles
    # Three parse errors from one code path are one issue, whatever their messages. The title is
    # the first event received, and the SDK sends concurrently, so either may come first.
    syntax = [t for t in titles if t.startswith("SyntaxError")]
    assert len(syntax) == 1 and titles[syntax[0]] == 3, titles
    # captureMessage carries a synthetic exception with a stack; it groups by message.
    orders = [t for t in titles if re.fullmatch(r"order [56] stuck in queue", t)]
    assert len(orders) == 1 and titles[orders[0]] == 2, titles
    assert requests_by(server, "envelope", "identity") >= 5


def test_raven_legacy_store_client(server):
    run([sys.executable, os.path.join(CLIENTS, "raven_store.py"), server.dsn])
    items = server.wait_issues(lambda i: sum(x["count"] for x in i) == 4)
    titles = counts(items)
    assert titles == {"IndexError: list index out of range": 2, "legacy job 77 finished with errors": 2}, titles
    assert requests_by(server, "store", "identity") + requests_by(server, "store", "deflate") >= 4
