//! AWS service signing name and region from a request's `:authority`.
//!
//! This is a security boundary: a host is accepted only when its name ends with the DNS suffix
//! of an AWS partition (`amazonaws.com`, `amazonaws.com.cn`, `api.aws`, `on.aws`, ... — the
//! list in the generated `endpoints_table`, from botocore's `partitions.json` and rule sets).
//! Everything else is [`HostError::NotAws`]. The sign-in domains (`aws.amazon.com`,
//! `amazonaws.cn`, `amazonaws-eusc.eu`, ...) are host-only suffixes: their suffix has no
//! region prefixes, so only the exact hosts of the table are accepted under them.
//!
//! Strictness of the authority: no userinfo, no IP literal, ASCII letters, digits, `-` and `.`
//! only, no empty label, labels of at most 63 characters not starting or ending with `-`, at
//! most 253 characters. **A trailing dot is refused** ([`HostError::Malformed`]): signing the
//! name without it while the request goes to the name with it is a mismatch we do not need.
//! The port, when present, is 1–65535 in decimal.
//!
//! How the signing name and region are found, in order (all lookups are binary searches in
//! static tables generated from botocore's data, no allocation but the lowercased host):
//! 1. exact global hosts (`iam.amazonaws.com` → iam/us-east-1, `route53.amazonaws.com.cn`, ...);
//! 2. S3 forms that rule sets do not spell out: the legacy global endpoint `[BUCKET.]s3.amazonaws.com`
//!    (us-east-1), `s3-external-1`, the dash forms `s3-REGION`, `s3-website-REGION`,
//!    `s3-fips-REGION`, Multi-Region Access Points (`*.s3-global.*`, SigV4A: refused) and
//!    S3 Express zonal endpoints `s3express-AZ.REGION`;
//! 3. global hosts below customer labels (`BUCKET.s3-accelerate.amazonaws.com` — the region is
//!    the bucket's and is not in the host: [`HostError::RegionUnknown`]);
//! 4. regional forms `[CUSTOMER.]PREFIX.REGION.SUFFIX`, also with `.dualstack`, `-fips`,
//!    `fips.` and PrivateLink `.vpce.` (`vpce-ID[-AZ].PREFIX.REGION.vpce.amazonaws.com`);
//!    the longest known endpoint prefix wins (`runtime.sagemaker` → sagemaker);
//! 5. region-first forms `NAME.REGION.es.SUFFIX` (OpenSearch domains) and `.aoss.`.

use crate::endpoints_table::{self as table, Auth, Global, S};
use std::sync::Arc;

/// What a host name tells us.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AwsEndpoint {
    /// The SigV4 signing name (`s3`, `dynamodb`, `bedrock` for `bedrock-runtime`, ...).
    pub signing_name: String,
    /// The signing region (`us-east-1` for global endpoints such as IAM).
    pub region: String,
    /// The host to sign and send: lowercase, without a trailing dot, with the port only
    /// when it is not the default for the scheme.
    pub host: String,
}

/// Why a host is refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HostError {
    /// Not a host name of a known AWS endpoint under an AWS partition DNS suffix.
    NotAws(String),
    /// Unparseable authority (empty, userinfo, bad port, bad characters, trailing dot).
    Malformed(String),
    /// An AWS endpoint that is not signed with SigV4 (SigV4A only, bearer token, SigV2).
    NotSigV4(String),
    /// An AWS endpoint whose signing region is not in the host name (S3 Transfer
    /// Acceleration: the bucket's region).
    RegionUnknown(String),
}

impl std::fmt::Display for HostError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            HostError::NotAws(h) => write!(f, "not a known AWS endpoint: {h}"),
            HostError::Malformed(h) => write!(f, "malformed authority: {h}"),
            HostError::NotSigV4(h) => write!(f, "AWS endpoint not signed with SigV4: {h}"),
            HostError::RegionUnknown(h) => {
                write!(
                    f,
                    "AWS endpoint whose signing region is not in the host: {h}"
                )
            }
        }
    }
}

impl std::error::Error for HostError {}

/// The botocore version the endpoint tables were generated from.
pub const BOTOCORE_VERSION: &str = table::BOTOCORE_VERSION;

