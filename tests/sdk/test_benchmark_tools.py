"""Real benchmark tools feed regression detection: pytest-benchmark, hyperfine and Google Benchmark
write their own JSON, `lookout regress push|check --file` reads it, and the series on the server
hold the figures those tools measured."""

import json
import os
import shutil
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from harness import ADMIN_TOKEN, lookout_bin  # noqa: E402


def regress(server, *args):
    r = subprocess.run([lookout_bin(), "regress", *args, "--server", server.url, "--token", ADMIN_TOKEN],
                       capture_output=True, text=True, timeout=60)
    return r


def series(server, name):
    items = server.api("/api/v1/series?name=" + urllib_quote(name))["items"]
    assert len(items) == 1, items
    return items[0]


def urllib_quote(s):
    from urllib.parse import quote
    return quote(s, safe="")


def need(tool):
    path = shutil.which(tool)
    assert path, f"{tool} is required (.ci/run installs it)"
    return path


def test_pytest_benchmark_results_become_a_series(server):
    with tempfile.TemporaryDirectory() as d:
        with open(os.path.join(d, "test_fib.py"), "w") as f:
            f.write("def fib(n):\n    return n if n < 2 else fib(n - 1) + fib(n - 2)\n\n"
                    "def test_fib(benchmark):\n    assert benchmark(fib, 12) == 144\n")
        out = os.path.join(d, "bench.json")
        r = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "test_fib.py",
                            "--benchmark-json", out, "--benchmark-min-rounds", "5"],
                           cwd=d, capture_output=True, text=True, timeout=120)
        assert r.returncode == 0, r.stdout + r.stderr
        measured = json.load(open(out))["benchmarks"][0]["stats"]["mean"]
        r = regress(server, "push", "--file", out, "--tag", "python=3", "--commit", "aaa111")
        assert r.returncode == 0, r.stdout + r.stderr
        assert "ok          test_fib.py::test_fib {python=3}" in r.stdout, r.stdout
    s = series(server, "test_fib.py::test_fib")
    assert s["unit"] == "s" and s["direction"] == "lower_is_better"
    assert abs(s["last_value"] - measured) < 1e-12
    points = server.api(f"/api/v1/series/{s['id']}/points")["items"]
    assert points[0]["commit"] == "aaa111" and points[0]["source"] == "pytest-benchmark"


def test_hyperfine_results_are_checked_in_ci(server):
    hyperfine = need("hyperfine")
    with tempfile.TemporaryDirectory() as d:
        out = os.path.join(d, "h.json")
        r = subprocess.run([hyperfine, "--runs", "5", "--warmup", "1", "-N", "--export-json", out, "true", "sleep 0.02"],
                           capture_output=True, text=True, timeout=120)
        assert r.returncode == 0, r.stdout + r.stderr
        results = json.load(open(out))["results"]
        r = regress(server, "check", "--series", "cli", "--file", out)
        assert r.returncode == 0, r.stdout + r.stderr  # first points: nothing to regress from
        assert len(r.stdout.strip().splitlines()) == 2, r.stdout
    for res in results:
        s = series(server, "cli/" + res["command"])
        assert s["unit"] == "s"
        assert abs(s["last_value"] - res["mean"]) < 1e-12
    assert series(server, "cli/sleep 0.02")["last_value"] > 0.015


def test_google_benchmark_results_become_series(server):
    gxx = need("g++")
    src = r"""
#include <benchmark/benchmark.h>
#include <vector>
#include <algorithm>
static void BM_Sort(benchmark::State& state) {
  std::vector<int> v(state.range(0));
  for (auto _ : state) {
    for (size_t i = 0; i < v.size(); i++) v[i] = (int)((i * 7919) % 1009);
    std::sort(v.begin(), v.end());
    benchmark::DoNotOptimize(v.data());
  }
}
BENCHMARK(BM_Sort)->Arg(256)->Arg(4096);
BENCHMARK_MAIN();
"""
    with tempfile.TemporaryDirectory() as d:
        with open(os.path.join(d, "b.cc"), "w") as f:
            f.write(src)
        exe = os.path.join(d, "b")
        r = subprocess.run([gxx, "-O2", "b.cc", "-o", exe, "-lbenchmark", "-lpthread"], cwd=d,
                           capture_output=True, text=True, timeout=180)
        assert r.returncode == 0, "libbenchmark-dev is required (.ci/run installs it): " + r.stderr
        out = os.path.join(d, "g.json")
        r = subprocess.run([exe, "--benchmark_format=json", f"--benchmark_out={out}", "--benchmark_repetitions=3",
                            "--benchmark_min_time=0.01"], capture_output=True, text=True, timeout=120)
        assert r.returncode == 0, r.stderr
        rows = json.load(open(out))["benchmarks"]
        r = regress(server, "push", "--file", out, "--series", "sort")
        assert r.returncode == 0, r.stdout + r.stderr
    for arg in ("256", "4096"):
        mean = next(b for b in rows if b.get("aggregate_name") == "mean" and b["run_name"] == f"BM_Sort/{arg}")
        s = series(server, f"sort/BM_Sort/{arg}")
        assert s["unit"] == mean["time_unit"]
        assert abs(s["last_value"] - mean["real_time"]) < 1e-9, (s, mean)
    assert series(server, "sort/BM_Sort/4096")["last_value"] > series(server, "sort/BM_Sort/256")["last_value"]
