#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! Property-based fuzzing of everything the pure core sees on the request path: the request
//! header map (`plan_request`, `precheck_request`, `authorize`, `sign`), the vault's answers
//! (`parse_grant_response`, `parse_dynamic_response`), the plugin configuration
//! (`Config::parse`), `aws_response::key_verdict`, the shared-data cache codec and
//! `aws_host::parse_authority` (the proxy-wasm header-map codec: `hosts/wasm/tests`).
//!
//! A panic inside Envoy's wasm VM kills the VM for every request on that worker, so every
//! property first checks "no panic", then the invariants of whatever came out: a request is
//! either signed for an allowed AWS host (or an operator `host_overrides` host), with the
//! secret only ever inside the signature, or answered with a well-formed local error.
//!
//! Runs are deterministic: each property has its own runner with a fixed seed and no failure
//! persistence, so CI sees the same cases every time (XorShift rather than ChaCha: in a debug
//! build ChaCha's unoptimized SIMD was half of the run time). A failure prints the shrunk
//! input. Budget: about 40 000 cases in all, under 10 s of CPU in a debug build.
//!
//! Each property prints (eprintln, visible with `--nocapture`) how deep its cases got, and the
//! mutated-request property fails when fewer than 10% of its cases are signed, so a generator
//! that stops reaching the signing code is noticed.
//!
//! Why not `cargo fuzz` (libFuzzer): it needs a nightly toolchain and the `cargo-fuzz`
//! subcommand, and the project builds and tests on stable, so the fuzzing lives here, as
//! proptest properties with a fixed budget that run with `cargo test`; no `fuzz/` directory
//! is added. The generators below (realistic requests with
//! random mutations) are the part worth porting to a libFuzzer target later.

use grant_sigv4_core::aws_host;
use grant_sigv4_core::aws_response::{self, KeyVerdict, CREDENTIAL_ERRORS};
use grant_sigv4_core::config::{self, Config};
use grant_sigv4_core::errors::{ErrorCode, LocalError};
use grant_sigv4_core::grant_cache::CachedGrant;
use grant_sigv4_core::policy::{Caller, Cidr, Policy};
use grant_sigv4_core::request::{self, GrantFrom, Plan};
use grant_sigv4_core::shared_grant;
use grant_sigv4_core::sigv4::{self, SigningKeyCache, UriRules};
use grant_sigv4_core::vault::{self, Credentials, DynamicKind, GrantRecord, Source, VaultError};
use proptest::collection::vec;
use proptest::prelude::*;
use proptest::sample::{select, Index};
use proptest::test_runner::{
    Config as RunnerConfig, RngAlgorithm, RngSeed, TestCaseError, TestCaseResult, TestError,
    TestRunner,
};
use serde_json::{json, Map, Value};
use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::fmt::Debug;
use std::sync::LazyLock;

// -------------------------------------------------------------------------------------------
// Runner
// -------------------------------------------------------------------------------------------

/// Run one property with a fixed seed; on failure, panic with the shrunk input.
fn run<S>(name: &str, cases: u32, seed: u64, strategy: S, test: impl Fn(S::Value) -> TestCaseResult)
where
    S: Strategy,
    S::Value: Debug,
{
    let config = RunnerConfig {
        cases,
        failure_persistence: None,
        rng_algorithm: RngAlgorithm::XorShift,
        rng_seed: RngSeed::Fixed(seed),
        max_shrink_iters: 4096,
        ..RunnerConfig::default()
    };
    let mut runner = TestRunner::new(config);
    match runner.run(&strategy, test) {
        Ok(()) => {}
        Err(TestError::Fail(why, input)) => {
            panic!("{name}: {why}\nminimal failing input: {input:#?}")
        }
        Err(TestError::Abort(why)) => panic!("{name}: aborted: {why}"),
    }
}

/// Counters of how far cases got, printed at the end of a property.
#[derive(Default)]
struct Reach {
    total: Cell<usize>,
    counts: RefCell<BTreeMap<String, usize>>,
}

impl Reach {
    fn case(&self) {
        self.total.set(self.total.get() + 1);
    }
    fn hit(&self, what: &str) {
        *self
            .counts
            .borrow_mut()
            .entry(what.to_string())
            .or_default() += 1;
    }
    fn get(&self, what: &str) -> usize {
        self.counts.borrow().get(what).copied().unwrap_or(0)
    }
    fn report(&self, name: &str) {
        let total = self.total.get();
        let mut line = format!("[{name}] {total} cases:");
        for (k, v) in self.counts.borrow().iter() {
            line.push_str(&format!(
                " {k}={v} ({:.0}%)",
                100.0 * *v as f64 / total.max(1) as f64
            ));
        }
        eprintln!("{line}");
    }
}

// -------------------------------------------------------------------------------------------
// Shared values
// -------------------------------------------------------------------------------------------

/// Every secret generated in this file contains this marker, every session token
/// `TOKEN_MARK`: an output that contains the marker leaked a secret.
const SECRET_MARK: &str = "SeCrEt";
const TOKEN_MARK: &str = "ToKeN";

const CONFIG_JSON: [&str; 10] = [
    r#"{"vault": {"token": "t"}}"#,
    r#"{"vault": {"token": "t"}, "s3_payload": "signed"}"#,
    r#"{"vault": {"token": "t"}, "request_overrides": true}"#,
    r#"{"vault": {"token": "t"}, "host_overrides": {
        "api.example.com": {"service": "execute-api", "region": "eu-west-1"},
        "minio.local": {"service": "s3", "region": "us-east-1"}}}"#,
    r#"{"vault": {"token": "t"}, "max_body_bytes": 10}"#,
    r#"{"vault": {"token": "t"}, "s3_payload": "signed", "max_body_bytes": 0,
        "request_overrides": true}"#,
    r#"{"mode": "precheck", "max_body_bytes": 1000}"#,
    r#"{"vault": {"token": "t"}, "grant_header": "x-custom-grant", "request_overrides": true,
        "host_overrides": {"api.example.com": {"service": "execute-api", "region": "eu-west-1"}}}"#,
    r#"{"vault": {"token": "t"}, "grant_from_access_key_id": true}"#,
    r#"{"mode": "precheck", "grant_from_access_key_id": true, "max_body_bytes": 1000}"#,
];
/// The configuration that takes the grant from the client's access key id.
const CFG_FROM_KEY: usize = 8;

static CONFIGS: LazyLock<Vec<Config>> = LazyLock::new(|| {
    CONFIG_JSON
        .iter()
        .map(|j| Config::parse(j.as_bytes()).expect(j))
        .collect()
});

/// Headers the filter consumes and must never forward.
const FILTER_ONLY: [&str; 8] = [
    "authorization",
    "x-grant-sigv4-credential",
    "x-amz-date",
    "x-amz-security-token",
    "x-grant-service",
    "x-grant-region",
    "x-grant-reason",
    "x-grant-context",
];

const REAL_NAMES: &[&str] = &[
    ":method",
    ":path",
    ":authority",
    ":scheme",
    "x-grant-id",
    "x-custom-grant",
    "x-amz-target",
    "x-amz-meta-a",
    "x-amz-date",
    "x-amz-security-token",
    "x-amz-content-sha256",
    "x-amz-user-agent",
    "content-length",
    "transfer-encoding",
    "x-grant-service",
    "x-grant-region",
    "x-grant-reason",
    "x-grant-context",
    "authorization",
    "x-grant-sigv4-credential",
    "content-type",
    "content-md5",
    "host",
    "user-agent",
    "X-Amz-Target",
    "X-Grant-Id",
    "Content-Type",
];

const REAL_VALUES: &[&str] = &[
    "GET",
    "PUT",
    "POST",
    "HEAD",
    "DELETE",
    "get",
    "G ET",
    "/",
    "/bucket/key",
    "/bucket/a%20b/c%2Fd?x=1&y",
    "/?Action=GetCallerIdentity&Version=2011-06-15",
    "/a/../b//c/./d?x=%zz",
    "/%",
    "/?X-Amz-Signature=abc",
    "/?x-amz-credential",
    "*",
    "bucket",
    "sts.us-east-1.amazonaws.com",
    "s3.us-east-1.amazonaws.com:443",
    "bucket.s3.eu-west-1.amazonaws.com",
    "dynamodb.us-west-2.amazonaws.com:8443",
    "iam.amazonaws.com",
    "bucket.s3-accelerate.amazonaws.com",
    "x.mrap.accesspoint.s3-global.amazonaws.com",
    "api.example.com:8443",
    "API.Example.com",
    "minio.local:9000",
    "example.com",
    "evil.com:80@sts.amazonaws.com",
    "[::1]:80",
    "sts.us-east-1.amazonaws.com.",
    "http",
    "https",
    "ftp",
    "g1",
    "grant-1.x_y",
    "..",
    "0",
    "5",
    " 7 ",
    "+5",
    "-1",
    "18446744073709551616",
    "chunked",
    sigv4::EMPTY_SHA256,
    "E3B0C44298FC1C149AFBF4C8996FB92427AE41E4649B934CA495991B7852B855",
    "UNSIGNED-PAYLOAD",
    "STREAMING-UNSIGNED-PAYLOAD-TRAILER",
    "STREAMING-AWS4-HMAC-SHA256-PAYLOAD",
    "STREAMING-AWS4-ECDSA-P256-SHA256-PAYLOAD-TRAILER",
    "us-east-1",
    "eu-west-1",
    "s3",
    "execute-api",
    "lambda",
    "{\"a\":1}",
    "[1]",
    "nightly export",
    "application/json",
    "AWS4-HMAC-SHA256 Credential=x",
    "AWS4-HMAC-SHA256 Credential=grant-1/20260101/us-east-1/sts/aws4_request, SignedHeaders=host;x-amz-date, Signature=00",
    "AWS4-HMAC-SHA256 Credential=g1/20260101/eu-west-1/s3/aws4_request,SignedHeaders=host,Signature=0",
    "AWS4-HMAC-SHA256 Credential=../20260101/us-east-1/sts/aws4_request, Signature=0",
    "AWS4-ECDSA-P256-SHA256 Credential=g1/20260101/s3/aws4_request, Signature=0",
    "AWS AKIDEXAMPLE:c2lnbmF0dXJl",
    "grant-1/20260101/us-west-2/dynamodb/aws4_request",
    "grant-1/20260101/us-east-1/sts/aws4_request",
    "",
];