/// Parse `:authority` (`host[:port]`). `scheme` is `http` or `https` (the default port of
/// which is dropped from [`AwsEndpoint::host`]). [`AuthorityMemo::parse`] gives the same
/// answers from a memo of the last accepted authorities.
pub fn parse_authority(authority: &str, scheme: &str) -> Result<AwsEndpoint, HostError> {
    resolve_authority(authority, scheme)
}

/// How many accepted authorities an [`AuthorityMemo`] remembers.
pub const MEMO_SIZE: usize = 16;

/// The last [`MEMO_SIZE`] accepted `(authority, scheme)` pairs and their endpoints, replaced
/// oldest first. A plugin instance mostly talks to a few hosts, and resolving one costs more
/// than the rest of a request's plan (5.5k of 57k instructions of a native GET). The answer
/// is the same with or without the memo.
/// A hit shares the memo's endpoint ([`AuthorityMemo::parse_shared`]): no copy of its
/// names.
#[derive(Default)]
pub struct AuthorityMemo {
    entries: Vec<(String, String, Arc<AwsEndpoint>)>,
    next: usize,
}

impl AuthorityMemo {
    pub const fn new() -> AuthorityMemo {
        AuthorityMemo {
            entries: Vec::new(),
            next: 0,
        }
    }

    /// [`parse_authority`], answered from the memo when it holds the authority.
    pub fn parse(&mut self, authority: &str, scheme: &str) -> Result<AwsEndpoint, HostError> {
        self.parse_shared(authority, scheme).map(|e| (*e).clone())
    }

    /// [`AuthorityMemo::parse`], sharing the memo's endpoint.
    pub fn parse_shared(
        &mut self,
        authority: &str,
        scheme: &str,
    ) -> Result<Arc<AwsEndpoint>, HostError> {
        if let Some(e) = self.get(authority, scheme) {
            return Ok(e);
        }
        let e = Arc::new(resolve_authority(authority, scheme)?);
        self.put(authority, scheme, &e);
        Ok(e)
    }

    fn get(&self, authority: &str, scheme: &str) -> Option<Arc<AwsEndpoint>> {
        self.entries
            .iter()
            .find(|(a, s, _)| a == authority && s == scheme)
            .map(|(_, _, e)| Arc::clone(e))
    }

    fn put(&mut self, authority: &str, scheme: &str, e: &Arc<AwsEndpoint>) {
        let entry = (authority.to_string(), scheme.to_string(), Arc::clone(e));
        if self.entries.len() < MEMO_SIZE {
            self.entries.push(entry);
        } else if let Some(slot) = self.entries.get_mut(self.next) {
            *slot = entry;
            self.next = (self.next + 1) % MEMO_SIZE;
        }
    }
}

/// [`parse_authority`] without the memo.
pub fn resolve_authority(authority: &str, scheme: &str) -> Result<AwsEndpoint, HostError> {
    let (lower, host) = split_authority(authority, scheme)?;
    let (signing_name, region) = resolve(&lower)?;
    Ok(AwsEndpoint {
        signing_name: signing_name.to_string(),
        region,
        host,
    })
}

/// Check the syntax of `:authority` and split it into the lowercase host name (no port) and
/// the host to sign and send (lowercase, the port kept unless it is `scheme`'s default). No
/// AWS check: used for every host, including operator-configured overrides.
pub fn split_authority(authority: &str, scheme: &str) -> Result<(String, String), HostError> {
    let malformed = || HostError::Malformed(authority.to_string());
    if authority.is_empty() || authority.contains('@') {
        return Err(malformed());
    }
    if authority.starts_with('[') {
        return Err(HostError::NotAws(authority.to_string()));
    }
    let (host, port) = match authority.split_once(':') {
        None => (authority, None),
        Some((h, p)) => (h, Some(parse_port(p).ok_or_else(malformed)?)),
    };
    if !valid_host_syntax(host) {
        return Err(malformed());
    }
    let lower = host.to_ascii_lowercase();
    let default_port = match scheme {
        "http" => Some(80),
        "https" => Some(443),
        _ => None,
    };
    let mut out_host = lower.clone();
    if let Some(p) = port {
        if Some(p) != default_port {
            out_host.push(':');
            out_host.push_str(&p.to_string());
        }
    }
    Ok((lower, out_host))
}

