//! Grant policy: what a grant may be used for, stored with the grant in the vault and
//! enforced before signing. Every rule is optional; an absent rule allows everything.
//!
//! - `allowed_services`: SigV4 signing names (`s3`, `dynamodb`, ...).
//! - `allowed_regions`: signing regions.
//! - `allowed_methods`: HTTP methods (e.g. `GET`, `HEAD` for read-only).
//! - `allowed_principals`: the downstream peer's identity (the mTLS peer certificate's URI
//!   SAN, a SPIFFE id in Istio), exact or a prefix ending in `*`.
//! - `allowed_source_cidrs`: the downstream peer's address ranges.
//!
//! In the vault record each rule is a JSON array of strings or one comma-separated string.

use std::net::IpAddr;

/// An address range.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cidr {
    pub addr: IpAddr,
    pub prefix: u8,
}

impl Cidr {
    pub fn parse(s: &str) -> Option<Cidr> {
        let (a, p) = match s.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s, None),
        };
        let addr: IpAddr = a.trim().parse().ok()?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match p {
            None => max,
            Some(p) => p.trim().parse::<u8>().ok().filter(|&p| p <= max)?,
        };
        Some(Cidr { addr, prefix })
    }

    pub fn contains(&self, ip: &IpAddr) -> bool {
        match (self.addr, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                u32::from(net) & mask == u32::from(*ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                u128::from(net) & mask == u128::from(*ip) & mask
            }
            // An IPv4 peer seen as an IPv4-mapped IPv6 address.
            (IpAddr::V4(_), IpAddr::V6(v6)) => v6
                .to_ipv4_mapped()
                .is_some_and(|v4| self.contains(&IpAddr::V4(v4))),
            (IpAddr::V6(_), IpAddr::V4(_)) => false,
        }
    }
}

/// The rules of one grant.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Policy {
    pub services: Option<Vec<String>>,
    pub regions: Option<Vec<String>>,
    pub methods: Option<Vec<String>>,
    pub principals: Option<Vec<String>>,
    pub source_cidrs: Option<Vec<Cidr>>,
}

/// Who is calling, as far as Envoy knows.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Caller {
    /// The peer certificate's URI SAN (a SPIFFE id in Istio), when mTLS is used.
    pub principal: Option<String>,
    /// The downstream peer's address.
    pub source: Option<IpAddr>,
}

/// A refusal, naming the rule.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Denied {
    /// `allowed_services`, `allowed_regions`, ...
    pub rule: &'static str,
    pub detail: String,
}

fn principal_matches(pattern: &str, principal: &str) -> bool {
    match pattern.strip_suffix('*') {
        Some(prefix) => principal.starts_with(prefix),
        None => pattern == principal,
    }
}

impl Policy {
    pub fn is_unrestricted(&self) -> bool {
        *self == Policy::default()
    }

    /// Whether the caller's identity or address is needed to decide.
    pub fn needs_caller(&self) -> bool {
        self.principals.is_some() || self.source_cidrs.is_some()
    }

    /// Check one request against the rules, in a fixed order.
    pub fn check(
        &self,
        service: &str,
        region: &str,
        method: &str,
        caller: &Caller,
    ) -> Result<(), Denied> {
        if let Some(s) = &self.services {
            if !s.iter().any(|x| x == service) {
                return Err(Denied {
                    rule: "allowed_services",
                    detail: format!("service {service} is not allowed for this grant"),
                });
            }
        }
        if let Some(r) = &self.regions {
            if !r.iter().any(|x| x == region) {
                return Err(Denied {
                    rule: "allowed_regions",
                    detail: format!("region {region} is not allowed for this grant"),
                });
            }
        }
        if let Some(m) = &self.methods {
            if !m.iter().any(|x| x == method) {
                return Err(Denied {
                    rule: "allowed_methods",
                    detail: format!("method {method} is not allowed for this grant"),
                });
            }
        }
        if let Some(p) = &self.principals {
            let ok = caller
                .principal
                .as_deref()
                .is_some_and(|who| p.iter().any(|pat| principal_matches(pat, who)));
            if !ok {
                return Err(Denied {
                    rule: "allowed_principals",
                    detail: match &caller.principal {
                        Some(_) => "the caller's identity is not allowed for this grant".into(),
                        None => "this grant needs an mTLS caller identity and the caller has none"
                            .into(),
                    },
                });
            }
        }
        if let Some(c) = &self.source_cidrs {
            let ok = caller
                .source
                .is_some_and(|ip| c.iter().any(|net| net.contains(&ip)));
            if !ok {
                return Err(Denied {
                    rule: "allowed_source_cidrs",
                    detail: "the caller's address is not allowed for this grant".into(),
                });
            }
        }
        Ok(())
    }
}