fn header_name() -> BoxedStrategy<String> {
    prop_oneof![
        12 => select(REAL_NAMES).prop_map(str::to_string),
        3 => "x-amz-[a-z0-9-]{0,12}",
        2 => "x-grant-[a-z-]{0,8}",
        1 => "[ -~]{0,16}",
        1 => ".{0,16}",
    ]
    .boxed()
}

fn header_value() -> BoxedStrategy<Vec<u8>> {
    prop_oneof![
        60 => select(REAL_VALUES).prop_map(|s| s.as_bytes().to_vec()),
        30 => vec(any::<u8>(), 0..48),
        20 => "[ -~]{0,48}".prop_map(String::into_bytes),
        10 => ".{0,24}".prop_map(String::into_bytes),
        10 => Just(Vec::new()),
        1 => (any::<u8>(), 1000usize..70_000).prop_map(|(b, n)| vec![b; n]),
    ]
    .boxed()
}

fn creds() -> BoxedStrategy<Credentials> {
    (
        "[A-Z0-9]{16,40}",
        "[!-~]{0,40}",
        prop::option::of("[!-~]{0,80}"),
    )
        .prop_map(|(akid, secret, token)| Credentials {
            access_key_id: akid,
            secret_access_key: format!("{SECRET_MARK}/{secret}"),
            session_token: token.map(|t| format!("{TOKEN_MARK}{t}")),
        })
        .boxed()
}

/// Mostly ordinary times; sometimes any u64 (years past 9999 cannot be signed).
fn now() -> BoxedStrategy<u64> {
    prop_oneof![
        8 => 946_684_800u64..4_102_444_800,
        1 => any::<u64>(),
        1 => Just(0u64),
    ]
    .boxed()
}

fn policy() -> BoxedStrategy<Policy> {
    let list = |items: &'static [&'static str]| prop::option::of(vec(select(items), 0..3));
    (
        list(&["s3", "sts", "dynamodb", "execute-api", "lambda"]),
        list(&["us-east-1", "eu-west-1", "us-west-2"]),
        list(&["GET", "PUT", "POST", "HEAD"]),
        list(&["spiffe://c/ns/a/*", "spiffe://c/ns/a/sa/x", "*"]),
        prop::option::of(vec(select(&["10.0.0.0/8", "::1", "0.0.0.0/0"][..]), 0..2)),
    )
        .prop_map(|(s, r, m, p, c)| {
            let own = |v: Option<Vec<&str>>| v.map(|v| v.into_iter().map(String::from).collect());
            Policy {
                services: own(s),
                regions: own(r),
                methods: own(m),
                principals: own(p),
                source_cidrs: c.map(|v| v.into_iter().filter_map(Cidr::parse).collect()),
            }
        })
        .boxed()
}

fn caller() -> BoxedStrategy<Caller> {
    (
        prop::option::of(select(
            &["spiffe://c/ns/a/sa/x", "spiffe://c/ns/b/sa/y", ""][..],
        )),
        prop::option::of(select(
            &["10.1.2.3", "192.168.0.1", "::1", "::ffff:10.0.0.1"][..],
        )),
    )
        .prop_map(|(p, s)| Caller {
            principal: p.map(String::from),
            source: s.and_then(|s| s.parse().ok()),
        })
        .boxed()
}

type Headers = Vec<(String, Vec<u8>)>;

fn hdrs(pairs: &[(&str, &str)]) -> Headers {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.as_bytes().to_vec()))
        .collect()
}

