"""Every page and list at a team's full data (issue 31, target 4); see bench/scale.sh.

For each backend: start the release binary on a fresh database, seed a nearly empty data set and
measure every page, then seed the full data set (times printed per phase) and measure again.
Prints one table: page | backend | p50 | p95 | empty p95 | ratio | OK/MISS against the target
(p95 <= 100 ms and <= 3x the same page on the nearly empty database).

Needs LOOKOUT_BIN (release lookout) and SCALE_SEED (the release scale_seed example).
"""
import argparse
import concurrent.futures
import http.cookiejar
import json
import os
import re
import subprocess
import sys
import time
import urllib.parse
import urllib.request

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests"))
from harness import Server, ADMIN_EMAIL, ADMIN_PASSWORD, ADMIN_TOKEN  # noqa: E402

SEED = os.environ.get("SCALE_SEED", "")
PG_ADMIN = os.environ.get("LOOKOUT_TEST_PG_URL", "postgres://postgres@127.0.0.1:5432/postgres")
TARGET_MS, TARGET_RATIO = 100.0, 3.0

# The full data set of the issue; --scale multiplies every count.
FULL = {"issues": 100_000, "events": 2_000_000, "monitors": 10_000, "spans": 10_000_000,
        "incidents": 50_000, "series": 5_000}
# "A nearly empty database": enough for every page to have something to show.
EMPTY = {"issues": 10, "events": 20, "monitors": 5, "spans": 1_000, "incidents": 5, "series": 5}


def log(msg):
    print(msg, flush=True)


def psql(sql, url=PG_ADMIN):
    subprocess.run(["psql", url, "-qAt", "-v", "ON_ERROR_STOP=1", "-c", sql], check=True,
                   stdout=subprocess.DEVNULL)


def metric(s, name):
    """Sum of a counter over its labels, from /metrics."""
    total = 0.0
    for line in s.metrics().splitlines():
        if line.startswith(name) and not line.startswith("#"):
            total += float(line.split()[-1])
    return total


def wait_metric(s, name, at_least, what, timeout=3600):
    t0 = time.time()
    while metric(s, name) < at_least:
        if time.time() - t0 > timeout:
            raise AssertionError(f"{what}: {metric(s, name)} of {at_least} after {timeout} s")
        time.sleep(0.5)


def post_json(url, body, token=None):
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = "Bearer " + token
    req = urllib.request.Request(url, data=json.dumps(body).encode(), headers=headers, method="POST")
    with urllib.request.urlopen(req, timeout=60) as r:
        return json.loads(r.read() or b"null")


def parallel(fn, items, workers=6):
    with concurrent.futures.ThreadPoolExecutor(workers) as ex:
        return list(ex.map(fn, items))


