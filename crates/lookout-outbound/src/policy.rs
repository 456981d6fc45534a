//! The outbound network policy: which addresses Lookout may reach on a user's behalf.
//!
//! Monitors, notification channels, report deliveries and database targets are created by
//! users, so every request to them is one Lookout makes for someone else. Cloud metadata
//! services and link-local addresses hand out credentials to whoever asks from inside the host,
//! so they are denied by default, in every form that reaches them (IPv4, IPv4-mapped IPv6, the
//! NAT64 prefix); operators may deny more (private ranges, loopback) or allow only listed
//! networks.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::{IpNet, Ipv6Net};

/// Networks denied unless explicitly allowed: "this host" (`0.0.0.0/8` and `::` reach local
/// services on Linux), link-local (where cloud metadata lives), the well-known metadata
/// addresses of AWS (IPv6), Alibaba and Oracle, and the metadata address in the NAT64 prefix
/// (which a NAT64 gateway forwards to 169.254.169.254).
pub const DEFAULT_DENY: &[&str] = &[
    "0.0.0.0/8",
    "::/128",
    "169.254.0.0/16",
    "fe80::/10",
    "fd00:ec2::254/128",
    "100.100.100.200/32",
    "192.0.0.192/32",
    "64:ff9b::a9fe:a9fe/128",
];

/// The NAT64 well-known prefix (RFC 6052): `64:ff9b::a.b.c.d` reaches IPv4 `a.b.c.d` through a
/// NAT64 gateway, so an address there is judged as the IPv4 address it carries as well.
const NAT64: Ipv6Net = match Ipv6Net::new(Ipv6Addr::new(0x64, 0xff9b, 0, 0, 0, 0, 0, 0), 96) {
    Ok(n) => n,
    Err(_) => panic!("the NAT64 prefix is a valid network"),
};

/// Which networks requests made on a user's behalf may reach.
#[derive(Debug, Clone)]
pub struct NetPolicy {
    deny: Vec<IpNet>,
    allow: Vec<IpNet>,
}

impl Default for NetPolicy {
    fn default() -> Self {
        NetPolicy::new(&[], &[]).unwrap_or(NetPolicy {
            deny: Vec::new(),
            allow: Vec::new(),
        })
    }
}

fn parse(s: &str) -> Result<IpNet, String> {
    s.parse::<IpNet>()
        .or_else(|_| s.parse::<IpAddr>().map(IpNet::from))
        .map_err(|_| format!("{s:?} is not a network (use CIDR, like 10.0.0.0/8)"))
}

impl NetPolicy {
    /// The default deny list plus `deny`; when `allow` is not empty, only those networks (an
    /// allowed network also lifts a default denial, e.g. to watch a metadata endpoint on purpose).
    pub fn new(deny: &[String], allow: &[String]) -> Result<NetPolicy, String> {
        let mut d = DEFAULT_DENY
            .iter()
            .map(|s| parse(s))
            .collect::<Result<Vec<_>, _>>()?;
        for s in deny {
            d.push(parse(s)?);
        }
        let a = allow
            .iter()
            .map(|s| parse(s))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(NetPolicy { deny: d, allow: a })
    }

    fn allowed(&self, ip: IpAddr) -> bool {
        self.allow.iter().any(|n| n.contains(&ip))
    }

    fn denied(&self, ip: IpAddr) -> bool {
        !self.allowed(ip) && self.deny.iter().any(|n| n.contains(&ip))
    }

    /// Why `ip` may not be reached, or `None` when it may. IPv4-mapped IPv6 addresses are
    /// judged as the IPv4 address they are; NAT64 ones as both.
    pub fn refuses(&self, ip: IpAddr) -> Option<String> {
        let ip = ip.to_canonical();
        if !self.allow.is_empty() && !self.allowed(ip) {
            return Some(format!(
                "{ip} is not in the allowed networks (outbound policy)"
            ));
        }
        if self.denied(ip) {
            return Some(format!("{ip} is in a denied network (outbound policy)"));
        }
        if let Some(v4) = nat64_embedded(ip) {
            if self.denied(IpAddr::V4(v4)) {
                return Some(format!(
                    "{ip} (NAT64 for {v4}) is in a denied network (outbound policy)"
                ));
            }
        }
        None
    }
}

/// The IPv4 address a NAT64 address carries.
fn nat64_embedded(ip: IpAddr) -> Option<Ipv4Addr> {
    match ip {
        IpAddr::V6(v6) if NAT64.contains(&v6) => {
            let [.., a, b, c, d] = v6.octets();
            Some(Ipv4Addr::new(a, b, c, d))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(p: &NetPolicy, ip: &str) -> bool {
        p.refuses(ip.parse().unwrap()).is_some()
    }

    #[test]
    fn metadata_and_link_local_are_denied_by_default() {
        let p = NetPolicy::default();
        assert!(refused(&p, "169.254.169.254"));
        assert!(refused(&p, "::ffff:169.254.169.254"));
        assert!(refused(&p, "fe80::1"));
        assert!(refused(&p, "fd00:ec2::254"));
        assert!(!refused(&p, "127.0.0.1"));
        assert!(!refused(&p, "::1"));
        assert!(!refused(&p, "93.184.216.34"));
    }

    #[test]
    fn unspecified_addresses_are_denied_by_default() {
        // Connecting to 0.0.0.0 or :: reaches the local host's listeners on Linux.
        let p = NetPolicy::default();
        assert!(refused(&p, "0.0.0.0"));
        assert!(refused(&p, "0.1.2.3"));
        assert!(refused(&p, "::"));
        assert!(refused(&p, "::ffff:0.0.0.0"));
    }

    #[test]
    fn nat64_forms_of_denied_addresses_are_denied() {
        let p = NetPolicy::default();
        assert!(refused(&p, "64:ff9b::a9fe:a9fe"));
        assert!(refused(&p, "64:ff9b::169.254.169.254"));
        assert!(refused(&p, "64:ff9b::100.100.100.200"));
        assert!(!refused(&p, "64:ff9b::93.184.216.34"));
        // An operator's own denials apply through NAT64 too.
        let p = NetPolicy::new(&["10.0.0.0/8".into()], &[]).unwrap();
        assert!(refused(&p, "64:ff9b::10.1.2.3"));
    }

    #[test]
    fn operators_deny_more_or_allow_only_some() {
        let p = NetPolicy::new(&["10.0.0.0/8".into()], &[]).unwrap();
        assert!(refused(&p, "10.1.2.3"));
        assert!(refused(&p, "::ffff:10.1.2.3"));
        let p = NetPolicy::new(&["127.0.0.0/8".into(), "::1/128".into()], &[]).unwrap();
        assert!(refused(&p, "127.0.0.2"));
        assert!(refused(&p, "::1"));
        assert!(refused(&p, "::ffff:127.0.0.1"));
        let p = NetPolicy::new(&[], &["127.0.0.0/8".into(), "169.254.169.254".into()]).unwrap();
        assert!(!refused(&p, "127.0.0.1"));
        assert!(!refused(&p, "169.254.169.254"));
        assert!(refused(&p, "8.8.8.8"));
        assert!(NetPolicy::new(&["nope".into()], &[]).is_err());
    }

    #[test]
    fn refusals_name_the_policy() {
        let p = NetPolicy::default();
        let why = p.refuses("169.254.169.254".parse().unwrap()).unwrap();
        assert!(
            why.contains("denied network") && why.contains("outbound policy"),
            "{why}"
        );
    }
}