/// Valid requests of the main shapes (as an SDK sends them) and whether they end the stream.
fn template(i: usize, grant_header: &str) -> (Headers, bool) {
    let json_hash = sigv4::sha256_hex(b"{}");
    let body_hash = sigv4::sha256_hex(b"hello");
    let (mut h, eos) = match i {
        // STS GetCallerIdentity
        0 => (
            hdrs(&[
                (":method", "GET"),
                (":path", "/?Action=GetCallerIdentity&Version=2011-06-15"),
                (":authority", "sts.us-east-1.amazonaws.com"),
                (":scheme", "https"),
                ("user-agent", "Boto3/1.34"),
                ("accept", "*/*"),
            ]),
            true,
        ),
        // S3 PUT, virtual-hosted, body hash unknown (UNSIGNED-PAYLOAD by default)
        1 => (
            hdrs(&[
                (":method", "PUT"),
                (":path", "/dir/key%20name.txt"),
                (":authority", "bucket.s3.eu-west-1.amazonaws.com"),
                (":scheme", "https"),
                ("content-length", "5"),
                ("content-type", "text/plain"),
                ("x-amz-meta-owner", "team-a"),
                ("content-md5", "XUFAKrxLKna5cZ2REBfFkg=="),
            ]),
            false,
        ),
        // S3 PUT, path style, with the body's hash
        2 => (
            hdrs(&[
                (":method", "PUT"),
                (":path", "/bucket/k?tagging"),
                (":authority", "s3.us-east-1.amazonaws.com:443"),
                (":scheme", "https"),
                ("content-length", "5"),
                ("x-amz-content-sha256", &body_hash),
                ("x-amz-storage-class", "STANDARD"),
            ]),
            false,
        ),
        // DynamoDB POST with audit headers
        3 => (
            hdrs(&[
                (":method", "POST"),
                (":path", "/"),
                (":authority", "dynamodb.us-west-2.amazonaws.com"),
                (":scheme", "http"),
                ("content-type", "application/x-amz-json-1.0"),
                ("x-amz-target", "DynamoDB_20120810.ListTables"),
                ("content-length", "2"),
                ("x-amz-content-sha256", &json_hash),
                ("x-grant-reason", "nightly export"),
                ("x-grant-context", r#"{"job": 7}"#),
            ]),
            false,
        ),
        // API Gateway behind an operator host override
        4 => (
            hdrs(&[
                (":method", "GET"),
                (":path", "/prod/items?limit=10"),
                (":authority", "api.example.com:8443"),
                (":scheme", "https"),
            ]),
            true,
        ),
        // Lambda invoke with request-level overrides and a stale client signature
        5 => (
            hdrs(&[
                (":method", "POST"),
                (":path", "/2015-03-31/functions/f/invocations"),
                (":authority", "lambda.eu-west-1.amazonaws.com"),
                (":scheme", "https"),
                ("x-grant-region", "eu-west-1"),
                ("x-grant-service", "lambda"),
                ("authorization", "AWS4-HMAC-SHA256 Credential=OLD"),
                ("x-amz-date", "20200101T000000Z"),
                ("content-length", "0"),
            ]),
            false,
        ),
        // An unmodified SDK signing with the grant id as its access key id: DynamoDB POST
        // after the body hasher (its hash set, its own Authorization, the precheck's hand-off)
        7 => (
            hdrs(&[
                (":method", "POST"),
                (":path", "/"),
                (":authority", "dynamodb.us-west-2.amazonaws.com"),
                (":scheme", "http"),
                ("content-type", "application/x-amz-json-1.0"),
                ("x-amz-target", "DynamoDB_20120810.ListTables"),
                ("content-length", "2"),
                ("x-amz-content-sha256", &json_hash),
                ("x-amz-date", "20260101T000000Z"),
                ("authorization", "AWS4-HMAC-SHA256 Credential=BODYHASHONLYDUMMY/20260101/us-east-1/body-hash-only/aws4_request, SignedHeaders=host, Signature=00"),
                ("x-grant-sigv4-credential", "grant-1/20260101/us-west-2/dynamodb/aws4_request"),
            ]),
            false,
        ),
        // ... and an S3 GET, virtual-hosted, with its placeholder signature and session token
        8 => (
            hdrs(&[
                (":method", "GET"),
                (":path", "/key?versionId=3"),
                (":authority", "bucket.s3.eu-west-1.amazonaws.com"),
                (":scheme", "http"),
                ("x-amz-content-sha256", sigv4::EMPTY_SHA256),
                ("x-amz-date", "20260101T000000Z"),
                ("x-amz-security-token", "placeholder-token"),
                ("authorization", "AWS4-HMAC-SHA256 Credential=grant-1/20260101/eu-west-1/s3/aws4_request, SignedHeaders=host;x-amz-content-sha256;x-amz-date, Signature=0123"),
            ]),
            true,
        ),
        // S3 GET, upper-case authority with the default port, chunked request
        _ => (
            hdrs(&[
                (":method", "GET"),
                (":path", "/bucket/a/b/../c?list-type=2&prefix=x%2Fy"),
                (":authority", "S3.US-WEST-2.AMAZONAWS.COM:80"),
                (":scheme", "http"),
                ("x-amz-security-token", "client-token"),
                ("transfer-encoding", "chunked"),
            ]),
            true,
        ),
    };
    if !(7..=8).contains(&i) {
        h.insert(4, (grant_header.to_string(), b"grant-1".to_vec()));
    }
    (h, eos)
}
const TEMPLATES: usize = 9;

#[derive(Clone, Debug)]
enum Mutation {
    Insert(Index, String, Vec<u8>),
    Delete(Index),
    Duplicate(Index),
    UpperName(Index),
    UpperValue(Index),
    FlipBit(Index, Index, u8),
    ReplaceValue(Index, Vec<u8>),
    Truncate(Index, Index),
    Append(Index, Vec<u8>),
    Swap(Index, Index),
}

fn mutation() -> BoxedStrategy<Mutation> {
    let i = any::<Index>;
    prop_oneof![
        3 => (i(), header_name(), header_value()).prop_map(|(a, n, v)| Mutation::Insert(a, n, v)),
        2 => i().prop_map(Mutation::Delete),
        2 => i().prop_map(Mutation::Duplicate),
        1 => i().prop_map(Mutation::UpperName),
        1 => i().prop_map(Mutation::UpperValue),
        2 => (i(), i(), 0u8..8).prop_map(|(a, b, c)| Mutation::FlipBit(a, b, c)),
        2 => (i(), header_value()).prop_map(|(a, v)| Mutation::ReplaceValue(a, v)),
        1 => (i(), i()).prop_map(|(a, b)| Mutation::Truncate(a, b)),
        1 => (i(), header_value()).prop_map(|(a, v)| Mutation::Append(a, v)),
        1 => (i(), i()).prop_map(|(a, b)| Mutation::Swap(a, b)),
    ]
    .boxed()
}

fn apply(h: &mut Headers, m: &Mutation) {
    if let Mutation::Insert(at, n, v) = m {
        let at = at.index(h.len() + 1);
        h.insert(at, (n.clone(), v.clone()));
        return;
    }
    if h.is_empty() {
        return;
    }
    let len = h.len();
    match m {
        Mutation::Insert(..) => {}
        Mutation::Delete(a) => {
            h.remove(a.index(len));
        }
        Mutation::Duplicate(a) => {
            let e = h[a.index(len)].clone();
            h.push(e);
        }
        Mutation::UpperName(a) => h[a.index(len)].0.make_ascii_uppercase(),
        Mutation::UpperValue(a) => h[a.index(len)].1.make_ascii_uppercase(),
        Mutation::FlipBit(a, b, bit) => {
            let v = &mut h[a.index(len)].1;
            if !v.is_empty() {
                let at = b.index(v.len());
                v[at] ^= 1 << bit;
            }
        }
        Mutation::ReplaceValue(a, v) => h[a.index(len)].1 = v.clone(),
        Mutation::Truncate(a, b) => {
            let v = &mut h[a.index(len)].1;
            let keep = b.index(v.len() + 1);
            v.truncate(keep);
        }
        Mutation::Append(a, v) => h[a.index(len)].1.extend_from_slice(v),
        Mutation::Swap(a, b) => h.swap(a.index(len), b.index(len)),
    }
}

// -------------------------------------------------------------------------------------------
// Request-path invariants
// -------------------------------------------------------------------------------------------

fn check_local_error(e: &LocalError, forbidden: &[&str]) -> TestCaseResult {
    prop_assert!(
        (400..=599).contains(&e.status()),
        "status {} of {}",
        e.status(),
        e.code
    );
    prop_assert!(ErrorCode::ALL.contains(&e.code));
    let body = e.body();
    let v: Value = serde_json::from_str(&body)
        .map_err(|err| TestCaseError::fail(format!("body is not JSON ({err}): {body}")))?;
    let obj = v
        .as_object()
        .ok_or_else(|| TestCaseError::fail(format!("body is not an object: {body}")))?;
    prop_assert_eq!(obj.len(), 2, "{}", body);
    prop_assert_eq!(
        obj.get("error").and_then(Value::as_str),
        Some(e.code.as_str())
    );
    prop_assert_eq!(
        obj.get("message").and_then(Value::as_str),
        Some(e.message.as_str())
    );
    // Messages quote at most a clipped host name: a huge header never makes a huge reply.
    prop_assert!(body.len() < 4096, "local reply of {} bytes", body.len());
    for f in forbidden {
        prop_assert!(!body.contains(f), "local reply leaks {:?}: {}", f, body);
    }
    Ok(())
}

fn is_lower_hex64(s: &str) -> bool {
    s.len() == 64
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

fn check_plan(cfg: &Config, headers: &Headers, plan: &Plan) -> TestCaseResult {
    let host = &plan.endpoint.host;
    let bare = host.split(':').next().unwrap_or("");
    prop_assert!(
        aws_host::has_aws_suffix(bare) || cfg.host_overrides.contains_key(bare),
        "signing for a host that is neither AWS nor overridden: {}",
        host
    );
    prop_assert!(
        host.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"-.:".contains(&b)),
        "host {:?}",
        host
    );
    prop_assert!(
        config::is_signing_name_or_region(&plan.endpoint.region),
        "region {:?}",
        plan.endpoint.region
    );
    prop_assert!(
        config::is_signing_name_or_region(&plan.endpoint.signing_name),
        "service {:?}",
        plan.endpoint.signing_name
    );
    prop_assert!(vault::validate_grant_id(plan.grant_id.as_bytes()).is_ok());
    // The grant header wins; the access key id names the grant only when allowed.
    let has_grant_header = headers.iter().any(|(n, _)| *n == cfg.grant_header);
    match plan.grant_from {
        GrantFrom::Header => prop_assert!(has_grant_header),
        GrantFrom::AccessKeyId => {
            prop_assert!(cfg.grant_from_access_key_id && !has_grant_header)
        }
    }
    prop_assert!(!plan.method.is_empty());
    prop_assert!(plan.path.starts_with('/'));

    // Every filter-only header the request carries is removed (whether the plan lists the
    // headers that are there or all of them), and nothing else is.
    let filter_only = |n: &str| *n == cfg.grant_header || FILTER_ONLY.contains(&n);
    for (name, _) in headers {
        if filter_only(name) {
            prop_assert!(
                plan.strip.contains(name),
                "{} not stripped: {:?}",
                name,
                plan.strip
            );
        }
    }
    for name in &plan.strip {
        prop_assert!(filter_only(name), "strips {}", name);
    }

    prop_assert_eq!(
        plan.signed.first(),
        Some(&("host".to_string(), host.as_bytes().to_vec()))
    );
    prop_assert_eq!(plan.signed.iter().filter(|(n, _)| n == "host").count(), 1);
    for (name, _) in &plan.signed {
        prop_assert!(!name.starts_with("x-grant-"), "signs {}", name);
        prop_assert!(
            !name.eq_ignore_ascii_case(&cfg.grant_header),
            "signs the grant header"
        );
        prop_assert!(!plan.strip.contains(name), "signs stripped header {}", name);
        prop_assert!(
            ![
                "authorization",
                "x-amz-date",
                "x-amz-security-token",
                "x-amz-content-sha256"
            ]
            .contains(&name.as_str()),
            "signs the client's {}",
            name
        );
    }

    let s3 = aws_host::is_s3_family(&plan.endpoint.signing_name);
    prop_assert_eq!(plan.uri_rules == UriRules::S3, s3);
    let tokens = [sigv4::UNSIGNED_PAYLOAD, request::STREAMING_UNSIGNED_TRAILER];
    prop_assert!(
        is_lower_hex64(&plan.payload_hash) || (s3 && tokens.contains(&plan.payload_hash.as_str())),
        "payload hash {:?} (s3: {})",
        plan.payload_hash,
        s3
    );

    let authority = headers
        .iter()
        .rev()
        .find(|(n, _)| n == ":authority")
        .map(|(_, v)| v.as_slice());
    match &plan.new_authority {
        Some(a) => {
            prop_assert_eq!(a, host);
            prop_assert!(authority != Some(a.as_bytes()));
        }
        None => prop_assert_eq!(authority, Some(host.as_bytes())),
    }
    Ok(())
}

/// The request as Envoy forwards it after the glue applied the edits (Envoy's header names
/// are lowercase; `remove` and `replace` act on every value of a name, `add` appends one, so
/// a header added that the request still had is forwarded twice and fails the counts).
fn forwarded(headers: &Headers, edits: &request::Edits) -> Vec<(String, Vec<u8>)> {
    let mut out: Headers = headers
        .iter()
        .filter(|(n, _)| !edits.remove.iter().any(|r| r.eq_ignore_ascii_case(n)))
        .cloned()
        .collect();
    for (i, (n, v)) in edits.set.iter().enumerate() {
        if !edits.adds(i) {
            out.retain(|(k, _)| !k.eq_ignore_ascii_case(n));
        }
        out.push((n.clone(), v.as_bytes().to_vec()));
    }
    out
}

/// What reaches AWS: no filter-only header but the ones the filter set, and every signed
/// header with the value that was signed. Checked for the header maps Envoy can hand to the
/// filter (its codecs lowercase every name and keep one value per pseudo-header).
fn check_forwarded(
    cfg: &Config,
    headers: &Headers,
    plan: &Plan,
    creds: &Credentials,
    edits: &request::Edits,
) -> Result<bool, TestCaseError> {
    // Envoy: lowercase names, each pseudo-header at most once.
    let envoy_like = headers
        .iter()
        .all(|(n, _)| !n.bytes().any(|b| b.is_ascii_uppercase()))
        && [":method", ":path", ":authority", ":scheme"]
            .iter()
            .all(|p| headers.iter().filter(|(n, _)| n == p).count() <= 1);
    if !envoy_like {
        return Ok(false);
    }
    let out = forwarded(headers, edits);
    let count = |name: &str| out.iter().filter(|(n, _)| n == name).count();
    prop_assert_eq!(count(&cfg.grant_header), 0, "the grant header is forwarded");
    for h in [
        "x-grant-service",
        "x-grant-region",
        "x-grant-reason",
        "x-grant-context",
    ] {
        prop_assert_eq!(count(h), 0, "{} is forwarded", h);
    }
    prop_assert_eq!(count("authorization"), 1);
    prop_assert_eq!(count("x-amz-date"), 1);
    prop_assert_eq!(count("x-amz-content-sha256"), 1);
    let sent = out.iter().find(|(n, _)| n == "x-amz-content-sha256");
    prop_assert_eq!(
        sent.map(|(_, v)| v),
        Some(&plan.payload_hash.as_bytes().to_vec())
    );
    prop_assert_eq!(
        count("x-amz-security-token"),
        usize::from(creds.session_token.is_some()),
        "a client's x-amz-security-token is forwarded"
    );
    prop_assert_eq!(count(":authority"), 1);
    let authority = out.iter().find(|(n, _)| n == ":authority").map(|(_, v)| v);
    prop_assert_eq!(authority, Some(&plan.endpoint.host.as_bytes().to_vec()));
    // The path that leaves is the path that was signed; for S3, spelled canonically.
    prop_assert_eq!(count(":path"), 1);
    let path = out.iter().find(|(n, _)| n == ":path").map(|(_, v)| v);
    prop_assert_eq!(path, Some(&plan.path.as_bytes().to_vec()));
    if plan.uri_rules == UriRules::S3 {
        let p = plan.path.split('?').next().unwrap_or("");
        prop_assert_eq!(
            sigv4::s3_forwarded_path(p),
            Ok(None),
            "{} is not canonical",
            p
        );
    }
    // Each signed client header reaches AWS with exactly the values that were signed.
    for (name, _) in plan.signed.iter().skip(1) {
        let sent: Vec<&Vec<u8>> = out
            .iter()
            .filter(|(n, _)| n == name)
            .map(|(_, v)| v)
            .collect();
        let signed: Vec<&Vec<u8>> = plan
            .signed
            .iter()
            .filter(|(n, _)| n == name)
            .map(|(_, v)| v)
            .collect();
        prop_assert_eq!(sent, signed, "{} differs from what was signed", name);
    }
    Ok(true)
}

fn check_edits(
    cfg: &Config,
    headers: &Headers,
    plan: &Plan,
    creds: &Credentials,
    now: u64,
    edits: &request::Edits,
) -> Result<bool, TestCaseError> {
    prop_assert_eq!(&edits.remove, &plan.strip);
    let envoy_like = check_forwarded(cfg, headers, plan, creds, edits)?;
    let set = |name: &str| -> Vec<&String> {
        edits
            .set
            .iter()
            .filter(|(n, _)| n == name)
            .map(|(_, v)| v)
            .collect()
    };
    let amz_date = sigv4::format_amz_date(now);
    prop_assert_eq!(set("x-amz-date"), vec![&amz_date]);
    let sent_sha: Vec<&[u8]> = headers
        .iter()
        .filter(|(n, _)| n == "x-amz-content-sha256")
        .map(|(_, v)| v.as_slice())
        .collect();
    prop_assert_eq!(
        plan.payload_hash_as_sent,
        sent_sha == [plan.payload_hash.as_bytes()]
    );
    let rewrite = !plan.payload_hash_as_sent;
    prop_assert_eq!(
        set("x-amz-content-sha256"),
        if rewrite {
            vec![&plan.payload_hash]
        } else {
            vec![]
        }
    );
    prop_assert_eq!(
        set("x-amz-security-token"),
        creds.session_token.iter().collect::<Vec<_>>()
    );
    prop_assert_eq!(
        set(":authority"),
        plan.new_authority.iter().collect::<Vec<_>>()
    );
    prop_assert_eq!(set(":path"), plan.new_path.iter().collect::<Vec<_>>());
    prop_assert_eq!(
        edits.set.len(),
        2 + usize::from(rewrite)
            + set("x-amz-security-token").len()
            + set(":authority").len()
            + set(":path").len()
    );

    let auth = set("authorization");
    prop_assert_eq!(auth.len(), 1);
    let auth = auth[0];
    let prefix = format!(
        "AWS4-HMAC-SHA256 Credential={}/{}/{}/{}/aws4_request, SignedHeaders=",
        creds.access_key_id,
        &amz_date[..8],
        plan.endpoint.region,
        plan.endpoint.signing_name
    );
    prop_assert!(
        auth.starts_with(&prefix),
        "{} does not start with {}",
        auth,
        prefix
    );
    let rest = &auth[prefix.len()..];
    let (names, signature) = rest
        .split_once(", Signature=")
        .ok_or_else(|| TestCaseError::fail(format!("no signature in {auth}")))?;
    prop_assert!(is_lower_hex64(signature), "signature {:?}", signature);
    let names: Vec<&str> = names.split(';').collect();
    prop_assert!(
        names.windows(2).all(|w| w[0] < w[1]),
        "not sorted: {:?}",
        names
    );
    let mut expected: Vec<String> = plan
        .signed
        .iter()
        .map(|(n, _)| n.to_ascii_lowercase())
        .chain(["x-amz-date".to_string(), "x-amz-content-sha256".to_string()])
        .chain(
            creds
                .session_token
                .iter()
                .map(|_| "x-amz-security-token".to_string()),
        )
        .collect();
    expected.sort();
    expected.dedup();
    prop_assert_eq!(
        names,
        expected.iter().map(String::as_str).collect::<Vec<_>>()
    );

    for (name, value) in &edits.set {
        prop_assert!(
            !value.contains(&creds.secret_access_key) && !value.contains(SECRET_MARK),
            "{} carries the secret",
            name
        );
        if let Some(t) = &creds.session_token {
            prop_assert!(
                name == "x-amz-security-token" || !value.contains(t.as_str()),
                "{} carries the session token",
                name
            );
        }
        prop_assert!(
            value.bytes().all(|b| (0x20..0x7f).contains(&b)),
            "{} = {:?} is not a plain header value",
            name,
            value
        );
    }
    let shown = format!("{edits:?}");
    prop_assert!(!shown.contains(SECRET_MARK));
    Ok(envoy_like)
}

/// The precheck hands the client's credential scope on only when the grant came from the
/// client's own `Authorization`; after the body hasher replaced that header, the signing
/// instance plans the same grant, endpoint and hash from the hand-off.
fn check_handoff(
    cfg: &Config,
    headers: &Headers,
    eos: bool,
    plan: &Plan,
    name: &str,
    value: &str,
) -> TestCaseResult {
    prop_assert_eq!(name, request::CREDENTIAL_HEADER);
    prop_assert_eq!(plan.grant_from, GrantFrom::AccessKeyId);
    prop_assert!(
        value.starts_with(&format!("{}/", plan.grant_id)),
        "{}",
        value
    );
    prop_assert!(!value.contains(','), "{}", value);
    let mut after: Headers = headers
        .iter()
        .filter(|(n, _)| n != "authorization" && n != request::CREDENTIAL_HEADER)
        .cloned()
        .collect();
    after.push((
        "authorization".into(),
        b"AWS4-HMAC-SHA256 Credential=BODYHASHONLYDUMMY/20260101/us-east-1/body-hash-only/aws4_request, SignedHeaders=host, Signature=00".to_vec(),
    ));
    after.push((name.to_string(), value.as_bytes().to_vec()));
    let signing = Config {
        mode: config::Mode::Sign,
        ..cfg.clone()
    };
    let again = request::plan_request(&signing, &after, eos).map_err(|e| {
        TestCaseError::fail(format!("planned before the hasher, refused after: {e:?}"))
    })?;
    prop_assert_eq!(&again.grant_id, &plan.grant_id);
    prop_assert_eq!(again.grant_from, GrantFrom::AccessKeyId);
    prop_assert_eq!(&again.endpoint, &plan.endpoint);
    prop_assert_eq!(&again.client_credential, &None);
    Ok(())
}

/// The whole request path for one input; returns how far it got.
fn check_request(
    c: &RequestCase,
    keys: &RefCell<SigningKeyCache>,
) -> Result<&'static str, TestCaseError> {
    let (cfg, headers, eos, creds, now) = (&CONFIGS[c.cfg], &c.headers, c.eos, &c.creds, c.now);
    let mut forbidden = vec![creds.secret_access_key.as_str(), SECRET_MARK];
    if let Some(t) = &creds.session_token {
        forbidden.push(t.as_str());
    }
    let planned = request::plan_request(cfg, headers, eos);
    let prechecked = request::precheck_request(cfg, headers, eos);

    // The precheck makes the same decisions, except that an unknown body hash is left to
    // the body hasher (which may still end in BodyTooLarge).
    match (&planned, &prechecked) {
        (Ok(_), Ok(_)) => {}
        (Err(p), Ok(_)) => prop_assert_eq!(p.code, ErrorCode::PayloadHashRequired),
        (Err(p), Err(q)) if p.code == ErrorCode::PayloadHashRequired => {
            prop_assert_eq!(q.code, ErrorCode::BodyTooLarge)
        }
        (Err(p), Err(q)) => prop_assert_eq!(p, q),
        (Ok(_), Err(q)) => return Err(TestCaseError::fail(format!("precheck refuses: {q:?}"))),
    }
    if let Err(q) = &prechecked {
        check_local_error(q, &forbidden)?;
    }
    if let (Ok(plan), Ok(Some((name, value)))) = (&planned, &prechecked) {
        check_handoff(cfg, headers, eos, plan, name, value)?;
    }

    let plan = match planned {
        Ok(plan) => plan,
        Err(e) => {
            check_local_error(&e, &forbidden)?;
            return Ok(e.code.as_str());
        }
    };
    check_plan(cfg, headers, &plan)?;

    if let Err(e) = request::authorize(&plan, &c.policy, &c.caller) {
        check_local_error(&e, &forbidden)?;
        prop_assert_eq!((e.status(), e.code), (403, ErrorCode::GrantPolicyDenied));
    }

    let signed = request::sign(&plan, creds, now, &mut keys.borrow_mut());
    // A signing key cache that has seen many other keys gives the same answer as a new one.
    let fresh = request::sign(&plan, creds, now, &mut SigningKeyCache::default());
    prop_assert_eq!(&signed, &fresh);
    match signed {
        Ok(edits) => {
            let envoy_like = check_edits(cfg, headers, &plan, creds, now, &edits)?;
            Ok(if envoy_like {
                "SIGNED+forwarded"
            } else {
                "SIGNED"
            })
        }
        Err(e) => {
            check_local_error(&e, &forbidden)?;
            Ok(if e.status() == 500 {
                "sign:500"
            } else {
                "sign:4xx"
            })
        }
    }
}

