//! The policy statement a CloudFront signed URL carries, written byte for byte as botocore's
//! `CloudFrontSigner.build_policy` writes it (key order, separators, escaping), because a
//! canned policy is never sent: CloudFront rebuilds it and checks the signature against it.

use std::fmt;
use std::net::IpAddr;

/// Why a policy cannot be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PolicyError {
    #[error("expiry {0} is not a Unix time in seconds after 1970")]
    BadExpiry(i64),
    #[error("not-before {not_before} is not earlier than the expiry {expires}")]
    NotBeforeAfterExpiry { not_before: i64, expires: i64 },
    #[error("{0:?} is not an IPv4 or IPv6 address or CIDR block")]
    BadCidr(String),
}

/// An IPv4 or IPv6 CIDR block; an address without a prefix length is a single host.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IpCidr {
    address: IpAddr,
    prefix: u8,
}

impl IpCidr {
    /// Parses `192.0.2.0/24`, `198.51.100.7` (as /32), `2001:db8::/32` or `2001:db8::1` (/128).
    pub fn parse(text: &str) -> Result<Self, PolicyError> {
        let bad = || PolicyError::BadCidr(text.to_owned());
        let (address, prefix) = match text.split_once('/') {
            Some((address, prefix)) => (address, Some(prefix)),
            None => (text, None),
        };
        let address: IpAddr = address.parse().map_err(|_| bad())?;
        let max = if address.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => max,
            Some(p) if !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()) => {
                p.parse::<u8>().ok().filter(|p| *p <= max).ok_or_else(bad)?
            }
            Some(_) => return Err(bad()),
        };
        Ok(Self { address, prefix })
    }

    /// Whether `ip` falls inside this block.
    pub fn contains(&self, ip: IpAddr) -> bool {
        fn masked(bits: u128, width: u32, prefix: u8) -> u128 {
            let prefix = u32::from(prefix);
            if prefix == 0 {
                0
            } else {
                bits >> (width - prefix)
            }
        }
        match (self.address, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                masked(u32::from(net).into(), 32, self.prefix)
                    == masked(u32::from(ip).into(), 32, self.prefix)
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                masked(net.into(), 128, self.prefix) == masked(ip.into(), 128, self.prefix)
            }
            _ => false,
        }
    }
}

impl fmt::Display for IpCidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.address, self.prefix)
    }
}

impl std::str::FromStr for IpCidr {
    type Err = PolicyError;
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Self::parse(text)
    }
}

/// The conditions of a signed URL: when it expires, optionally when it starts, from which
/// addresses it may be used, and which resources it covers (`*` and `?` wildcards).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    resource: Option<String>,
    expires: i64,
    not_before: Option<i64>,
    source_ip: Option<IpCidr>,
}

impl Policy {
    /// A policy valid until `expires` (Unix seconds, exclusive), for the URL it signs.
    pub fn expiring_at(expires: i64) -> Result<Self, PolicyError> {
        if expires <= 0 {
            return Err(PolicyError::BadExpiry(expires));
        }
        Ok(Self {
            resource: None,
            expires,
            not_before: None,
            source_ip: None,
        })
    }

    /// Not valid before `not_before` (Unix seconds): makes the policy custom.
    pub fn not_before(mut self, not_before: i64) -> Result<Self, PolicyError> {
        if not_before < 0 || not_before >= self.expires {
            return Err(PolicyError::NotBeforeAfterExpiry {
                not_before,
                expires: self.expires,
            });
        }
        self.not_before = Some(not_before);
        Ok(self)
    }

    /// Only from addresses in `cidr`: makes the policy custom.
    pub fn from_ip(mut self, cidr: IpCidr) -> Self {
        self.source_ip = Some(cidr);
        self
    }

    /// Covers `resource` (may hold `*` and `?`) instead of exactly the signed URL.
    pub fn for_resource(mut self, resource: impl Into<String>) -> Self {
        self.resource = Some(resource.into());
        self
    }

    pub fn expires(&self) -> i64 {
        self.expires
    }

    /// Whether CloudFront can rebuild this policy from the URL alone (a canned policy:
    /// only an expiry, for exactly the URL signed).
    pub fn is_canned(&self, url: &str) -> bool {
        self.not_before.is_none()
            && self.source_ip.is_none()
            && self.resource.as_deref().is_none_or(|r| r == url)
            && !url.contains('*')
    }

