//! Real network vantage points for the probe tests: each location's agent runs in its own
//! network namespace, joined to the host by a veth pair (`10.231.N.1` on the host, `10.231.N.2`
//! inside, a /30 each), with its default route through the host. A location's link can be cut
//! (`ip link set … down`), a real partition; and [`SourceTarget`] answers each source address
//! as the test says, so one target can fail for some locations only.
//!
//! Needs root and `ip` (iproute2). Without them the tests say so and pass, except under
//! `CI=true`, where a missing tool is a failure: CI must not pass without running them.

use std::collections::HashSet;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};

use tokio::io::AsyncWriteExt;
use tokio::net::TcpListener;

use crate::uptime::targets::read_head;

/// Whether namespaces can be made here; `false` (after saying why) when not, outside CI.
pub fn available() -> bool {
    let ip = Command::new("ip")
        .arg("-V")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    // The effective uid is the second field of /proc/self/status's Uid line.
    let root = std::fs::read_to_string("/proc/self/status").is_ok_and(|st| {
        st.lines()
            .find_map(|l| l.strip_prefix("Uid:"))
            .and_then(|ids| ids.split_whitespace().nth(1))
            == Some("0")
    });
    if ip && root {
        return true;
    }
    let why = if ip {
        "not root"
    } else {
        "`ip` (iproute2) is missing"
    };
    assert!(
        std::env::var("CI").as_deref() != Ok("true"),
        "network namespace tests cannot run under CI=true: {why}"
    );
    eprintln!("skipped: network namespace tests need root and iproute2 ({why})");
    false
}