fn report_codes(reach: &Reach, code: &str) {
    reach.case();
    if code.starts_with("SIGNED") {
        reach.hit("plan_ok");
        reach.hit("signed");
        if code == "SIGNED+forwarded" {
            reach.hit("signed+forwarded_checked");
        }
    } else if code.starts_with("sign:") {
        reach.hit("plan_ok");
        reach.hit(code);
    } else {
        reach.hit(&format!("err:{code}"));
    }
}

#[derive(Debug, Clone)]
struct RequestCase {
    cfg: usize,
    headers: Headers,
    eos: bool,
    creds: Credentials,
    now: u64,
    policy: Policy,
    caller: Caller,
}

fn run_requests(
    name: &str,
    cases: u32,
    seed: u64,
    headers: impl Strategy<Value = (usize, Headers, bool)>,
) -> Reach {
    let strategy = (headers, creds(), now(), policy(), caller()).prop_map(
        |((cfg, headers, eos), creds, now, policy, caller)| RequestCase {
            cfg,
            headers,
            eos,
            creds,
            now,
            policy,
            caller,
        },
    );
    let reach = Reach::default();
    let keys = RefCell::new(SigningKeyCache::default());
    run(name, cases, seed, strategy, |c| {
        let code = check_request(&c, &keys)?;
        report_codes(&reach, code);
        Ok(())
    });
    reach.report(name);
    reach
}

