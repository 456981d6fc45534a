"""The pages a team works in (issue 25) with some data behind them: 30 Alertmanager incidents, 10
monitors, 6 users on a Berlin schedule. Prints the median and the slowest of 20 signed-in GETs of
each page next to the target (every page under 320 ms). The binary is LOOKOUT_BIN (default: the
debug build; bench/pages.sh passes the release build)."""
import http.cookiejar
import json
import os
import re
import statistics
import sys
import time
import urllib.parse
import urllib.request
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests"))
from harness import Server, ADMIN_EMAIL, ADMIN_PASSWORD

s = Server({"LOOKOUT_ADMIN_EMAIL": ADMIN_EMAIL, "LOOKOUT_ADMIN_PASSWORD": ADMIN_PASSWORD})
try:
    ch = s.api("/api/v1/channels", "POST", {"name": "hook", "type": "webhook", "url": "http://127.0.0.1:9/h"})
    users = [s.api("/api/v1/users", "POST", {"email": f"u{i}@example.com", "password": "correct horse battery", "role": "member"})["id"] for i in range(5)]
    sched = s.api("/api/v1/schedules", "POST", {"name": "Primary", "time_zone": "Europe/Berlin", "schedule_layers": [
        {"start": "2020-01-01T00:00:00Z", "rotation_virtual_start": "2020-01-06T09:00:00+01:00", "rotation_turn_length_seconds": 28800, "users": users}]})
    ep = s.api("/api/v1/escalation-policies", "POST", {"name": "Ops", "escalation_rules": [
        {"escalation_delay_in_minutes": 10, "targets": [{"type": "schedule", "id": sched["id"]}, {"type": "channel", "id": ch["id"]}]}]})
    integ = s.api("/api/v1/integrations", "POST", {"name": "am", "type": "alertmanager", "escalation_policy_id": ep["id"], "service": "pay"})
    for i in range(30):
        body = {"version": "4", "status": "firing", "alerts": [{"status": "firing", "labels": {"alertname": f"A{i}", "severity": "critical"},
                "annotations": {"description": "x" * 80}, "fingerprint": f"{i:016x}", "generatorURL": "http://prom/graph"}]}
        req = urllib.request.Request(integ["url"], data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}, method="POST")
        urllib.request.urlopen(req, timeout=10).read()
    for i in range(10):
        s.api("/api/v1/monitors", "POST", {"name": f"m{i}", "type": "tcp", "host": "127.0.0.1", "port": 9, "interval_seconds": 30})
    time.sleep(3)
    jar = http.cookiejar.CookieJar()
    op = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))
    page = op.open(s.url + "/login").read().decode()
    csrf = re.search(r'name="csrf" value="([^"]+)"', page).group(1)
    data = urllib.parse.urlencode({"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD, "csrf": csrf}).encode()
    op.open(s.url + "/login", data=data).read()
    inc = s.api("/api/v1/incidents")["items"][0]["id"]
    for path in ["/", "/activity", "/incidents", f"/incidents/{inc}", "/alerts", "/on-call", f"/on-call/schedules/{sched['id']}", "/uptime", "/uptime/monitors/1", "/dashboards", "/operations"]:
        times = []
        for _ in range(20):
            t = time.perf_counter(); r = op.open(s.url + path); r.read(); times.append((time.perf_counter() - t) * 1000)
            assert r.status == 200, (path, r.status)
        print(f"{path:32s} median {statistics.median(times):6.1f} ms   max {max(times):6.1f} ms   (target: every page under 320 ms)")
finally:
    s.stop()