fn ip(args: &[&str]) {
    let out = Command::new("ip").args(args).output().expect("run ip");
    assert!(
        out.status.success(),
        "ip {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A network namespace with a veth pair to the host; deleted (with the pair) when dropped, a
/// failing test's unwinding included.
pub struct Netns {
    /// The namespace's name.
    pub name: String,
    host_if: String,
    /// The host's end: where agents inside reach the server and the target.
    pub host_ip: Ipv4Addr,
    /// The namespace's end: the source address its agent's checks come from.
    pub ns_ip: Ipv4Addr,
    /// The held lock on its subnet number (released however the process ends).
    _subnet: std::fs::File,
}

/// Claims a subnet number, `n` or the next free one (1 to 250), under an exclusive lock on
/// `/run/lock/lookout-netns-<n>`: test processes running at once never share a subnet.
fn claim_subnet(n: u8) -> (u8, std::fs::File) {
    let dir = std::path::Path::new("/run/lock");
    let _ = std::fs::create_dir_all(dir);
    for k in 0..250u16 {
        let m = ((u16::from(n).saturating_sub(1) + k) % 250 + 1) as u8;
        let f = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(dir.join(format!("lookout-netns-{m}")))
            .expect("open a subnet lock file");
        if f.try_lock().is_ok() {
            return (m, f);
        }
    }
    panic!("all 250 test subnets are in use");
}

/// Deletes namespaces (and their host links) left by killed test processes: `lkns<pid>x<n>`
/// whose process is gone.
fn remove_leftovers() {
    let Ok(out) = Command::new("ip").args(["netns", "list"]).output() else {
        return;
    };
    for name in String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .filter_map(|n| n.strip_prefix("lkns"))
    {
        let Some((pid, _)) = name.split_once('x') else {
            continue;
        };
        if !pid.is_empty() && !std::path::Path::new("/proc").join(pid).exists() {
            let _ = Command::new("ip")
                .args(["netns", "del", &format!("lkns{name}")])
                .output();
            let _ = Command::new("ip")
                .args(["link", "del", &format!("lkh{name}")])
                .output();
        }
    }
}

impl Netns {
    /// A namespace on subnet `n` (1 to 250), or the next one free when another test process
    /// holds it.
    pub fn create(n: u8) -> Netns {
        remove_leftovers();
        let (n, subnet) = claim_subnet(n);
        // The full pid (at most 7 digits: interface names stay within 15 characters), so a
        // leftover's owner can be told dead.
        let tag = format!("{}x{n}", std::process::id());
        let name = format!("lkns{tag}");
        let host_if = format!("lkh{tag}");
        let peer_if = format!("lkp{tag}");
        let host_ip = Ipv4Addr::new(10, 231, n, 1);
        let ns_ip = Ipv4Addr::new(10, 231, n, 2);
        // Leftovers of a killed run with the same pid and number.
        let _ = Command::new("ip").args(["netns", "del", &name]).output();
        let _ = Command::new("ip").args(["link", "del", &host_if]).output();
        ip(&["netns", "add", &name]);
        let ns = Netns {
            name,
            host_if,
            host_ip,
            ns_ip,
            _subnet: subnet,
        };
        ip(&[
            "link",
            "add",
            &ns.host_if,
            "type",
            "veth",
            "peer",
            "name",
            &peer_if,
        ]);
        ip(&["link", "set", &peer_if, "netns", &ns.name]);
        ip(&["addr", "add", &format!("{host_ip}/30"), "dev", &ns.host_if]);
        ip(&["link", "set", &ns.host_if, "up"]);
        let inside = |args: &[&str]| {
            let mut all = vec!["netns", "exec", ns.name.as_str(), "ip"];
            all.extend_from_slice(args);
            ip(&all);
        };
        inside(&["addr", "add", &format!("{ns_ip}/30"), "dev", &peer_if]);
        inside(&["link", "set", &peer_if, "up"]);
        inside(&["link", "set", "lo", "up"]);
        inside(&["route", "add", "default", "via", &host_ip.to_string()]);
        ns
    }

    /// Cuts the link: nothing passes between the namespace and the host until [`Netns::mend`].
    pub fn cut(&self) {
        ip(&["link", "set", &self.host_if, "down"]);
    }

    /// Restores a cut link.
    pub fn mend(&self) {
        ip(&["link", "set", &self.host_if, "up"]);
    }

    /// A command run inside the namespace.
    pub fn command(&self, program: &std::path::Path) -> Command {
        dying_with_parent(&["ip", "netns", "exec", &self.name], program)
    }
}

/// A command running `program` (with `prefix` before it) that dies with SIGKILL when the test
/// process does (a panic's abort, a kill): no agent is left running after its test. The
/// workspace forbids `unsafe` (a `pre_exec` prctl), so util-linux's `setpriv --pdeathsig` sets
/// it and execs; `ip netns exec` execs too, which keeps the setting. Without `setpriv`, a plain
/// command.
pub fn dying_with_parent(prefix: &[&str], program: &std::path::Path) -> Command {
    let setpriv = Command::new("setpriv")
        .arg("--help")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    let mut c = if setpriv {
        let mut c = Command::new("setpriv");
        c.args(["--pdeathsig", "KILL", "--"]).args(prefix);
        c
    } else if let Some((first, rest)) = prefix.split_first() {
        let mut c = Command::new(first);
        c.args(rest);
        c
    } else {
        return Command::new(program);
    };
    c.arg(program);
    c
}

impl Netns {
    /// `http://<host end>:<port>`: the server as the namespace reaches it.
    pub fn url_of(&self, port: u16) -> String {
        format!("http://{}:{port}", self.host_ip)
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        // Deleting the namespace deletes its end of the pair, and with it the host's end.
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .output();
        let _ = Command::new("ip")
            .args(["link", "del", &self.host_if])
            .output();
    }
}

/// An HTTP target on every host address that answers 503 to the source addresses the test
/// marks failing and 200 to the others, and counts requests per source.
pub struct SourceTarget {
    /// Its port (on 0.0.0.0).
    pub port: u16,
    failing: Arc<Mutex<HashSet<IpAddr>>>,
    hits: Arc<Mutex<Vec<IpAddr>>>,
}

impl SourceTarget {
    /// Starts it.
    pub async fn start() -> SourceTarget {
        let l = TcpListener::bind("0.0.0.0:0").await.unwrap();
        let port = l.local_addr().unwrap().port();
        let failing: Arc<Mutex<HashSet<IpAddr>>> = Arc::default();
        let hits: Arc<Mutex<Vec<IpAddr>>> = Arc::default();
        let (f, h) = (failing.clone(), hits.clone());
        tokio::spawn(async move {
            while let Ok((s, peer)) = l.accept().await {
                tokio::spawn(answer(s, peer, f.clone(), h.clone()));
            }
        });
        SourceTarget {
            port,
            failing,
            hits,
        }
    }

    /// The URL monitors check: through `via` (any host address reaches it from everywhere).
    pub fn url(&self, via: Ipv4Addr) -> String {
        format!("http://{via}:{}/health", self.port)
    }

    /// Makes requests from `source` fail (503) or pass.
    pub fn fail_for(&self, source: Ipv4Addr, failing: bool) {
        let mut f = self.failing.lock().unwrap();
        if failing {
            f.insert(IpAddr::V4(source));
        } else {
            f.remove(&IpAddr::V4(source));
        }
    }

    /// Requests seen from `source`.
    pub fn hits_from(&self, source: Ipv4Addr) -> usize {
        let s = IpAddr::V4(source);
        self.hits
            .lock()
            .unwrap()
            .iter()
            .filter(|h| **h == s)
            .count()
    }
}

async fn answer(
    mut s: tokio::net::TcpStream,
    peer: SocketAddr,
    failing: Arc<Mutex<HashSet<IpAddr>>>,
    hits: Arc<Mutex<Vec<IpAddr>>>,
) {
    while read_head(&mut s).await.is_some() {
        hits.lock().unwrap().push(peer.ip());
        let status = if failing.lock().unwrap().contains(&peer.ip()) {
            503
        } else {
            200
        };
        let resp = format!("HTTP/1.1 {status} X\r\ncontent-length: 2\r\n\r\nok");
        if s.write_all(resp.as_bytes()).await.is_err() {
            return;
        }
    }
}