fn cfg_index() -> impl Strategy<Value = usize> {
    0..CONFIG_JSON.len()
}

#[test]
fn arbitrary_header_maps() {
    let strategy = (
        cfg_index(),
        vec((header_name(), header_value()), 0..14),
        any::<bool>(),
    );
    run_requests("arbitrary_header_maps", 3000, 0x5167_0001, strategy);
}

/// Each pseudo-header and the grant header present or not, from the pool or random, plus
/// random other headers: gets past the first checks far more often than a free map.
#[test]
fn assembled_header_maps() {
    // Each part: usually present, usually from a pool of values seen in practice (valid and
    // invalid), else any bytes.
    let part = |name: &'static str, pool: &'static [&'static str]| {
        let value = prop_oneof![
            7 => select(pool).prop_map(|s| s.as_bytes().to_vec()),
            1 => header_value(),
        ];
        prop::option::weighted(0.9, value).prop_map(move |v| v.map(|v| (name, v)))
    };
    let methods = &["GET", "PUT", "POST", "HEAD", "DELETE", "get", "G ET", ""][..];
    let paths = &[
        "/",
        "/bucket/key",
        "/bucket/a%20b/c%2Fd?x=1&y",
        "/?Action=GetCallerIdentity&Version=2011-06-15",
        "/a/../b//c/./d?x=%zz",
        "/%",
        "/?X-Amz-Signature=abc",
        "*",
        "bucket",
    ][..];
    let hosts = &[
        "sts.us-east-1.amazonaws.com",
        "s3.us-east-1.amazonaws.com:443",
        "bucket.s3.eu-west-1.amazonaws.com",
        "dynamodb.us-west-2.amazonaws.com:8443",
        "iam.amazonaws.com",
        "bucket.s3-accelerate.amazonaws.com",
        "api.example.com:8443",
        "API.Example.com",
        "minio.local:9000",
        "example.com",
        "sts.us-east-1.amazonaws.com.",
    ][..];
    let schemes = &["http", "https", "ftp"][..];
    let grants = &["g1", "g1", "g1", "g1", "g1", "g1", "grant-1.x_y", "..", ""][..];
    let strategy = (
        cfg_index(),
        (
            part(":method", methods),
            part(":path", paths),
            part(":authority", hosts),
            prop::option::of(part(":scheme", schemes)),
            part("x-grant-id", grants),
            part("x-custom-grant", grants),
        ),
        vec((header_name(), header_value()), 0..6),
        any::<bool>(),
    )
        .prop_map(|(cfg, (m, p, a, s, g, c), extra, eos)| {
            let mut h: Headers = [m, p, a, s.flatten(), g, c]
                .into_iter()
                .flatten()
                .map(|(n, v)| (n.to_string(), v))
                .collect();
            h.extend(extra);
            (cfg, h, eos)
        });
    run_requests("assembled_header_maps", 3000, 0x5167_0002, strategy);
}

#[test]
fn mutated_realistic_requests() {
    let strategy = (
        cfg_index(),
        0..TEMPLATES,
        vec(mutation(), 0..4),
        prop::bool::weighted(0.15),
    )
        .prop_map(|(cfg, t, muts, flip_eos)| {
            let (mut h, eos) = template(t, &CONFIGS[cfg].grant_header);
            for m in &muts {
                apply(&mut h, m);
            }
            (cfg, h, eos ^ flip_eos)
        });
    let reach = run_requests("mutated_realistic_requests", 4000, 0x5167_0003, strategy);
    let ok = reach.get("plan_ok");
    let total = reach.total.get();
    assert!(
        ok * 10 > total,
        "only {ok} of {total} mutated realistic requests were planned: the generator no longer \
         reaches the signing code"
    );
    assert!(reach.get("signed") * 10 > total);
}

/// The unmutated templates sign under the configurations meant for them.
#[test]
fn templates_sign() {
    let c = Credentials {
        access_key_id: "AKIDEXAMPLE0000000".into(),
        secret_access_key: format!("{SECRET_MARK}/x"),
        session_token: Some(format!("{TOKEN_MARK}1")),
    };
    let keys = RefCell::new(SigningKeyCache::default());
    for (t, cfg) in [
        (0, 0),
        (1, 0),
        (2, 1),
        (3, 0),
        (4, 3),
        (5, 2),
        (6, 0),
        (4, 7),
        (7, CFG_FROM_KEY),
        (8, CFG_FROM_KEY),
        (0, CFG_FROM_KEY),
    ] {
        let (headers, eos) = template(t, &CONFIGS[cfg].grant_header);
        let case = RequestCase {
            cfg,
            headers,
            eos,
            creds: c.clone(),
            now: 1_700_000_000,
            policy: Policy::default(),
            caller: Caller::default(),
        };
        let got = check_request(&case, &keys).unwrap();
        assert_eq!(got, "SIGNED+forwarded", "template {t} with config {cfg}");
    }
}

// -------------------------------------------------------------------------------------------
// Vault answers
// -------------------------------------------------------------------------------------------

fn leaf_json() -> BoxedStrategy<Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>()
            .prop_map(|f| serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number)),
        ".{0,20}".prop_map(Value::String),
    ]
    .boxed()
}

/// Any JSON value, with object keys drawn partly from `keys`.
fn arb_json(keys: &'static [&'static str]) -> BoxedStrategy<Value> {
    leaf_json()
        .prop_recursive(4, 48, 6, move |inner| {
            let key = prop_oneof![3 => select(keys).prop_map(String::from), 1 => ".{0,10}"];
            prop_oneof![
                vec(inner.clone(), 0..6).prop_map(Value::Array),
                vec((key, inner), 0..6).prop_map(|kv| Value::Object(kv.into_iter().collect())),
            ]
        })
        .boxed()
}

const VAULT_KEYS: &[&str] = &[
    "data",
    "metadata",
    "access_key_id",
    "secret_access_key",
    "session_token",
    "aws_role",
    "aws_mount",
    "aws_credential_type",
    "allowed_services",
    "allowed_regions",
    "allowed_methods",
    "allowed_principals",
    "allowed_source_cidrs",
    "access_key",
    "secret_key",
    "lease_duration",
];

/// A string field: usually of the expected shape, else any JSON.
fn field(good: impl Strategy<Value = String> + 'static) -> BoxedStrategy<Value> {
    prop_oneof![
        8 => good.prop_map(Value::String),
        1 => Just(Value::Null),
        1 => arb_json(VAULT_KEYS),
    ]
    .boxed()
}

fn akid_any() -> BoxedStrategy<String> {
    prop_oneof![
        6 => "[A-Z0-9]{16,40}",
        1 => "[A-Z0-9]{120,135}",
        1 => "[A-Za-z0-9]{0,20}",
        1 => ".{0,20}",
    ]
    .boxed()
}