    /// The policy statement as botocore writes it: `Resource` then `Condition` with
    /// `DateLessThan`, `IpAddress`, `DateGreaterThan`; no spaces; non-ASCII as `\uXXXX`.
    pub fn to_json(&self, url: &str) -> String {
        let resource = self.resource.as_deref().unwrap_or(url);
        let mut json = String::with_capacity(resource.len() + 160);
        json.push_str(r#"{"Statement":[{"Resource":"#);
        push_python_json_string(&mut json, resource);
        json.push_str(r#","Condition":{"DateLessThan":{"AWS:EpochTime":"#);
        json.push_str(&self.expires.to_string());
        json.push('}');
        if let Some(cidr) = &self.source_ip {
            json.push_str(r#","IpAddress":{"AWS:SourceIp":"#);
            push_python_json_string(&mut json, &cidr.to_string());
            json.push('}');
        }
        if let Some(not_before) = self.not_before {
            json.push_str(r#","DateGreaterThan":{"AWS:EpochTime":"#);
            json.push_str(&not_before.to_string());
            json.push('}');
        }
        json.push_str("}}]}");
        json
    }

    /// Reads a custom policy back (for verification): `None` if it is not one statement in
    /// the shape above.
    pub fn from_json(bytes: &[u8]) -> Option<Self> {
        let value: serde_json::Value = serde_json::from_slice(bytes).ok()?;
        let statements = value.get("Statement")?.as_array()?;
        let [statement] = statements.as_slice() else {
            return None;
        };
        let resource = statement.get("Resource")?.as_str()?.to_owned();
        let condition = statement.get("Condition")?;
        let epoch = |name: &str| condition.get(name)?.get("AWS:EpochTime")?.as_i64();
        let expires = epoch("DateLessThan")?;
        let not_before = match condition.get("DateGreaterThan") {
            Some(_) => Some(epoch("DateGreaterThan")?),
            None => None,
        };
        let source_ip = match condition.get("IpAddress") {
            Some(ip) => Some(IpCidr::parse(ip.get("AWS:SourceIp")?.as_str()?).ok()?),
            None => None,
        };
        Some(Self {
            resource: Some(resource),
            expires,
            not_before,
            source_ip,
        })
    }

    /// Whether a request for `url` at `now` from `ip` is allowed by this policy.
    pub fn allows(&self, url: &str, now: i64, ip: Option<IpAddr>) -> Result<(), &'static str> {
        if now >= self.expires {
            return Err("expired");
        }
        if self.not_before.is_some_and(|t| now < t) {
            return Err("not yet valid");
        }
        if let Some(cidr) = &self.source_ip
            && !ip.is_some_and(|ip| cidr.contains(ip))
        {
            return Err("source address not allowed");
        }
        match &self.resource {
            Some(resource) if !wildcard_match(resource.as_bytes(), url.as_bytes()) => {
                Err("resource does not match")
            }
            _ => Ok(()),
        }
    }
}

/// CloudFront's resource wildcards: `*` any run of characters, `?` exactly one.
fn wildcard_match(pattern: &[u8], text: &[u8]) -> bool {
    let (mut p, mut t) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        if p < pattern.len() && (pattern[p] == b'?' || pattern[p] == text[t]) {
            p += 1;
            t += 1;
        } else if p < pattern.len() && pattern[p] == b'*' {
            star = Some((p, t));
            p += 1;
        } else if let Some((sp, st)) = star {
            p = sp + 1;
            t = st + 1;
            star = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    pattern[p..].iter().all(|&b| b == b'*')
}

/// Appends `text` as a JSON string the way Python's `json.dumps` (ensure_ascii) does:
/// `"` and `\` escaped, the short forms for `\b \f \n \r \t`, every other character outside
/// printable ASCII as lowercase `\uXXXX` (UTF-16 surrogate pairs above U+FFFF).
fn push_python_json_string(out: &mut String, text: &str) {
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            ' '..='~' => out.push(c),
            _ => {
                let mut units = [0u16; 2];
                for unit in c.encode_utf16(&mut units) {
                    out.push_str(&format!("\\u{unit:04x}"));
                }
            }
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn escapes_like_python_json_dumps() {
        let mut out = String::new();
        push_python_json_string(&mut out, "a\"b\\c\n\t\u{7f}é가😀/");
        assert_eq!(out, r#""a\"b\\c\n\t\u007f\u00e9\uac00\ud83d\ude00/""#);
    }

    #[test]
    fn cidr_parsing() {
        assert_eq!(
            IpCidr::parse("198.51.100.7").unwrap().to_string(),
            "198.51.100.7/32"
        );
        assert_eq!(
            IpCidr::parse("192.0.2.0/24").unwrap().to_string(),
            "192.0.2.0/24"
        );
        assert_eq!(
            IpCidr::parse("2001:db8::1").unwrap().to_string(),
            "2001:db8::1/128"
        );
        for bad in [
            "",
            "10.0.0.1/33",
            "10.0.0/8",
            "10.0.0.1/",
            "10.0.0.1/+8",
            "host",
            "::/129",
        ] {
            assert_eq!(
                IpCidr::parse(bad),
                Err(PolicyError::BadCidr(bad.into())),
                "{bad}"
            );
        }
    }

    #[test]
    fn cidr_membership() {
        let net = IpCidr::parse("192.0.2.0/24").unwrap();
        assert!(net.contains("192.0.2.200".parse().unwrap()));
        assert!(!net.contains("192.0.3.1".parse().unwrap()));
        assert!(!net.contains("::1".parse().unwrap()));
        assert!(
            IpCidr::parse("0.0.0.0/0")
                .unwrap()
                .contains("8.8.8.8".parse().unwrap())
        );
        let v6 = IpCidr::parse("2001:db8::/32").unwrap();
        assert!(v6.contains("2001:db8:ffff::1".parse().unwrap()));
        assert!(!v6.contains("2001:db9::1".parse().unwrap()));
    }

    #[test]
    fn times_are_checked() {
        assert_eq!(Policy::expiring_at(0), Err(PolicyError::BadExpiry(0)));
        let policy = Policy::expiring_at(100).unwrap();
        assert!(policy.clone().not_before(100).is_err());
        assert!(policy.clone().not_before(-1).is_err());
        assert!(policy.not_before(99).is_ok());
    }

    #[test]
    fn canned_only_without_conditions_or_wildcards() {
        let policy = Policy::expiring_at(100).unwrap();
        assert!(policy.is_canned("https://d/a"));
        assert!(!policy.is_canned("https://d/*"));
        assert!(
            policy
                .clone()
                .for_resource("https://d/a")
                .is_canned("https://d/a")
        );
        assert!(
            !policy
                .clone()
                .for_resource("https://d/*")
                .is_canned("https://d/a")
        );
        assert!(
            !policy
                .clone()
                .not_before(5)
                .unwrap()
                .is_canned("https://d/a")
        );
        assert!(
            !policy
                .from_ip(IpCidr::parse("10.0.0.1").unwrap())
                .is_canned("https://d/a")
        );
    }

    #[test]
    fn allows_checks_every_condition() {
        let policy = Policy::expiring_at(100)
            .unwrap()
            .not_before(50)
            .unwrap()
            .from_ip(IpCidr::parse("10.0.0.0/8").unwrap())
            .for_resource("https://d/fw/*.bin");
        let ip = Some("10.1.2.3".parse().unwrap());
        assert_eq!(policy.allows("https://d/fw/a/b.bin", 60, ip), Ok(()));
        assert_eq!(policy.allows("https://d/fw/a.bin", 100, ip), Err("expired"));
        assert_eq!(
            policy.allows("https://d/fw/a.bin", 49, ip),
            Err("not yet valid")
        );
        let other = Some("11.0.0.1".parse().unwrap());
        assert_eq!(
            policy.allows("https://d/fw/a.bin", 60, other),
            Err("source address not allowed")
        );
        assert_eq!(
            policy.allows("https://d/fw/a.bin", 60, None),
            Err("source address not allowed")
        );
        assert_eq!(
            policy.allows("https://d/fw/a.img", 60, ip),
            Err("resource does not match")
        );
    }

    #[test]
    fn wildcards() {
        assert!(wildcard_match(b"a*c", b"abbbc"));
        assert!(wildcard_match(b"a*", b"a"));
        assert!(wildcard_match(b"a?c", b"abc"));
        assert!(!wildcard_match(b"a?c", b"ac"));
        assert!(!wildcard_match(b"a*d", b"abc"));
        assert!(wildcard_match(b"*", b""));
    }

    proptest! {
        #[test]
        fn json_round_trips(
            resource in "https://[a-z.]{1,12}/[ -~\u{e9}\u{ac00}\u{1f600}]{0,20}",
            expires in 1i64..4_000_000_000,
            not_before in proptest::option::of(0i64..1_000_000),
            ip in proptest::option::of((any::<[u8; 4]>(), 0u8..=32)),
        ) {
            let mut policy = Policy::expiring_at(expires).unwrap().for_resource(resource.clone());
            if let Some(not_before) = not_before.filter(|t| *t < expires) {
                policy = policy.not_before(not_before).unwrap();
            }
            if let Some((octets, prefix)) = ip {
                let text = format!("{}/{prefix}", std::net::Ipv4Addr::from(octets));
                policy = policy.from_ip(IpCidr::parse(&text).unwrap());
            }
            let json = policy.to_json("unused");
            prop_assert!(json.is_ascii());
            prop_assert_eq!(Policy::from_json(json.as_bytes()), Some(policy));
        }

        /// What the local CloudFront reads from a URL: a real policy with one part changed
        /// into any JSON, any bytes, any CIDR text; read or refused, never a panic.
        #[test]
        fn a_changed_policy_is_read_or_refused(
            (changed, _) in crate::testing::fuzz::near(
                serde_json::from_str(
                    &Policy::expiring_at(1_800_000_000)
                        .unwrap()
                        .for_resource("https://d111111abcdef8.cloudfront.net/firmware/a.bin")
                        .from_ip(IpCidr::parse("192.0.2.0/24").unwrap())
                        .to_json("unused"),
                )
                .unwrap()
            )
        ) {
            let _ = Policy::from_json(changed.to_string().as_bytes());
        }

        #[test]
        fn any_bytes_are_read_or_refused(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = Policy::from_json(&bytes);
            let _ = crate::cloudfront::encoding::decode(&String::from_utf8_lossy(&bytes));
        }

        #[test]
        fn any_cidr_text_is_read_or_named_in_the_error(text in crate::testing::fuzz::text()) {
            if let Err(error) = IpCidr::parse(&text) {
                let quoted = format!("{text:?}");
                prop_assert!(error.to_string().contains(&quoted));
            }
        }
    }
}
