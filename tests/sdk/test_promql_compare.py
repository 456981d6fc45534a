"""PromQL asked of a real Prometheus (Debian's 2.42, scraping itself and node_exporter every
second) and of the Lookout it remote-writes to, at the same evaluation times: the answers must
agree exactly in result type, label sets and timestamps, and within 1e-9 relative in values.
Instant and range queries go through Lookout's HTTP API (/prometheus/api/v1/query and
query_range) and through `promtool query instant|range`; an unsupported function answers
Prometheus's error shape naming it.

Lookout trails Prometheus by a remote-write send interval, so each query is compared at a time a
few seconds in the past and asked again (with a fresh time) until the data has arrived; a real
disagreement never converges and fails with both answers shown.
"""

import json
import math
import time
import urllib.parse
import urllib.request

from harness import ADMIN_TOKEN
from promstack import get, need, promtool_query

# (query, also as a range query). Ranges are 30 s: the fixture scrapes every second.
QUERIES = [
    # Selectors and every matcher.
    ('up', True),
    ('up{job="node"}', True),
    ('up{job!="node"}', True),
    ('node_cpu_seconds_total{mode=~"idle|user|system"}', True),
    ('node_cpu_seconds_total{mode!~"idle|iowait|steal"}', True),
    ('{__name__="process_resident_memory_bytes"}', True),
    # Range vectors, offset and @.
    ('process_resident_memory_bytes[20s]', False),
    ('up offset 10s', True),
    ('process_resident_memory_bytes @ {at_20}', True),
    ('sum_over_time(up[20s] offset 5s)', True),
    # Counter and gauge functions.
    ('rate(node_cpu_seconds_total[30s])', True),
    ('irate(node_cpu_seconds_total[30s])', True),
    ('increase(prometheus_tsdb_head_samples_appended_total[30s])', True),
    ('delta(process_resident_memory_bytes[30s])', True),
    ('deriv(process_resident_memory_bytes[30s])', True),
    ('avg_over_time(process_resident_memory_bytes[30s])', True),
    ('max_over_time(go_goroutines[30s])', True),
    ('min_over_time(go_goroutines[30s])', True),
    ('count_over_time(up[30s])', True),
    ('quantile_over_time(0.9, process_resident_memory_bytes[30s])', True),
    ('stddev_over_time(process_resident_memory_bytes[30s])', True),
    ('last_over_time(process_cpu_seconds_total[30s])', True),
    # Aggregations.
    ('sum by (mode) (rate(node_cpu_seconds_total[30s]))', True),
    ('sum without (cpu) (node_cpu_seconds_total)', True),
    ('count by (job) (up)', True),
    ('avg without (instance) (process_resident_memory_bytes)', True),
    ('max by (job) (process_open_fds)', True),
    ('topk(5, node_cpu_seconds_total)', True),
    ('bottomk(2, node_cpu_seconds_total{mode=~"idle|user|system"})', True),
    ('quantile(0.9, rate(node_cpu_seconds_total[30s]))', True),
    ('histogram_quantile(0.9, sum by (le) (prometheus_http_response_size_bytes_bucket))', True),
    ('histogram_quantile(0.5, rate(prometheus_tsdb_compaction_chunk_range_seconds_bucket[30s]))', False),
    # Binary operators and matching.
    ('process_resident_memory_bytes / 1024 / 1024', True),
    ('up + ignoring(job) up', True),
    ('process_open_fds / on(job, instance) process_max_fds', True),
    ('node_cpu_seconds_total / on(instance) group_left count by (instance) (node_cpu_seconds_total)', True),
    ('count by (job) (up) * on(job) group_right node_cpu_seconds_total{mode="idle"}', True),
    ('rate(node_cpu_seconds_total[30s]) > bool 0.01', True),
    ('node_cpu_seconds_total > 10', True),
    ('up and on(job) up{job="node"}', True),
    ('up unless up{job="node"}', True),
    ('up or vector(0)', True),
    # absent, label_replace, time, vector, scalar.
    ('absent(no_such_metric{job="x"})', True),
    ('absent(up)', True),
    ('label_replace(up, "host", "$1", "instance", "(.*):.*")', True),
    ('time()', True),
    ('vector(1)', True),
    ('scalar(count(up))', True),
    ('time() - process_start_time_seconds', True),
    ('sum(rate(node_cpu_seconds_total[30s])) / scalar(count(count by (cpu) (node_cpu_seconds_total)))', True),
    # A subquery.
    ('max_over_time(rate(node_cpu_seconds_total[10s])[20s:5s])', True),
]


def close(a, b):
    """Prometheus's value strings compared: NaN and infinities exactly, numbers within 1e-9."""
    if a == b:
        return True
    x, y = float(a), float(b)
    if math.isnan(x) or math.isnan(y) or math.isinf(x) or math.isinf(y):
        return False
    return abs(x - y) <= 1e-9 * max(abs(x), abs(y))


def key(metric):
    return json.dumps(metric, sort_keys=True)