fn secret_any() -> BoxedStrategy<String> {
    prop_oneof![
        6 => "[!-~]{0,60}",
        1 => "[!-~]{115,125}",
        1 => "[!-~]{0,5}[ \t\n][!-~]{0,5}",
        1 => ".{0,10}",
    ]
    .prop_map(|s| format!("{SECRET_MARK}{s}"))
    .boxed()
}

fn token_any() -> BoxedStrategy<String> {
    prop_oneof![
        6 => "[!-~]{0,100}".prop_map(|s| format!("{TOKEN_MARK}{s}")),
        1 => Just(String::new()),
        1 => (8180usize..8200).prop_map(|n| format!("{TOKEN_MARK}{}", "A".repeat(n))),
        1 => "[!-~]{0,5} [!-~]{0,5}".prop_map(|s| format!("{TOKEN_MARK}{s}")),
        1 => ".{0,10}".prop_map(|s| format!("{TOKEN_MARK}{s}")),
    ]
    .boxed()
}

fn name_any() -> BoxedStrategy<String> {
    prop_oneof![
        4 => "[A-Za-z0-9._-]{1,20}",
        1 => "[a-z]{1,8}/[a-z]{1,8}",
        1 => select(&["", ".", "..", "a/../b", "a//b", "/a"][..]).prop_map(String::from),
        1 => ".{0,12}",
    ]
    .boxed()
}

/// A policy list: an array of strings or a comma-separated string of `item`, or junk.
fn policy_list(item: impl Strategy<Value = String> + Clone + 'static) -> BoxedStrategy<Value> {
    prop_oneof![
        4 => vec(item.clone(), 0..4).prop_map(|v| json!(v)),
        3 => vec(item, 0..4).prop_map(|v| Value::String(v.join(", "))),
        1 => arb_json(VAULT_KEYS),
    ]
    .boxed()
}

fn grant_fields() -> BoxedStrategy<Vec<(String, Value)>> {
    let scope_item = || {
        prop_oneof![
            4 => select(&["s3", "sts", "dynamodb", "us-east-1", "eu-west-1"][..]).prop_map(String::from),
            2 => "[a-z0-9-]{1,12}",
            1 => "[ -~]{0,12}",
            1 => ".{0,6}",
        ]
    };
    let method = prop_oneof![
        3 => select(&["GET", "PUT", "HEAD", "POST"][..]).prop_map(String::from),
        1 => "[A-Za-z ]{0,8}",
    ];
    let principal = prop_oneof![
        2 => select(&["spiffe://c/ns/a/*", "spiffe://c/ns/a/sa/x", "*"][..]).prop_map(String::from),
        1 => ".{0,20}",
    ];
    let cidr = prop_oneof![
        3 => select(&["10.0.0.0/8", "::1", "fd00::/8", "0.0.0.0/0", "1.2.3.4/32"][..]).prop_map(String::from),
        1 => select(&["1.2.3.4/33", "::/129", "10.0.0/8", "x", "1.2.3.4/", "/8"][..]).prop_map(String::from),
        1 => "[0-9a-f.:/ ]{0,20}",
    ];
    let kind = prop_oneof![
        select(&["creds", "sts", "iam_user", ""][..]).prop_map(String::from),
        ".{0,6}",
    ];
    let entry = prop_oneof![
        3 => field(akid_any()).prop_map(|v| ("access_key_id".to_string(), v)),
        3 => field(secret_any()).prop_map(|v| ("secret_access_key".to_string(), v)),
        2 => field(token_any()).prop_map(|v| ("session_token".to_string(), v)),
        2 => field(name_any()).prop_map(|v| ("aws_role".to_string(), v)),
        1 => field(name_any()).prop_map(|v| ("aws_mount".to_string(), v)),
        1 => field(kind).prop_map(|v| ("aws_credential_type".to_string(), v)),
        1 => policy_list(scope_item()).prop_map(|v| ("allowed_services".to_string(), v)),
        1 => policy_list(scope_item()).prop_map(|v| ("allowed_regions".to_string(), v)),
        1 => policy_list(method).prop_map(|v| ("allowed_methods".to_string(), v)),
        1 => policy_list(principal).prop_map(|v| ("allowed_principals".to_string(), v)),
        1 => policy_list(cidr).prop_map(|v| ("allowed_source_cidrs".to_string(), v)),
        1 => ("[a-z_]{1,12}", arb_json(VAULT_KEYS)),
    ];
    // Start from a valid static or dynamic record most of the time, then add fields.
    let base = prop_oneof![
        2 => ("[A-Z0-9]{16,24}", "[!-~]{1,40}").prop_map(|(a, s)| vec![
            ("access_key_id".to_string(), json!(a)),
            ("secret_access_key".to_string(), json!(format!("{SECRET_MARK}{s}"))),
        ]),
        1 => "[a-z0-9_-]{1,16}".prop_map(|r| vec![("aws_role".to_string(), json!(r))]),
        1 => Just(Vec::new()),
    ];
    (base, vec(entry, 0..5))
        .prop_map(|(mut b, extra)| {
            b.extend(extra);
            b
        })
        .boxed()
}

/// How the record is wrapped into a vault answer, and what is done to the bytes.
#[derive(Clone, Debug)]
enum Wrap {
    Kv2,
    DataDataNull,
    DataNull,
    Bare,
    Array,
    Flip(Vec<(Index, u8)>),
    Truncate(Index),
    Huge(usize),
}

fn wrap() -> BoxedStrategy<Wrap> {
    prop_oneof![
        12 => Just(Wrap::Kv2),
        1 => Just(Wrap::DataDataNull),
        1 => Just(Wrap::DataNull),
        1 => Just(Wrap::Bare),
        1 => Just(Wrap::Array),
        2 => vec((any::<Index>(), any::<u8>()), 1..4).prop_map(Wrap::Flip),
        1 => any::<Index>().prop_map(Wrap::Truncate),
        1 => (65_000usize..66_000).prop_map(Wrap::Huge),
    ]
    .boxed()
}

/// The vault answer `doc` (whose record is `inner`), wrapped and damaged as `w` says.
fn wrapped(inner: &Value, doc: Value, w: &Wrap) -> Vec<u8> {
    let mut bytes = match w {
        Wrap::DataDataNull => serde_json::to_vec(&json!({"data": {"data": null}})).unwrap(),
        Wrap::DataNull => serde_json::to_vec(&json!({"data": null})).unwrap(),
        Wrap::Bare => serde_json::to_vec(inner).unwrap(),
        Wrap::Array => serde_json::to_vec(&json!([doc])).unwrap(),
        Wrap::Huge(n) => {
            let mut d = doc;
            d["pad"] = json!("p".repeat(*n));
            serde_json::to_vec(&d).unwrap()
        }
        _ => serde_json::to_vec(&doc).unwrap(),
    };
    match w {
        Wrap::Flip(flips) => {
            for (at, b) in flips {
                let i = at.index(bytes.len());
                bytes[i] = *b;
            }
        }
        Wrap::Truncate(at) => {
            let keep = at.index(bytes.len() + 1);
            bytes.truncate(keep);
        }
        _ => {}
    }
    bytes
}

fn status() -> BoxedStrategy<Option<u32>> {
    prop_oneof![
        12 => Just(Some(200u32)),
        1 => Just(None),
        2 => select(&[404u32, 403, 400, 500, 503, 204, 0][..]).prop_map(Some),
        1 => any::<u32>().prop_map(Some),
    ]
    .boxed()
}

fn is_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 128
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
        && !s.bytes().all(|b| b == b'.')
}

fn check_creds(c: &Credentials) -> TestCaseResult {
    let akid = &c.access_key_id;
    prop_assert!(
        (16..=128).contains(&akid.len())
            && akid
                .bytes()
                .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit()),
        "access key id {:?}",
        akid
    );
    let printable = |s: &str, max: usize| {
        !s.is_empty() && s.len() <= max && s.bytes().all(|b| (0x21..=0x7e).contains(&b))
    };
    prop_assert!(printable(&c.secret_access_key, 128), "bad secret accepted");
    if let Some(t) = &c.session_token {
        prop_assert!(printable(t, 8192), "bad session token accepted");
    }
    Ok(())
}

fn check_policy(p: &Policy) -> TestCaseResult {
    for l in [&p.services, &p.regions].into_iter().flatten() {
        prop_assert!(
            l.iter().all(|x| config::is_signing_name_or_region(x)),
            "{:?}",
            l
        );
    }
    if let Some(m) = &p.methods {
        prop_assert!(
            m.iter()
                .all(|x| !x.is_empty() && x.bytes().all(|b| b.is_ascii_uppercase())),
            "{:?}",
            m
        );
    }
    for c in p.source_cidrs.iter().flatten() {
        let max = if c.addr.is_ipv4() { 32 } else { 128 };
        prop_assert!(c.prefix <= max);
    }
    Ok(())
}

fn check_vault_error(e: &VaultError) -> TestCaseResult {
    let text = format!("{e:?}");
    prop_assert!(
        !text.contains(SECRET_MARK) && !text.contains(TOKEN_MARK),
        "{}",
        text
    );
    Ok(())
}

