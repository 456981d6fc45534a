//! Outbound safety: which addresses checks may reach.
//!
//! Monitors are created by users, so a check is a request Lookout makes on their behalf. Cloud
//! metadata services and link-local addresses hand out credentials to whoever asks from inside
//! the host, so they are denied by default; operators may deny more (private ranges) or allow
//! only listed networks. The policy is applied to every resolved address, including redirects.

use std::net::IpAddr;

use ipnet::IpNet;

/// Networks denied unless explicitly allowed: link-local (where cloud metadata lives) and the
/// well-known metadata addresses of AWS (IPv6), Alibaba and Oracle.
pub const DEFAULT_DENY: &[&str] = &[
    "169.254.0.0/16",
    "fe80::/10",
    "fd00:ec2::254/128",
    "100.100.100.200/32",
    "192.0.0.192/32",
];

/// Which networks checks may reach.
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

impl NetPolicy {
    /// The default deny list plus `deny`; when `allow` is not empty, only those networks (an
    /// allowed network also lifts a default denial, e.g. to watch a metadata endpoint on purpose).
    pub fn new(deny: &[String], allow: &[String]) -> Result<NetPolicy, String> {
        let parse = |s: &str| {
            s.parse::<IpNet>()
                .or_else(|_| s.parse::<IpAddr>().map(IpNet::from))
                .map_err(|_| format!("{s:?} is not a network (use CIDR, like 10.0.0.0/8)"))
        };
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

    /// Why `ip` may not be checked, or `None` when it may.
    pub fn refuses(&self, ip: IpAddr) -> Option<String> {
        let ip = ip.to_canonical();
        let allowed = self.allow.iter().any(|n| n.contains(&ip));
        if !self.allow.is_empty() && !allowed {
            return Some(format!("{ip} is not in the allowed networks"));
        }
        if !allowed && self.deny.iter().any(|n| n.contains(&ip)) {
            return Some(format!(
                "{ip} is in a denied network (outbound safety policy)"
            ));
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metadata_and_link_local_are_denied_by_default() {
        let p = NetPolicy::default();
        assert!(p.refuses("169.254.169.254".parse().unwrap()).is_some());
        assert!(p
            .refuses("::ffff:169.254.169.254".parse().unwrap())
            .is_some());
        assert!(p.refuses("fe80::1".parse().unwrap()).is_some());
        assert!(p.refuses("127.0.0.1".parse().unwrap()).is_none());
        assert!(p.refuses("93.184.216.34".parse().unwrap()).is_none());
    }

    #[test]
    fn operators_deny_more_or_allow_only_some() {
        let p = NetPolicy::new(&["10.0.0.0/8".into()], &[]).unwrap();
        assert!(p.refuses("10.1.2.3".parse().unwrap()).is_some());
        let p = NetPolicy::new(&[], &["127.0.0.0/8".into(), "169.254.169.254".into()]).unwrap();
        assert!(p.refuses("127.0.0.1".parse().unwrap()).is_none());
        assert!(p.refuses("169.254.169.254".parse().unwrap()).is_none());
        assert!(p.refuses("8.8.8.8".parse().unwrap()).is_some());
        assert!(NetPolicy::new(&["nope".into()], &[]).is_err());
    }
}