/// Whether this signing name follows S3's rules (UNSIGNED-PAYLOAD allowed, no path
/// normalization, single encoding).
pub fn is_s3_family(signing_name: &str) -> bool {
    matches!(
        signing_name,
        "s3" | "s3-object-lambda" | "s3-outposts" | "s3express"
    )
}

/// Whether `host` (lowercase, without port) ends with an AWS partition DNS suffix, with at
/// least one label before it.
pub fn has_aws_suffix(host: &str) -> bool {
    split_suffix(host).is_some()
}

fn parse_port(p: &str) -> Option<u16> {
    if p.is_empty() || p.len() > 5 || !p.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    match p.parse::<u32>() {
        Ok(n) if (1..=65535).contains(&n) => u16::try_from(n).ok(),
        _ => None,
    }
}

fn valid_host_syntax(host: &str) -> bool {
    if host.is_empty() || host.len() > 253 {
        return false;
    }
    host.split('.').all(|label| {
        let b = label.as_bytes();
        !b.is_empty()
            && b.len() <= 63
            && b.iter().all(|c| c.is_ascii_alphanumeric() || *c == b'-')
            && b.first() != Some(&b'-')
            && b.last() != Some(&b'-')
    })
}

/// A partition suffix: its index in the table, its region prefixes and itself.
type Suffix = (usize, &'static [&'static str], &'static str);

/// `(labels before the suffix, suffix)`.
fn split_suffix(host: &str) -> Option<(&str, Suffix)> {
    for (i, (sfx, prefixes)) in table::SUFFIXES.iter().enumerate() {
        if let Some(rest) = host.strip_suffix(sfx) {
            if let Some(rest) = rest.strip_suffix('.') {
                if !rest.is_empty() {
                    return Some((rest, (i, prefixes, sfx)));
                }
            }
        }
    }
    None
}

/// `PREFIX-WORD-DIGITS` with PREFIX one of the suffix's region prefixes (`us`, `us-gov`, ...).
fn is_region(label: &str, prefixes: &[&str]) -> bool {
    prefixes.iter().any(|p| {
        let Some(rest) = label.strip_prefix(p).and_then(|r| r.strip_prefix('-')) else {
            return false;
        };
        let Some((word, digits)) = rest.rsplit_once('-') else {
            return false;
        };
        !word.is_empty()
            && word.bytes().all(|c| c.is_ascii_alphanumeric())
            && !digits.is_empty()
            && digits.bytes().all(|c| c.is_ascii_digit())
    })
}

fn lookup2(table: &'static [(&'static str, &'static str)], key: &str) -> Option<&'static str> {
    table
        .binary_search_by(|(k, _)| (*k).cmp(key))
        .ok()
        .and_then(|i| table.get(i))
        .map(|(_, v)| *v)
}

/// A string of the generated tables.
fn text(s: S) -> &'static str {
    let start = usize::from(s.0);
    table::TEXT
        .get(start..start + usize::from(s.1))
        .unwrap_or("")
}

fn lookup_prefix(key: &str) -> Option<&'static str> {
    let t = table::PREFIXES;
    t.binary_search_by(|(k, _)| text(*k).cmp(key))
        .ok()
        .and_then(|i| t.get(i))
        .map(|(_, v)| text(*v))
}