class Seeder:
    """Seeds one server in steps; `have` counts what is already there so the full seed tops up
    the nearly empty one."""

    def __init__(self, s, db_url):
        self.s, self.db_url = s, db_url
        self.have = {k: 0 for k in FULL}
        self.times = []
        self.integ = None
        self.key = s.dsn.split("//")[1].split("@")[0]

    def phase(self, name, fn, *args):
        t0 = time.time()
        fn(*args)
        took = time.time() - t0
        self.times.append((name, took))
        log(f"  seeded {name} in {took:.1f} s")

    def monitors(self, n):
        first = self.have["monitors"] + 1
        # Real HTTP monitors of this very server, every 5 minutes (33 checks/s at 10,000).
        body = lambda i: {"name": f"svc-{i:05d}", "type": "http", "url": self.s.url + "/healthz",
                          "interval_seconds": 300}
        parallel(lambda i: self.s.api("/api/v1/monitors", "POST", body(i)), range(first, first + n))
        self.have["monitors"] += n
        out = subprocess.run([SEED, "history", "--database-url", self.db_url, "--monitors",
                              f"{first}-{first + n - 1}", "--days", "90", "--interval", "300"],
                             check=True, capture_output=True, text=True).stdout
        log("    " + out.strip().replace("\n", "; "))

    def incidents(self, n):
        if self.integ is None:
            self.integ = self.s.api("/api/v1/integrations", "POST", {"name": "am", "type": "alertmanager",
                                                                    "service": "shop"})
        first = self.have["incidents"]
        # Most of a team's incidents are history: 95 % fire and resolve, the rest stay open.
        def batch(lo, status):
            alerts = [{"status": status, "labels": {"alertname": f"HighLatency{i % 50}", "severity": "critical",
                                                    "instance": f"node-{i}"},
                       "annotations": {"description": f"p95 above 500 ms on node-{i}"},
                       "fingerprint": f"{i:016x}", "generatorURL": "http://prom/graph"}
                      for i in range(lo, min(lo + 200, first + n))
                      if status == "firing" or i % 20 != 0]
            if alerts:
                post_json(self.integ["url"], {"version": "4", "status": status, "alerts": alerts})
        parallel(lambda lo: batch(lo, "firing"), range(first, first + n, 200), workers=2)
        parallel(lambda lo: batch(lo, "resolved"), range(first, first + n, 200), workers=2)
        self.have["incidents"] += n

    def series(self, n):
        first = self.have["series"]
        def push(i):
            # 100 nightly points with a step at point 70 in a third of them: change points to list.
            step = 1.3 if i % 3 == 0 else 1.0
            pts = [{"value": 100.0 * (step if k >= 70 else 1.0) + (k * 7919 + i) % 5,
                    "at": 1_780_000_000_000 + k * 86_400_000, "commit": f"{k:07x}"} for k in range(100)]
            self.s.api(f"/api/v1/series/bench.latency.{i}/points", "POST",
                       {"tags": {"machine": f"m{i % 7}"}, "unit": "ms", "points": pts})
        parallel(push, range(first, first + n))
        self.have["series"] += n

    def events(self, events, groups):
        before = metric(self.s, "lookout_errors_processed_items_total")
        out = subprocess.run([SEED, "events", "--url", self.s.url + "/api/1/envelope/", "--key", self.key,
                              "--events", str(events), "--first", str(self.have["events"]),
                              "--groups", str(groups), "--concurrency", "16"],
                             check=True, capture_output=True, text=True).stdout
        log("    " + out.strip().replace("\n", "; "))
        wait_metric(self.s, "lookout_errors_processed_items_total", before + events, "events processed")
        self.have["events"] += events
        self.have["issues"] = max(self.have["issues"], groups)

    def spans(self, n):
        before = metric(self.s, "lookout_apm_rolled_spans_total")
        out = subprocess.run([SEED, "spans", "--url", self.s.otlp_url.removesuffix("/v1/traces"), "--spans", str(n), "--concurrency", "4"],
                             check=True, capture_output=True, text=True).stdout
        log("    " + out.strip().replace("\n", "; "))
        wait_metric(self.s, "lookout_apm_rolled_spans_total", before + n, "spans rolled up")
        self.have["spans"] += n

    def seed(self, want):
        add = {k: max(0, want[k] - self.have[k]) for k in want}
        if add["monitors"]:
            self.phase(f"{add['monitors']:,} monitors (API) + 90 days of results (store)", self.monitors, add["monitors"])
        if add["incidents"]:
            self.phase(f"{add['incidents']:,} incidents (Alertmanager webhook)", self.incidents, add["incidents"])
        if add["series"]:
            self.phase(f"{add['series']:,} series x 100 points (API)", self.series, add["series"])
        if add["events"]:
            self.phase(f"{add['events']:,} events over {want['issues']:,} issues (Sentry envelopes, processed)",
                       self.events, add["events"], want["issues"])
        if add["spans"]:
            self.phase(f"{add['spans']:,} spans (OTLP/HTTP JSON, rolled up)", self.spans, add["spans"])