/// Parse the `:port`-suffixed address Envoy gives for `source.address` (`1.2.3.4:5678`,
/// `[::1]:5678`).
pub fn parse_socket_ip(s: &str) -> Option<IpAddr> {
    if let Ok(sa) = s.parse::<std::net::SocketAddr>() {
        return Some(sa.ip());
    }
    s.parse::<IpAddr>().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn caller(p: Option<&str>, ip: Option<&str>) -> Caller {
        Caller {
            principal: p.map(str::to_string),
            source: ip.map(|i| i.parse().unwrap()),
        }
    }

    #[test]
    fn unrestricted_allows_everything() {
        let p = Policy::default();
        assert!(p.is_unrestricted());
        assert!(!p.needs_caller());
        assert!(p
            .check("s3", "us-east-1", "PUT", &Caller::default())
            .is_ok());
    }

    #[test]
    fn each_rule_names_itself() {
        let p = Policy {
            services: Some(vec!["s3".into()]),
            regions: Some(vec!["eu-west-1".into()]),
            methods: Some(vec!["GET".into(), "HEAD".into()]),
            principals: Some(vec!["spiffe://cluster.local/ns/app/*".into()]),
            source_cidrs: Some(vec![Cidr::parse("10.0.0.0/8").unwrap()]),
        };
        let ok = caller(
            Some("spiffe://cluster.local/ns/app/sa/web"),
            Some("10.1.2.3"),
        );
        assert!(p.check("s3", "eu-west-1", "GET", &ok).is_ok());
        assert_eq!(
            p.check("sts", "eu-west-1", "GET", &ok).unwrap_err().rule,
            "allowed_services"
        );
        assert_eq!(
            p.check("s3", "us-east-1", "GET", &ok).unwrap_err().rule,
            "allowed_regions"
        );
        assert_eq!(
            p.check("s3", "eu-west-1", "PUT", &ok).unwrap_err().rule,
            "allowed_methods"
        );
        let other = caller(
            Some("spiffe://cluster.local/ns/other/sa/x"),
            Some("10.1.2.3"),
        );
        assert_eq!(
            p.check("s3", "eu-west-1", "GET", &other).unwrap_err().rule,
            "allowed_principals"
        );
        let none = caller(None, Some("10.1.2.3"));
        assert!(p
            .check("s3", "eu-west-1", "GET", &none)
            .unwrap_err()
            .detail
            .contains("mTLS"));
        let far = caller(
            Some("spiffe://cluster.local/ns/app/sa/web"),
            Some("192.168.1.1"),
        );
        assert_eq!(
            p.check("s3", "eu-west-1", "GET", &far).unwrap_err().rule,
            "allowed_source_cidrs"
        );
    }

    #[test]
    fn cidrs() {
        let c = Cidr::parse("127.0.0.1/32").unwrap();
        assert!(c.contains(&"127.0.0.1".parse().unwrap()));
        assert!(!c.contains(&"127.0.0.2".parse().unwrap()));
        assert!(c.contains(&"::ffff:127.0.0.1".parse().unwrap()));
        assert!(Cidr::parse("0.0.0.0/0")
            .unwrap()
            .contains(&"8.8.8.8".parse().unwrap()));
        assert!(Cidr::parse("::1")
            .unwrap()
            .contains(&"::1".parse().unwrap()));
        assert!(Cidr::parse("fd00::/8")
            .unwrap()
            .contains(&"fd12::1".parse().unwrap()));
        for bad in ["10.0.0.0/33", "x/8", "", "10.0.0/8", "::/129"] {
            assert!(Cidr::parse(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn socket_addresses() {
        assert_eq!(
            parse_socket_ip("127.0.0.1:5678"),
            Some("127.0.0.1".parse().unwrap())
        );
        assert_eq!(parse_socket_ip("[::1]:80"), Some("::1".parse().unwrap()));
        assert_eq!(parse_socket_ip("nonsense"), None);
    }
}