/// The entry for the host `rest` + `.` + the suffix of index `suffix`.
fn lookup_global(table: &'static [Global], suffix: usize, rest: &str) -> Option<&'static Global> {
    table
        .binary_search_by(|g| {
            usize::from(g.suffix)
                .cmp(&suffix)
                .then_with(|| text(g.rest).cmp(rest))
        })
        .ok()
        .and_then(|i| table.get(i))
}

fn global_result(host: &str, g: &Global) -> Result<(&'static str, String), HostError> {
    match g.auth {
        Auth::SigV4 => Ok((text(g.name), text(g.region).to_string())),
        Auth::RegionUnknown => Err(HostError::RegionUnknown(host.to_string())),
        Auth::NotSigV4 => Err(HostError::NotSigV4(host.to_string())),
    }
}

fn not_aws(host: &str) -> HostError {
    HostError::NotAws(host.to_string())
}

/// Signing name and region of a syntactically valid, lowercase host without port.
fn resolve(host: &str) -> Result<(&'static str, String), HostError> {
    let Some((rest, (sfx_index, prefixes, sfx))) = split_suffix(host) else {
        return Err(not_aws(host));
    };
    // 1. exact global hosts
    if let Some(g) = lookup_global(table::GLOBAL_HOSTS, sfx_index, rest) {
        return global_result(host, g);
    }
    let (left, last) = match rest.rsplit_once('.') {
        Some((l, r)) => (Some(l), r),
        None => (None, rest),
    };
    // 2. S3 forms not spelled out by the rule sets
    if let Some(r) = s3_special(host, last, prefixes, sfx) {
        return r;
    }
    // 3. global hosts below customer labels (`tail` + `.` + the suffix)
    let mut tail = rest;
    while let Some((_, t)) = tail.split_once('.') {
        tail = t;
        if let Some(g) = lookup_global(table::GLOBAL_WILDCARDS, sfx_index, tail) {
            return global_result(host, g);
        }
    }
    // 4. regional forms (PrivateLink: `.REGION.vpce.amazonaws.com[.cn]`)
    let (left, last) = match (left, last) {
        (Some(l), "vpce") if sfx.starts_with("amazonaws.com") => match l.rsplit_once('.') {
            Some((l2, r2)) => (Some(l2), r2),
            None => return Err(not_aws(host)),
        },
        _ => (left, last),
    };
    if is_region(last, prefixes) {
        let Some(before) = left else {
            return Err(not_aws(host));
        };
        let before = before.strip_suffix(".dualstack").unwrap_or(before);
        if before == "dualstack" {
            return Err(not_aws(host));
        }
        return match regional_prefix(before) {
            Some(Ok(name)) => Ok((name, last.to_string())),
            Some(Err(())) => Err(HostError::NotSigV4(host.to_string())),
            None => Err(not_aws(host)),
        };
    }
    // 5. region-first forms: NAME.REGION.es.SUFFIX
    if let (Some(name), Some(l)) = (lookup2(table::REGION_FIRST, last), left) {
        let (customer, region) = match l.rsplit_once('.') {
            Some((c, r)) => (Some(c), r),
            None => (None, l),
        };
        if customer.is_some() && is_region(region, prefixes) {
            return Ok((name, region.to_string()));
        }
    }
    Err(not_aws(host))
}

/// The signing name of the longest known endpoint prefix ending `labels` (the labels before
/// the region, `.dualstack` already removed). `Some(Err)` for prefixes not signed with SigV4.
fn regional_prefix(labels: &str) -> Option<Result<&'static str, ()>> {
    // candidate start offsets, longest first (at most 4 labels: the table's keys have ≤ 3,
    // plus a `fips.` label)
    let mut starts = [0usize; 4];
    let mut n = 0;
    let bytes = labels.as_bytes();
    let mut i = labels.len();
    while n < starts.len() {
        match bytes
            .get(..i)
            .and_then(|b| b.iter().rposition(|c| *c == b'.'))
        {
            Some(dot) => {
                if let Some(s) = starts.get_mut(n) {
                    *s = dot + 1;
                }
                n += 1;
                i = dot;
            }
            None => {
                if let Some(s) = starts.get_mut(n) {
                    *s = 0;
                }
                n += 1;
                break;
            }
        }
    }
    for start in starts.iter().take(n).rev() {
        let Some(cand) = labels.get(*start..) else {
            continue;
        };
        let cand = cand.strip_prefix("fips.").unwrap_or(cand);
        let cand = cand.strip_suffix("-fips").unwrap_or(cand);
        if cand.is_empty() {
            continue;
        }
        if let Some(name) = lookup_prefix(cand) {
            return Some(Ok(name));
        }
        if table::NOT_SIGV4_PREFIXES.binary_search(&cand).is_ok() {
            return Some(Err(()));
        }
    }
    // S3 Express zonal endpoints: BUCKET--AZ--x-s3.s3express-AZ.REGION
    let last = labels.rsplit('.').next().unwrap_or(labels);
    if last.starts_with("s3express-") {
        return Some(Ok("s3express"));
    }
    None
}