#[test]
fn vault_grant_responses() {
    let reach = Reach::default();
    let strategy = (status(), grant_fields(), wrap());
    run(
        "vault_grant_responses",
        3000,
        0x5167_0004,
        strategy,
        |(status, fields, w)| {
            reach.case();
            let data = Value::Object(fields.into_iter().collect::<Map<_, _>>());
            let doc = json!({"request_id": "r", "lease_id": "",
            "data": {"data": data, "metadata": {"version": 3}}});
            let body = wrapped(&data, doc, &w);
            let r = vault::parse_grant_response(status, &body);
            prop_assert!(
                !format!("{r:?}").contains(SECRET_MARK),
                "Debug leaks the secret"
            );
            prop_assert!(
                !format!("{r:?}").contains(TOKEN_MARK),
                "Debug leaks the token"
            );
            match &r {
                Ok(GrantRecord { source, policy }) => {
                    check_policy(policy)?;
                    match source {
                        Source::Static(c) => {
                            reach.hit("ok:static");
                            check_creds(c)?;
                        }
                        Source::Dynamic(d) => {
                            reach.hit("ok:dynamic");
                            prop_assert!(is_name(&d.role), "role {:?}", d.role);
                            prop_assert!(d.mount.split('/').all(is_name), "mount {:?}", d.mount);
                            let path = vault::dynamic_path(d);
                            prop_assert!(
                                !path.contains('?')
                                    && !path.contains('%')
                                    && !path.split('/').any(|seg| seg == "." || seg == ".."),
                                "{}",
                                path
                            );
                        }
                    }
                    prop_assert_eq!(status, Some(200));
                }
                Err(e) => {
                    reach.hit(match e {
                        VaultError::NotFound => "err:NotFound",
                        VaultError::Unavailable(_) => "err:Unavailable",
                        VaultError::BadRecord(_) => "err:BadRecord",
                    });
                    check_vault_error(e)?;
                }
            }
            Ok(())
        },
    );
    reach.report("vault_grant_responses");
    assert!(reach.get("ok:static") > 100 && reach.get("ok:dynamic") > 50);
}

#[test]
fn vault_grant_round_trip() {
    let strategy = (
        "[A-Z0-9]{16,128}",
        "[!-~]{1,122}",
        prop::option::of("[!-~]{0,200}"),
    );
    run(
        "vault_grant_round_trip",
        1000,
        0x5167_0005,
        strategy,
        |(akid, secret, token)| {
            let secret = format!("{SECRET_MARK}{secret}");
            let token = token.map(|t| format!("{TOKEN_MARK}{t}"));
            let body = json!({"data": {"data": {
            "access_key_id": akid, "secret_access_key": secret, "session_token": token}}});
            let r = vault::parse_grant_response(Some(200), &serde_json::to_vec(&body).unwrap());
            let want = GrantRecord {
                source: Source::Static(Credentials {
                    access_key_id: akid,
                    secret_access_key: secret,
                    session_token: token,
                }),
                policy: Policy::default(),
            };
            prop_assert_eq!(r, Ok(want));
            Ok(())
        },
    );
}

#[test]
fn vault_dynamic_responses() {
    let reach = Reach::default();
    let entry = prop_oneof![
        3 => field(akid_any()).prop_map(|v| ("access_key".to_string(), v)),
        3 => field(secret_any()).prop_map(|v| ("secret_key".to_string(), v)),
        2 => field(token_any()).prop_map(|v| ("session_token".to_string(), v)),
        1 => ("[a-z_]{1,12}", arb_json(VAULT_KEYS)),
    ];
    let lease = prop_oneof![
        4 => any::<u64>().prop_map(Value::from),
        1 => leaf_json(),
    ];
    let base = ("[A-Z0-9]{16,24}", "[!-~]{1,40}").prop_map(|(a, s)| {
        vec![
            ("access_key".to_string(), json!(a)),
            ("secret_key".to_string(), json!(format!("{SECRET_MARK}{s}"))),
        ]
    });
    let strategy = (
        status(),
        prop::option::weighted(0.8, base),
        vec(entry, 0..4),
        lease,
        wrap(),
        now(),
    );
    run(
        "vault_dynamic_responses",
        2500,
        0x5167_0006,
        strategy,
        |(status, base, extra, lease, w, now)| {
            reach.case();
            let mut data: Map<String, Value> = base.unwrap_or_default().into_iter().collect();
            data.extend(extra);
            let data = Value::Object(data);
            let doc = json!({"request_id": "r", "lease_id": "aws/creds/r/x", "renewable": true,
            "lease_duration": lease, "data": data});
            let body = wrapped(&data, doc, &w);
            let r = vault::parse_dynamic_response(status, &body);
            prop_assert!(
                !format!("{r:?}").contains(SECRET_MARK),
                "Debug leaks the secret"
            );
            prop_assert!(
                !format!("{r:?}").contains(TOKEN_MARK),
                "Debug leaks the token"
            );
            match r {
                Ok((c, lease)) => {
                    reach.hit("ok");
                    check_creds(&c)?;
                    prop_assert_eq!(status, Some(200));
                    // The cache entry of that key, at any time and with any lease: no overflow.
                    let source = vault::DynamicSource {
                        mount: "aws".into(),
                        role: "r".into(),
                        kind: DynamicKind::Creds,
                    };
                    let g = CachedGrant::new_dynamic(
                        c,
                        Policy::default(),
                        source,
                        lease,
                        now,
                        &CONFIGS[0].cache,
                    );
                    prop_assert!(g.usable_until >= now);
                    prop_assert_eq!(shared_grant::decode(&shared_grant::encode(&g)), Some(g));
                }
                Err(e) => {
                    reach.hit(match e {
                        VaultError::NotFound => "err:NotFound",
                        VaultError::Unavailable(_) => "err:Unavailable",
                        VaultError::BadRecord(_) => "err:BadRecord",
                    });
                    check_vault_error(&e)?;
                }
            }
            Ok(())
        },
    );
    reach.report("vault_dynamic_responses");
    assert!(reach.get("ok") > 200);
}

#[test]
fn vault_arbitrary_bytes() {
    let strategy = (
        status(),
        prop_oneof![
            vec(any::<u8>(), 0..200),
            arb_json(VAULT_KEYS).prop_map(|v| serde_json::to_vec(&v).unwrap())
        ],
    );
    run(
        "vault_arbitrary_bytes",
        2000,
        0x5167_0007,
        strategy,
        |(status, body)| {
            if let Ok(r) = vault::parse_grant_response(status, &body) {
                check_policy(&r.policy)?;
                if let Source::Static(c) = &r.source {
                    check_creds(c)?;
                }
            }
            if let Ok((c, _)) = vault::parse_dynamic_response(status, &body) {
                check_creds(&c)?;
            }
            // The shared-data cache codec never panics on foreign bytes either.
            let _ = shared_grant::decode(&body);
            Ok(())
        },
    );
}

// -------------------------------------------------------------------------------------------
// Configuration
// -------------------------------------------------------------------------------------------

const TOP_KEYS: &[&str] = &[
    "grant_header",
    "mode",
    "vault",
    "cache",
    "s3_payload",
    "max_body_bytes",
    "host_overrides",
    "request_overrides",
    "upstream_filter",
];

const CONFIG_KEYS: &[&str] = &[
    "grant_header",
    "mode",
    "vault",
    "cache",
    "s3_payload",
    "max_body_bytes",
    "host_overrides",
    "request_overrides",
    "upstream_filter",
    "token",
    "token_env",
    "cluster",
    "authority",
    "kv_mount",
    "path_prefix",
    "timeout_ms",
    "ttl_seconds",
    "max_stale_seconds",
    "negative_ttl_seconds",
    "refresh_ahead_seconds",
    "min_refetch_seconds",
    "service",
    "region",
    "api.example.com",
];

fn opt<T: Debug + Clone + 'static>(
    s: impl Strategy<Value = T> + 'static,
) -> BoxedStrategy<Option<T>> {
    prop::option::weighted(0.4, s).boxed()
}

fn uint_json() -> BoxedStrategy<Value> {
    prop_oneof![
        8 => (0u64..4000).prop_map(Value::from),
        1 => any::<u64>().prop_map(Value::from),
        1 => leaf_json(),
    ]
    .boxed()
}

/// A string from `good` (valid values) most of the time, else from `bad`, or anything.
fn str_json(good: &'static [&'static str], bad: &'static [&'static str]) -> BoxedStrategy<Value> {
    let bad = if bad.is_empty() { good } else { bad };
    prop_oneof![
        12 => select(good).prop_map(Value::from),
        2 => select(bad).prop_map(Value::from),
        1 => ".{0,12}".prop_map(Value::from),
        1 => leaf_json(),
    ]
    .boxed()
}

