//! SigV4 signing cost on the Envoy hot path.
//!
//! * `sign/get_6_headers_warm`: a typical GET with 6 signed headers and a query, signing key
//!   from a warm `SigningKeyCache` (cache lookup + canonical request + its SHA-256 + one HMAC,
//!   whose key blocks the cached `SigningKey` has already absorbed).
//! * `sign/post_64k_with_body_hash`: a 64 KiB POST, including the SHA-256 of the body.
//! * `sign/signing_key_cold`: deriving a signing key (four chained HMACs), as on a cache miss.
//! * `request/get_headers_to_edits`: everything the filter does for a GET between reading
//!   Envoy's header map and writing the signed headers, with the grant cached: the map's
//!   decoding, the plan (host, grant, payload hash), the signature, the header edits and the
//!   audit decision for the filter state. The host calls themselves are not in it.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use grant_sigv4_core::config::Config;
use grant_sigv4_core::request::{plan_request, sign as sign_plan};
use grant_sigv4_core::sigv4::{
    derive_signing_key, format_amz_date, sha256_hex, sign, SigningInput, SigningKeyCache, UriRules,
    EMPTY_SHA256,
};
use std::hint::black_box;

const SECRET: &str = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";
const AKID: &str = "AKIDEXAMPLE";

fn benches(c: &mut Criterion) {
    let amz_date = format_amz_date(1_440_938_160);
    let mut group = c.benchmark_group("sign");

    // A typical API call: 6 signed headers, a short query.
    let get_headers: [(&str, &[u8]); 6] = [
        ("host", b"dynamodb.us-east-1.amazonaws.com"),
        ("x-amz-date", amz_date.as_bytes()),
        ("x-amz-security-token", b"IQoJb3JpZ2luX2VjEPT//////////wEaCXVzLWVhc3QtMSJHMEUCIQD6EXAMPLETOKENVALUEFORBENCHMARKS"),
        ("content-type", b"application/x-amz-json-1.0"),
        ("x-amz-target", b"DynamoDB_20120810.GetItem"),
        ("accept", b"application/json,  text/plain"),
    ];
    let mut cache = SigningKeyCache::new();
    let _ = cache.get(SECRET, &amz_date[..8], "us-east-1", "dynamodb");
    group.bench_function("get_6_headers_warm", |b| {
        b.iter(|| {
            let key = cache.get(
                black_box(SECRET),
                black_box(&amz_date[..8]),
                "us-east-1",
                "dynamodb",
            );
            let input = SigningInput {
                method: "GET",
                path_and_query: black_box(
                    "/tables/my-table/items/some%20key?consistent=true&limit=10",
                ),
                headers: &get_headers,
                payload_hash: EMPTY_SHA256,
                amz_date: &amz_date,
                region: "us-east-1",
                service: "dynamodb",
                uri_rules: UriRules::Default,
            };
            black_box(sign(&input, AKID, &key).unwrap())
        })
    });

    // A 64 KiB upload whose body is hashed and signed.
    let body: Vec<u8> = (0..64 * 1024u32).map(|i| (i * 31 % 251) as u8).collect();
    let mut cache = SigningKeyCache::new();
    group.throughput(Throughput::Bytes(body.len() as u64));
    group.bench_function("post_64k_with_body_hash", |b| {
        b.iter(|| {
            let payload_hash = sha256_hex(black_box(&body));
            let length = "65536";
            let headers: [(&str, &[u8]); 5] = [
                ("host", b"my-bucket.s3.us-east-1.amazonaws.com"),
                ("x-amz-date", amz_date.as_bytes()),
                ("x-amz-content-sha256", payload_hash.as_bytes()),
                ("content-type", b"application/octet-stream"),
                ("content-length", length.as_bytes()),
            ];
            let key = cache.get(SECRET, &amz_date[..8], "us-east-1", "s3");
            let input = SigningInput {
                method: "PUT",
                path_and_query: "/photos/2024/cat%20picture.jpg",
                headers: &headers,
                payload_hash: &payload_hash,
                amz_date: &amz_date,
                region: "us-east-1",
                service: "s3",
                uri_rules: UriRules::S3,
            };
            black_box(sign(&input, AKID, &key).unwrap())
        })
    });

    group.throughput(Throughput::Elements(1));
    group.bench_function("signing_key_cold", |b| {
        b.iter(|| {
            black_box(derive_signing_key(
                black_box(SECRET),
                black_box(&amz_date[..8]),
                "us-east-1",
                "dynamodb",
            ))
        })
    });
    group.finish();

    // The GET of `make bench`, as Envoy hands it to the filter.
    let cfg = Config::parse(br#"{"vault": {"token": "t"}}"#).unwrap();
    let creds = grant_sigv4_core::vault::Credentials {
        access_key_id: AKID.to_string(),
        secret_access_key: SECRET.to_string(),
        session_token: None,
    };
    let headers: [(&str, &[u8]); 7] = [
        (":authority", b"sts.us-east-1.amazonaws.com"),
        (":path", b"/?Action=GetCallerIdentity&Version=2011-06-15"),
        (":method", b"GET"),
        (":scheme", b"http"),
        ("x-grant-id", b"bench-grant"),
        ("x-forwarded-proto", b"http"),
        ("x-request-id", b"5b1c3c4e-9a51-4c39-9d1f-1f0e2c1f7a11"),
    ];
    let mut keys = SigningKeyCache::new();
    let now = 1_440_938_160;
    let mut group = c.benchmark_group("request");
    group.bench_function("get_headers_to_edits", |b| {
        b.iter(|| {
            let plan = plan_request(&cfg, black_box(&headers), true).unwrap();
            let edits = sign_plan(&plan, &creds, now, &mut keys).unwrap();
            black_box((edits, plan.decision("signed", None).to_json()))
        })
    });
    group.finish();
}

criterion_group!(sign_benches, benches);
criterion_main!(sign_benches);