/// S3 host forms the rule sets do not spell out (documented by AWS).
fn s3_special(
    host: &str,
    last: &str,
    prefixes: &[&str],
    sfx: &str,
) -> Option<Result<(&'static str, String), HostError>> {
    // Multi-Region Access Points: SigV4A only.
    if last == "s3-global" {
        return Some(Err(HostError::NotSigV4(host.to_string())));
    }
    if sfx != "amazonaws.com" && sfx != "amazonaws.com.cn" {
        return None;
    }
    // Legacy global endpoint: [BUCKET.]s3.amazonaws.com and s3-external-1 sign in us-east-1.
    if sfx == "amazonaws.com" && (last == "s3" || last == "s3-external-1") {
        return Some(Ok(("s3", "us-east-1".to_string())));
    }
    // Dash forms: s3-REGION, s3-fips-REGION, s3-website-REGION.
    let region = last
        .strip_prefix("s3-website-")
        .or_else(|| last.strip_prefix("s3-fips-"))
        .or_else(|| last.strip_prefix("s3-"))?;
    if is_region(region, prefixes) {
        return Some(Ok(("s3", region.to_string())));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(authority: &str) -> (String, String, String) {
        let e = parse_authority(authority, "https").unwrap();
        (e.signing_name, e.region, e.host)
    }

    fn pair(authority: &str) -> (String, String) {
        let (n, r, _) = ok(authority);
        (n, r)
    }

    fn p(n: &str, r: &str) -> (String, String) {
        (n.to_string(), r.to_string())
    }

    #[test]
    fn memo_answers_as_the_resolver_does_and_holds_at_most_memo_size() {
        // More authorities than the memo holds, each asked several times, in two orders,
        // with both schemes (which decide whether a port is kept), and a refused one.
        let hosts: Vec<String> = (0..MEMO_SIZE + 5)
            .map(|i| format!("bucket{i}.s3.us-west-2.amazonaws.com:443"))
            .chain([
                "sts.us-east-1.amazonaws.com".to_string(),
                "example.com".to_string(),
            ])
            .collect();
        let mut memo = AuthorityMemo::new();
        for round in 0..3 {
            for (i, h) in hosts.iter().enumerate() {
                let h = if round == 1 {
                    &hosts[hosts.len() - 1 - i]
                } else {
                    h
                };
                for scheme in ["https", "http"] {
                    assert_eq!(
                        memo.parse(h, scheme),
                        resolve_authority(h, scheme),
                        "{h} {scheme}"
                    );
                }
            }
        }
        assert_eq!(
            ok("bucket1.s3.us-west-2.amazonaws.com:443").2,
            "bucket1.s3.us-west-2.amazonaws.com"
        );
        let e = parse_authority("bucket1.s3.us-west-2.amazonaws.com:443", "http").unwrap();
        assert_eq!(e.host, "bucket1.s3.us-west-2.amazonaws.com:443");
        assert_eq!(memo.entries.len(), MEMO_SIZE);
    }

    #[test]
    fn seed_forms() {
        assert_eq!(pair("s3.us-east-1.amazonaws.com"), p("s3", "us-east-1"));
        assert_eq!(
            pair("bedrock-runtime.us-west-2.amazonaws.com"),
            p("bedrock", "us-west-2")
        );
        assert_eq!(
            pair("my-bucket.s3.us-west-2.amazonaws.com"),
            p("s3", "us-west-2")
        );
        assert_eq!(
            pair("vpce-xxx.monitoring.us-east-2.vpce.amazonaws.com"),
            p("monitoring", "us-east-2")
        );
        assert_eq!(
            pair("vpce-xxx-us-east-2c.monitoring.us-east-2.vpce.amazonaws.com"),
            p("monitoring", "us-east-2")
        );
        assert_eq!(
            pair("s3.us-gov-west-1.amazonaws.com"),
            p("s3", "us-gov-west-1")
        );
    }

    #[test]
    fn common_services() {
        assert_eq!(
            pair("dynamodb.us-east-1.amazonaws.com"),
            p("dynamodb", "us-east-1")
        );
        assert_eq!(pair("sts.us-east-1.amazonaws.com"), p("sts", "us-east-1"));
        assert_eq!(pair("email.us-east-1.amazonaws.com"), p("ses", "us-east-1"));
        assert_eq!(
            pair("runtime.sagemaker.us-east-1.amazonaws.com"),
            p("sagemaker", "us-east-1")
        );
        assert_eq!(pair("iam.amazonaws.com"), p("iam", "us-east-1"));
        assert_eq!(pair("sts.amazonaws.com"), p("sts", "us-east-1"));
        assert_eq!(pair("route53.amazonaws.com"), p("route53", "us-east-1"));
        assert_eq!(
            pair("cloudfront.amazonaws.com"),
            p("cloudfront", "us-east-1")
        );
        assert_eq!(
            pair("iam.cn-north-1.amazonaws.com.cn"),
            p("iam", "cn-north-1")
        );
        assert_eq!(
            pair("ec2.cn-northwest-1.amazonaws.com.cn"),
            p("ec2", "cn-northwest-1")
        );
    }

    #[test]
    fn s3_forms() {
        assert_eq!(pair("s3.amazonaws.com"), p("s3", "us-east-1"));
        assert_eq!(pair("a.b.c.s3.amazonaws.com"), p("s3", "us-east-1"));
        assert_eq!(
            pair("my.bucket.s3.eu-west-1.amazonaws.com"),
            p("s3", "eu-west-1")
        );
        assert_eq!(pair("s3-us-west-2.amazonaws.com"), p("s3", "us-west-2"));
        assert_eq!(
            pair("b.s3-website-us-west-2.amazonaws.com"),
            p("s3", "us-west-2")
        );
        assert_eq!(
            pair("b.s3-website.eu-central-1.amazonaws.com"),
            p("s3", "eu-central-1")
        );
        assert_eq!(
            pair("b.s3.dualstack.us-west-2.amazonaws.com"),
            p("s3", "us-west-2")
        );
        assert_eq!(
            pair("b.s3-fips.dualstack.us-east-1.amazonaws.com"),
            p("s3", "us-east-1")
        );
        assert_eq!(
            pair("ap-123456789012.s3-accesspoint.us-west-2.amazonaws.com"),
            p("s3", "us-west-2")
        );
        assert_eq!(
            pair("123456789012.s3-control.us-west-2.amazonaws.com"),
            p("s3", "us-west-2")
        );
        assert_eq!(
            pair("bucket.vpce-1a2b3c4d-5e6f.s3.us-east-1.vpce.amazonaws.com"),
            p("s3", "us-east-1")
        );
        assert!(matches!(
            parse_authority("b.s3-accelerate.amazonaws.com", "https"),
            Err(HostError::RegionUnknown(_))
        ));
        assert!(matches!(
            parse_authority("x.mrap.accesspoint.s3-global.amazonaws.com", "https"),
            Err(HostError::NotSigV4(_))
        ));
    }

    #[test]
    fn other_forms() {
        assert_eq!(
            pair("abc123.execute-api.us-east-1.amazonaws.com"),
            p("execute-api", "us-east-1")
        );
        assert_eq!(
            pair("abc.lambda-url.eu-west-1.on.aws"),
            p("lambda", "eu-west-1")
        );
        assert_eq!(
            pair("search-d-abc.us-east-1.es.amazonaws.com"),
            p("es", "us-east-1")
        );
        assert_eq!(
            pair("s3.dualstack.us-west-2.amazonaws.com"),
            p("s3", "us-west-2")
        );
        assert_eq!(pair("ec2.us-west-2.api.aws"), p("ec2", "us-west-2"));
        assert_eq!(
            pair("kms-fips.us-east-1.amazonaws.com"),
            p("kms", "us-east-1")
        );
    }

    #[test]
    fn account_and_resource_forms() {
        // Kinesis: the stream's account (from a StreamARN or the account id) and the
        // operation type, in every partition suffix
        for (host, region) in [
            (
                "123456789012.control-kinesis.eu-west-2.amazonaws.com",
                "eu-west-2",
            ),
            (
                "123456789012.data-kinesis-fips.sa-east-1.api.aws",
                "sa-east-1",
            ),
            (
                "123456789012.data-kinesis.cn-north-1.amazonaws.com.cn",
                "cn-north-1",
            ),
            (
                "123456789012.control-kinesis.cn-northwest-1.api.amazonwebservices.com.cn",
                "cn-northwest-1",
            ),
            (
                "123456789012.data-kinesis.eusc-de-east-1.amazonaws.eu",
                "eusc-de-east-1",
            ),
            (
                "123456789012.data-kinesis-fips.us-gov-west-1.amazonaws.com",
                "us-gov-west-1",
            ),
            (
                "myqueue.control-kinesis-queues.ap-south-2.amazonaws.com",
                "ap-south-2",
            ),
            (
                "myqueue.data-kinesis-queues-fips.us-east-1.api.aws",
                "us-east-1",
            ),
            (
                "abcdefghij0123456789.abc.data-kinesis.us-west-2.amazonaws.com",
                "us-west-2",
            ),
        ] {
            assert_eq!(pair(host), p("kinesis", region), "{host}");
        }
        // DynamoDB's account-based endpoints
        assert_eq!(
            pair("123456789012.ddb.us-east-1.amazonaws.com"),
            p("dynamodb", "us-east-1")
        );
        assert_eq!(
            pair("123456789012.ddb.eu-west-1.api.aws"),
            p("dynamodb", "eu-west-1")
        );
        // sign-in endpoints of the smaller partitions
        assert_eq!(
            pair("cn-north-1.signin.amazonaws.cn"),
            p("signin", "cn-north-1")
        );
        assert_eq!(
            pair("eusc-de-east-1.signin.amazonaws-eusc.eu"),
            p("signin", "eusc-de-east-1")
        );
        assert_eq!(
            pair("us-east-1.signin.aws.amazon.com"),
            p("signin", "us-east-1")
        );
    }

    #[test]
    fn host_only_suffixes_accept_their_hosts_alone() {
        // the sign-in domains carry exact hosts only: no region forms, no customer labels
        for bad in [
            "sts.us-east-1.aws.amazon.com",
            "s3.us-east-1.aws.amazon.com",
            "x.us-east-1.signin.aws.amazon.com",
            "console.aws.amazon.com",
            "aws.amazon.com",
            "amazon.com",
            "sts.cn-north-1.amazonaws.cn",
            "123456789012.control-kinesis.cn-north-1.amazonaws.cn",
            "ddb.eusc-de-east-1.amazonaws-eusc.eu",
            "us-east-1.signin.aws.amazon.com.evil.example",
            "123456789012.control-kinesis.eu-west-2.amazonaws.com.evil.example",
            "123456789012.control-kinesis.eu-west-2.evil-amazonaws.com",
            "123456789012.ddb.us-east-1.amazonaws.co",
        ] {
            assert!(
                matches!(parse_authority(bad, "https"), Err(HostError::NotAws(_))),
                "{bad}: {:?}",
                parse_authority(bad, "https")
            );
        }
    }

    #[test]
    fn ports_and_case() {
        assert_eq!(
            ok("S3.US-EAST-1.AmazonAWS.com:443").2,
            "s3.us-east-1.amazonaws.com"
        );
        assert_eq!(
            ok("s3.us-east-1.amazonaws.com:8443").2,
            "s3.us-east-1.amazonaws.com:8443"
        );
        let e = parse_authority("s3.us-east-1.amazonaws.com:80", "http").unwrap();
        assert_eq!(e.host, "s3.us-east-1.amazonaws.com");
        let e = parse_authority("s3.us-east-1.amazonaws.com:443", "http").unwrap();
        assert_eq!(e.host, "s3.us-east-1.amazonaws.com:443");
    }

    #[test]
    fn refused() {
        for bad in [
            "",
            "user@s3.us-east-1.amazonaws.com",
            "s3.us-east-1.amazonaws.com.",
            "s3.us-east-1.amazonaws.com:",
            "s3.us-east-1.amazonaws.com:0",
            "s3.us-east-1.amazonaws.com:65536",
            "s3.us-east-1.amazonaws.com:+1",
            "s3..amazonaws.com",
            "s3.us-east-1.amazonaws.cöm",
            "s3_x.us-east-1.amazonaws.com",
        ] {
            assert!(
                matches!(parse_authority(bad, "https"), Err(HostError::Malformed(_))),
                "{bad}"
            );
        }
        for bad in [
            "s3.amazonaws.com.evil.example",
            "amazonaws.com",
            "example.com",
            "127.0.0.1",
            "[::1]:443",
            "evilamazonaws.com",
            "s3.us-east-1.evil-amazonaws.com",
            "nosuchservice.us-east-1.amazonaws.com",
            "s3.xx-east-1.amazonaws.com",
        ] {
            assert!(
                matches!(parse_authority(bad, "https"), Err(HostError::NotAws(_))),
                "{bad}"
            );
        }
    }
}