fn obj(entries: Vec<Option<(&'static str, Value)>>, extra: Option<(String, Value)>) -> Value {
    let mut m: Map<String, Value> = entries
        .into_iter()
        .flatten()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
    if let Some((k, v)) = extra {
        m.insert(k, v);
    }
    Value::Object(m)
}

fn config_value() -> BoxedStrategy<Value> {
    let any_json = || arb_json(CONFIG_KEYS);
    let token = prop_oneof![
        4 => "[!-~]{1,20}".prop_map(|t| Value::from(format!("{TOKEN_MARK}{t}"))),
        1 => "[ -~]{0,6}".prop_map(|t| Value::from(format!("{TOKEN_MARK}{t}"))),
        1 => leaf_json(),
    ];
    let vault = prop_oneof![
        6 => (
            prop::option::weighted(0.85, token),
            prop::option::weighted(0.1, str_json(&["VAULT_TOKEN"], &["a-b", ""])),
            opt(str_json(&["vault"], &[""])),
            opt(str_json(&["vault.local"], &[])),
            opt(str_json(&["secret", "/kv/"], &["a/../b", ""])),
            opt(str_json(&["aws/grants/", "/x"], &["../y", "a b"])),
            opt(uint_json()),
            prop::option::weighted(0.05, ("[a-z_]{1,8}", any_json())),
        )
            .prop_map(|(t, e, c, a, k, p, to, x)| {
                obj(
                    vec![
                        t.map(|v| ("token", v)),
                        e.map(|v| ("token_env", v)),
                        c.map(|v| ("cluster", v)),
                        a.map(|v| ("authority", v)),
                        k.map(|v| ("kv_mount", v)),
                        p.map(|v| ("path_prefix", v)),
                        to.map(|v| ("timeout_ms", v)),
                    ],
                    x,
                )
            }),
        1 => any_json(),
    ];
    let cache = prop_oneof![
        4 => (opt(uint_json()), opt(uint_json()), opt(uint_json()), opt(uint_json()), opt(uint_json()))
            .prop_map(|(a, b, c, d, e)| obj(
                vec![
                    a.map(|v| ("ttl_seconds", v)),
                    b.map(|v| ("max_stale_seconds", v)),
                    c.map(|v| ("negative_ttl_seconds", v)),
                    d.map(|v| ("refresh_ahead_seconds", v)),
                    e.map(|v| ("min_refetch_seconds", v)),
                ],
                None,
            )),
        1 => any_json(),
    ];
    let host_override = (
        prop_oneof![
            3 => select(&["api.example.com", "a.b", "minio.local"][..]).prop_map(String::from),
            1 => ".{0,12}",
        ],
        prop_oneof![
            4 => (opt(str_json(&["execute-api", "s3"], &["S3"])), opt(str_json(&["eu-west-1", "r"], &[])))
                .prop_map(|(s, r)| obj(vec![s.map(|v| ("service", v)), r.map(|v| ("region", v))], None)),
            1 => any_json(),
        ],
    );
    let host_overrides = prop_oneof![
        4 => vec(host_override, 0..3).prop_map(|v| Value::Object(v.into_iter().collect())),
        1 => any_json(),
    ];
    let bool_json = || prop_oneof![3 => any::<bool>().prop_map(Value::from), 1 => leaf_json()];
    prop_oneof![
        8 => (
            opt(str_json(&["x-grant-id", "content-length"], &["X-Grant", "x grant", ""])),
            opt(str_json(&["sign", "precheck"], &["both"])),
            prop::option::weighted(0.85, vault),
            opt(cache),
            opt(str_json(&["signed", "unsigned"], &["maybe"])),
            opt(prop_oneof![uint_json(), Just(Value::from(1u64 << 32)), Just(Value::from((1u64 << 32) + 1))]),
            opt(host_overrides),
            opt(bool_json()),
            opt(bool_json()),
            prop::option::weighted(0.05, (".{1,10}", any_json())),
        )
            .prop_map(|(g, m, v, c, s, mb, ho, ro, uf, x)| {
                obj(
                    vec![
                        g.map(|v| ("grant_header", v)),
                        m.map(|v| ("mode", v)),
                        v.map(|v| ("vault", v)),
                        c.map(|v| ("cache", v)),
                        s.map(|v| ("s3_payload", v)),
                        mb.map(|v| ("max_body_bytes", v)),
                        ho.map(|v| ("host_overrides", v)),
                        ro.map(|v| ("request_overrides", v)),
                        uf.map(|v| ("upstream_filter", v)),
                    ],
                    x,
                )
            }),
        1 => any_json(),
    ].boxed()
}

fn check_config(input: &[u8], root: Option<&Value>, reach: &Reach) -> TestCaseResult {
    reach.case();
    match Config::parse(input) {
        Ok(c) => {
            reach.hit("ok");
            prop_assert!(!c.grant_header.is_empty());
            prop_assert!(c
                .grant_header
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_'));
            prop_assert!((1..=60_000).contains(&c.vault.timeout_ms));
            prop_assert!(!c.vault.kv_mount.is_empty());
            prop_assert!(!c.vault.kv_mount.split('/').any(|s| s == ".." || s == "."));
            prop_assert!(!c.vault.path_prefix.split('/').any(|s| s == ".."));
            prop_assert!(c.vault.token.bytes().all(|b| (0x21..=0x7e).contains(&b)));
            prop_assert!(c.cache.refresh_ahead_seconds < c.cache.ttl_seconds);
            prop_assert!(c.max_body_bytes <= 1 << 32);
            for (host, o) in &c.host_overrides {
                prop_assert!(!host.is_empty() && !host.contains(':'));
                prop_assert!(
                    config::is_signing_name_or_region(&o.service)
                        && config::is_signing_name_or_region(&o.region)
                );
            }
            prop_assert!(
                !format!("{c:?}").contains(TOKEN_MARK),
                "Debug shows the token"
            );
        }
        Err(e) => {
            reach.hit("err");
            let named = e.key == "(root)"
                || TOP_KEYS
                    .iter()
                    .any(|k| e.key == *k || e.key.starts_with(&format!("{k}.")))
                || root
                    .and_then(Value::as_object)
                    .is_some_and(|m| m.contains_key(&e.key));
            prop_assert!(named, "error names no key of the input: {:?}", e);
            prop_assert!(e.to_string().contains(&e.key));
            prop_assert!(!e.problem.is_empty());
            prop_assert!(
                !e.to_string().contains(TOKEN_MARK),
                "error shows the token: {}",
                e
            );
        }
    }
    Ok(())
}

#[test]
fn config_parse_json() {
    let reach = Reach::default();
    run(
        "config_parse_json",
        3000,
        0x5167_0008,
        config_value(),
        |v| check_config(&serde_json::to_vec(&v).unwrap(), Some(&v), &reach),
    );
    reach.report("config_parse_json");
    assert!(
        reach.get("ok") > 100,
        "the config generator never builds a valid configuration"
    );
}

#[test]
fn config_parse_bytes() {
    let reach = Reach::default();
    let strategy = prop_oneof![
        vec(any::<u8>(), 0..64),
        (config_value(), vec((any::<Index>(), any::<u8>()), 1..3)).prop_map(|(v, flips)| {
            let mut b = serde_json::to_vec(&v).unwrap();
            for (at, x) in flips {
                if !b.is_empty() {
                    let i = at.index(b.len());
                    b[i] = x;
                }
            }
            b
        }),
    ];
    run("config_parse_bytes", 2000, 0x5167_0009, strategy, |b| {
        let root: Option<Value> = serde_json::from_slice(&b).ok();
        check_config(&b, root.as_ref(), &reach)
    });
    reach.report("config_parse_bytes");
}

// -------------------------------------------------------------------------------------------
// AWS answers, authorities
// -------------------------------------------------------------------------------------------

#[test]
fn key_verdicts() {
    let error_type = prop_oneof![
        2 => Just(None),
        3 => (
            "[a-z.]{0,12}#|",
            select(&CREDENTIAL_ERRORS[..]),
            prop_oneof![Just(String::new()), ":http://internal.amazon.com/coral/[a-z/]{0,10}"],
            prop_oneof![Just(String::new()), Just(" ".to_string())],
        )
            .prop_map(|(p, c, s, ws)| Some(format!("{ws}{p}{c}{s}"))),
        2 => ".{0,40}".prop_map(Some),
        1 => "[ -~]{0,40}".prop_map(Some),
    ];
    let status = prop_oneof![3 => select(&[400u32, 403][..]), 1 => any::<u32>(), 1 => 100u32..600];
    let headers = vec(
        (
            prop_oneof![
                select(&["x-amzn-requestid", "x-amz-request-id", "x-other"][..])
                    .prop_map(String::from),
                ".{0,10}"
            ],
            vec(any::<u8>(), 0..20),
        ),
        0..4,
    );
    run(
        "key_verdicts",
        3000,
        0x5167_000c,
        (status, error_type, headers),
        |(status, t, h)| {
            let v = aws_response::key_verdict(status, t.as_deref());
            match v {
                KeyVerdict::Accepted => {}
                KeyVerdict::Refused(code) => {
                    prop_assert!(status == 400 || status == 403);
                    prop_assert!(CREDENTIAL_ERRORS.contains(&code));
                    prop_assert!(t.as_deref().is_some_and(|t| t.contains(code)));
                }
                KeyVerdict::MaybeRefused => prop_assert!(status == 403 && t.is_none()),
            }
            if status != 400 && status != 403 {
                prop_assert_eq!(v, KeyVerdict::Accepted);
            }
            let _ = aws_response::request_id(&h);
            Ok(())
        },
    );
}

#[test]
fn authorities() {
    let strategy = (
        prop_oneof![
            3 => select(REAL_VALUES).prop_map(String::from),
            2 => (select(REAL_VALUES), ".{0,3}", any::<Index>()).prop_map(|(v, ins, at)| {
                let mut s = v.to_string();
                let mut i = at.index(s.len() + 1);
                while !s.is_char_boundary(i) {
                    i -= 1;
                }
                s.insert_str(i, &ins);
                s
            }),
            2 => "[a-z0-9.-]{0,30}(\\.amazonaws\\.com|\\.api\\.aws|\\.amazonaws\\.com\\.cn|\\.on\\.aws)(:[0-9]{0,6})?",
            1 => ".{0,30}",
        ],
        select(&["http", "https", "", "HTTP"][..]),
    );
    run("authorities", 3000, 0x5167_000d, strategy, |(a, scheme)| {
        if let Ok(e) = aws_host::parse_authority(&a, scheme) {
            let bare = e.host.split(':').next().unwrap_or("");
            prop_assert!(aws_host::has_aws_suffix(bare), "{:?}", e);
            prop_assert!(a.to_ascii_lowercase().starts_with(bare));
            prop_assert!(!e.signing_name.is_empty() && !e.region.is_empty());
        }
        let _ = aws_host::split_authority(&a, scheme);
        Ok(())
    });
}