def differ(p, lk):
    """Why two `data` members differ, or None when they agree."""
    if p["resultType"] != lk["resultType"]:
        return f"result type {p['resultType']} vs {lk['resultType']}"
    kind = p["resultType"]
    if kind in ("scalar", "string"):
        pt, pv = p["result"]
        lt, lv = lk["result"]
        return None if pt == lt and close(pv, lv) else f"{p['result']} vs {lk['result']}"
    field = "value" if kind == "vector" else "values"
    ps = {key(s["metric"]): s[field] for s in p["result"]}
    ls = {key(s["metric"]): s[field] for s in lk["result"]}
    if len(ps) != len(p["result"]) or len(ls) != len(lk["result"]):
        return "a label set appears twice"
    if set(ps) != set(ls):
        return f"label sets: only Prometheus {sorted(set(ps) - set(ls))[:3]}, only Lookout {sorted(set(ls) - set(ps))[:3]}"
    for m, pv in ps.items():
        lv = ls[m]
        points = [(pv, lv)] if kind == "vector" else list(zip(pv, lv))
        if kind == "matrix" and len(pv) != len(lv):
            return f"{m}: {len(pv)} points vs {len(lv)}"
        for a, b in points:
            if a[0] != b[0] or not close(a[1], b[1]):
                return f"{m}: {a} vs {b}"
    return None


def ask(base, path, params, token=None):
    url = base + path + "?" + urllib.parse.urlencode(params)
    return get(url, token)["data"]


def wait_for_data(prom, lookout, seconds):
    """Until both have `seconds` of both scrape jobs."""
    deadline = time.time() + seconds + 60
    while True:
        now = time.time()
        q = {"query": f'count_over_time(up[{seconds}s])', "time": f"{now - 3:.3f}"}
        p = ask(prom, "/api/v1/query", q)
        lk = ask(lookout, "/prometheus/api/v1/query", q, ADMIN_TOKEN)
        if len(p["result"]) == 2 and all(float(s["value"][1]) >= seconds - 1 for s in p["result"]) \
                and differ(p, lk) is None:
            return
        assert time.time() < deadline, f"no {seconds} s of data: {p} vs {lk}"
        time.sleep(1)


def agree(prom, lookout, query, instant=True, tries=8):
    """Asks both at the same time until they agree; the agreed answer."""
    last = None
    for _ in range(tries):
        t = round(time.time() - 4, 3)
        text = query.replace("{at_20}", f"{t - 20:.3f}")
        if instant:
            path, params = "/api/v1/query", {"query": text, "time": f"{t:.3f}"}
        else:
            path, params = "/api/v1/query_range", {"query": text, "start": f"{t - 30:.3f}", "end": f"{t:.3f}", "step": "5"}
        p = ask(prom, path, params)
        lk = ask(lookout, "/prometheus" + path, params, ADMIN_TOKEN)
        last = differ(p, lk)
        if last is None:
            return p
        time.sleep(1)
    raise AssertionError(f"{'instant' if instant else 'range'} {query!r}: {last}")


def test_promql_answers_agree_with_prometheus(server, prometheus):
    wait_for_data(prometheus, server.url, 45)
    asked = 0
    for query, also_range in QUERIES:
        p = agree(prometheus, server.url, query)
        asked += 1
        if also_range:
            agree(prometheus, server.url, query, instant=False)
            asked += 1
        # A comparison of two empty answers shows nothing: each query selects data (absent()
        # of a present metric is the one meant to be empty).
        if query != "absent(up)":
            assert p["result"], query
    assert asked >= 50, asked


def test_promtool_and_errors_agree_with_prometheus(server, prometheus):
    wait_for_data(prometheus, server.url, 20)
    promtool = need("promtool")
    base = server.url.replace("http://", f"http://promtool:{ADMIN_TOKEN}@") + "/prometheus"

    def run(*args):
        return promtool_query(promtool, *args)

    for query in ["sum by (mode) (rate(node_cpu_seconds_total[10s]))", "up", "scalar(count(up))"]:
        for _ in range(8):
            t = f"{time.time() - 4:.3f}"
            want = run("instant", f"--time={t}", prometheus, query)
            if want == run("instant", f"--time={t}", base, query):
                break
            time.sleep(1)
        else:
            raise AssertionError(f"promtool query instant {query!r} differs")
        assert want, query
    for query in ["rate(node_cpu_seconds_total{mode=\"idle\"}[10s])", "count by (job) (up)"]:
        for _ in range(8):
            end = time.time() - 4
            args = ["range", f"--start={end - 20:.3f}", f"--end={end:.3f}", "--step=5s"]
            want = run(*args, prometheus, query)
            if want == run(*args, base, query):
                break
            time.sleep(1)
        else:
            raise AssertionError(f"promtool query range {query!r} differs")
        assert len(want) > 2, query

    # An unsupported function: Prometheus's error shape, naming it (Prometheus 2.42 has
    # holt_winters; Lookout refuses it rather than answer a different number).
    url = server.url + "/prometheus/api/v1/query?" + urllib.parse.urlencode(
        {"query": "holt_winters(process_resident_memory_bytes[1m], 0.5, 0.5)"})
    req = urllib.request.Request(url, headers={"Authorization": "Bearer " + ADMIN_TOKEN})
    try:
        urllib.request.urlopen(req, timeout=10)
        raise AssertionError("holt_winters was answered")
    except urllib.error.HTTPError as e:
        assert e.code == 400
        body = json.loads(e.read())
        assert body["status"] == "error" and body["errorType"] == "bad_data", body
        assert "holt_winters" in body["error"], body
    # A syntax error is bad_data in both.
    for base_url, prefix, token in [(prometheus, "", None), (server.url, "/prometheus", ADMIN_TOKEN)]:
        req = urllib.request.Request(base_url + prefix + "/api/v1/query?query=sum(",
                                     headers={"Authorization": "Bearer " + token} if token else {})
        try:
            urllib.request.urlopen(req, timeout=10)
            raise AssertionError("sum( was answered")
        except urllib.error.HTTPError as e:
            assert e.code == 400 and json.loads(e.read())["errorType"] == "bad_data"
