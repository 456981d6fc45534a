"""What the Python benchmarks share: a process's CPU seconds and RSS read from /proc, and
`lookout serve` started on a fresh data dir with a bootstrap token, its URL read off the banner."""

import os
import subprocess
import tempfile
import threading

TICK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid):
    """User plus system CPU time of `pid`, in seconds."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def rss_mb(pid):
    """Resident memory of `pid`, in MB (0 once it is gone)."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def start_lookout(lookout, token, prefix):
    """`lookout serve` on a new data dir (random ports, `token` as the bootstrap admin token);
    returns (process, url, data dir). Its output is drained so it never blocks."""
    data = tempfile.mkdtemp(prefix=prefix)
    env = dict(os.environ, LOOKOUT_BOOTSTRAP_TOKEN=token, RUST_LOG="warn")
    srv = subprocess.Popen([lookout, "serve", "--data-dir", data, "--listen", "127.0.0.1:0", "--otlp-listen", "127.0.0.1:0"],
                           stdout=subprocess.PIPE, text=True, env=env)
    url = None
    for line in srv.stdout:
        if "UI and API:" in line:
            url = line.split()[-1]
            break
    threading.Thread(target=lambda: [None for _ in srv.stdout], daemon=True).start()
    return srv, url, data
