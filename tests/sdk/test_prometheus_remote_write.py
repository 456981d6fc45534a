"""A real Prometheus (Debian's package) scraping itself and a real node_exporter, remote-writing
to Lookout: Lookout's /series, /labels and /label/…/values answers must equal Prometheus's own,
and `promtool query series|labels` must print the same against both.

Debian 12 ships Prometheus 2.42, which speaks remote write 1.0 only (2.0's
`protobuf_message: io.prometheus.write.v2.Request` came in 2.54); 2.0 is tested in the Rust e2e
suite (crates/lookout/tests/e2e/metrics) with messages built from the protocol's definitions.
"""

import json
import time
import urllib.parse

from harness import ADMIN_TOKEN
from promstack import get, need, promtool_query


def answers(prom, lookout, path):
    """The same API path asked of Prometheus and of Lookout."""
    return get(prom + "/api/v1/" + path)["data"], get(lookout + "/prometheus/api/v1/" + path, ADMIN_TOKEN)["data"]


def until_equal(prom, lookout, path, timeout=60):
    """Waits until both answer `path` alike (Lookout trails Prometheus by a send interval, and
    Prometheus grows series of its own as it is queried); returns the answer."""
    deadline = time.time() + timeout
    while True:
        p, lk = answers(prom, lookout, path)
        key = lambda v: json.dumps(v, sort_keys=True)  # noqa: E731
        if isinstance(p, list) and sorted(p, key=key) == sorted(lk, key=key) and p:
            return p
        if time.time() > deadline:
            missing = [x for x in p if x not in lk][:5]
            extra = [x for x in lk if x not in p][:5]
            raise AssertionError(f"{path}: {len(p)} from Prometheus, {len(lk)} from Lookout; "
                                 f"missing {missing}, extra {extra}")
        time.sleep(1)


def test_lookout_answers_like_the_prometheus_that_writes_to_it(server, prometheus):
    # Let both scrape jobs run a few times first.
    deadline = time.time() + 30
    while len(get(prometheus + "/api/v1/query?query=up")["data"]["result"]) < 2:
        assert time.time() < deadline, "Prometheus did not scrape both targets"
        time.sleep(0.5)
    everything = urllib.parse.quote('{__name__=~".+"}')
    series = until_equal(prometheus, server.url, f"series?match[]={everything}")
    assert len(series) > 500, len(series)  # node_exporter alone has hundreds
    until_equal(prometheus, server.url, "labels")
    for label in ["job", "__name__", "instance", "mode"]:
        until_equal(prometheus, server.url, f"label/{label}/values")
    node_only = urllib.parse.quote('{job="node", __name__=~"node_cpu.*"}')
    until_equal(prometheus, server.url, f"series?match[]={node_only}")
    until_equal(prometheus, server.url, f"labels?match[]={node_only}")
    # Metadata came along: every family Lookout knows has the type Prometheus gives it.
    p_meta = get(prometheus + "/api/v1/metadata")["data"]
    l_meta = get(server.url + "/prometheus/api/v1/metadata", ADMIN_TOKEN)["data"]
    assert len(l_meta) > 100, len(l_meta)
    for name, entries in l_meta.items():
        assert name in p_meta, name
        assert entries[0]["type"] in {e["type"] for e in p_meta[name]}, name

    # promtool against both prints the same (credentials in the URL: promtool sends them as
    # basic auth, the way Lookout takes an API token).
    promtool = need("promtool")
    base = server.url.replace("http://", f"http://promtool:{ADMIN_TOKEN}@") + "/prometheus"

    def run(*args):
        return promtool_query(promtool, *args)

    want = run("series", "--match=up", prometheus)
    assert want == run("series", "--match=up", base) and len(want) == 2, want
    want = run("labels", prometheus, "job")
    assert want == run("labels", base, "job") == ["node", "prometheus"], want