def signed_in(s):
    jar = http.cookiejar.CookieJar()
    op = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))
    page = op.open(s.url + "/login").read().decode()
    csrf = re.search(r'name="csrf" value="([^"]+)"', page).group(1)
    data = urllib.parse.urlencode({"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD, "csrf": csrf}).encode()
    op.open(s.url + "/login", data=data).read()
    return op


def pages(s):
    """The pages to time, with the ids of things that exist (the loudest issue, a monitor with
    history, the newest incident, a trace, a series)."""
    q = urllib.parse.quote
    loud = s.api("/api/v1/projects/1/issues?sort=events&limit=1")["items"][0]["id"]
    # Page 41 of the issue list (25 a page), reached by following `next` as a client would.
    cursor, nxt = None, None
    for _ in range(10):
        r = s.api("/api/v1/projects/1/issues?limit=100" + (f"&cursor={q(nxt)}" if nxt else ""))
        nxt = r.get("next")
        if not nxt:
            break
        cursor = nxt
    inc = s.api("/api/v1/incidents")["items"][0]["id"]
    traces = s.api("/api/v1/traces?limit=1")
    trace = (traces.get("items") or traces.get("traces") or [{}])[0].get("trace_id", "0" * 32)
    api = [
        ("API issues", "/api/v1/projects/1/issues"),
        ("API issues ?query=Payment", "/api/v1/projects/1/issues?query=Payment"),
        ("API issues ?query=rare words", "/api/v1/projects/1/issues?query=" + q("order 4242")),
        ("API issues ?environment=", "/api/v1/projects/1/issues?environment=staging"),
        ("API issues ?release=", "/api/v1/projects/1/issues?release=" + q("shop@1.7.0")),
        ("API issues ?sort=events", "/api/v1/projects/1/issues?sort=events"),
        ("API issues, far page", "/api/v1/projects/1/issues?limit=100" + (f"&cursor={q(cursor)}" if cursor else "")),
        ("API issue events", f"/api/v1/issues/{loud}/events"),
        ("API monitors", "/api/v1/monitors"),
        ("API monitor results", "/api/v1/monitors/1/results"),
        ("API incidents", "/api/v1/incidents"),
        ("API traces", "/api/v1/traces"),
        ("API trace", f"/api/v1/traces/{trace}"),
        ("API services", "/api/v1/apm/services"),
        ("API series", "/api/v1/series"),
        ("API regressions", "/api/v1/regressions"),
        ("API reports history", "/api/v1/reports/history"),
    ]
    ui = [
        ("/errors", "/errors"),
        ("/errors?query=", "/errors?query=Payment"),
        ("/errors?environment=", "/errors?environment=staging"),
        ("/errors/issues/{id}", f"/errors/issues/{loud}"),
        ("/uptime", "/uptime"),
        ("/uptime/monitors/{id}", "/uptime/monitors/1"),
        ("/incidents", "/incidents"),
        ("/incidents/{id}", f"/incidents/{inc}"),
        ("/performance", "/performance"),
        ("/performance/traces", "/performance/traces"),
        ("/performance/traces/{id}", f"/performance/traces/{trace}"),
        ("/regressions", "/regressions"),
        ("/reports", "/reports"),
    ]
    return api, ui


def measure(s, reps):
    """p50 and p95 (nearest rank) of `reps` signed-in GETs of every page, after 2 unmeasured."""
    op = signed_in(s)
    api, ui = pages(s)
    out = {}
    for name, path in api + ui:
        if path.startswith("/api/"):
            req = lambda: urllib.request.Request(s.url + path, headers={"Authorization": "Bearer " + ADMIN_TOKEN})
        else:
            req = lambda: s.url + path
        times = []
        status = 200
        for i in range(reps + 2):
            t = time.perf_counter()
            try:
                r = op.open(req(), timeout=120)
                r.read()
                status = r.status
            except urllib.error.HTTPError as e:
                status = e.code
            if i >= 2:
                times.append((time.perf_counter() - t) * 1000)
        times.sort()
        p50 = times[len(times) // 2]
        p95 = times[max(0, -(-len(times) * 95 // 100) - 1)]
        out[name] = (p50, p95, status)
    return out


def run_backend(backend, scale, reps):
    want = {k: max(EMPTY[k], int(v * scale)) for k, v in FULL.items()}
    env = {"LOOKOUT_ADMIN_EMAIL": ADMIN_EMAIL, "LOOKOUT_ADMIN_PASSWORD": ADMIN_PASSWORD, "RUST_LOG": "error"}
    db = None
    if backend == "postgres":
        db = f"lookout_scale_{os.getpid()}"
        psql(f"CREATE DATABASE {db}")
        base = PG_ADMIN.rsplit("/", 1)[0]
        env["LOOKOUT_DATABASE_URL"] = f"{base}/{db}"
    s = Server(env)
    try:
        db_url = env.get("LOOKOUT_DATABASE_URL") or f"sqlite://{s.dir}/lookout.db?mode=rwc"
        seeder = Seeder(s, db_url)
        # PostgreSQL's planner and index-only scans depend on statistics and the visibility map,
        # which autovacuum brings up to date within minutes of a bulk load; measuring before it
        # has run would time a state no running server stays in. So each seed ends with what
        # autovacuum does (timed with the seeding).
        def settle():
            if db:
                seeder.phase("VACUUM (ANALYZE), as autovacuum does after a bulk load", psql,
                             "VACUUM (ANALYZE)", env["LOOKOUT_DATABASE_URL"])
        log(f"== {backend}: nearly empty database")
        seeder.seed(EMPTY)
        settle()
        empty = measure(s, reps)
        log(f"== {backend}: seeding {', '.join(f'{v:,} {k}' for k, v in want.items())} (scale {scale})")
        t0 = time.time()
        seeder.seed(want)
        settle()
        seed_s = time.time() - t0
        log(f"  seeding took {seed_s:.0f} s in all")
        full = measure(s, reps)
        return empty, full, seeder.times, seed_s, want
    finally:
        s.stop()
        if db:
            psql(f"DROP DATABASE IF EXISTS {db} WITH (FORCE)")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--scale", type=float, default=1.0)
    ap.add_argument("--backend", choices=["sqlite", "postgres", "both"], default="both")
    ap.add_argument("--reps", type=int, default=30)
    a = ap.parse_args()
    backends = ["sqlite", "postgres"] if a.backend == "both" else [a.backend]
    results = {b: run_backend(b, a.scale, a.reps) for b in backends}
    log("")
    for b, (_, _, times, total, want) in results.items():
        log(f"seeding on {b} (scale {a.scale}: {', '.join(f'{v:,} {k}' for k, v in want.items())}): {total:.0f} s")
        for name, took in times:
            log(f"  {took:7.1f} s  {name}")
    log("")
    log(f"{'page':32s} {'backend':9s} {'p50 ms':>8s} {'p95 ms':>8s} {'empty p95':>10s} {'ratio':>6s}  target              status")
    misses = 0
    for b, (empty, full, _, _, _) in results.items():
        for name, (p50, p95, status) in full.items():
            e95 = empty[name][1]
            ratio = p95 / e95 if e95 > 0 else 0
            ok = status == 200 and p95 <= TARGET_MS and ratio <= TARGET_RATIO
            misses += not ok
            note = "" if status == 200 else f" (HTTP {status})"
            log(f"{name:32s} {b:9s} {p50:8.1f} {p95:8.1f} {e95:10.1f} {ratio:5.1f}x  <=100 ms, <=3x empty  "
                f"{'OK' if ok else 'MISS'}{note}")
    log(f"\nscale {a.scale}; {misses} of {sum(len(r[1]) for r in results.values())} page/backend pairs miss")
    return 1 if misses else 0


if __name__ == "__main__":
    sys.exit(main())
