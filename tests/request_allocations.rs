//! Heap allocations of the core's per-request path for a cached grant: planning a request
//! from its headers (authority memo warm), signing it (signing key cached) into the edits
//! of the previous request, as the engine does, and the filter state's decision, for the GET and the S3 PUT of the benchmark. Counted by a global
//! allocator that counts on the calling thread only; `cargo test --test request_allocations
//! -- --nocapture` prints the counts. The bounds are the counts measured: a change that adds
//! an allocation to this path fails here and says how many there are.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use grant_sigv4_core::aws_host::AuthorityMemo;
use grant_sigv4_core::config::Config;
use grant_sigv4_core::request::{plan_request_memoized, sign_into, Edits};
use grant_sigv4_core::sigv4::SigningKeyCache;
use grant_sigv4_core::vault::Credentials;
use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

struct Counting;

thread_local! {
    static ALLOCATIONS: Cell<usize> = const { Cell::new(0) };
}

// SAFETY: every call is forwarded unchanged to the system allocator; the thread-local
// counter is a const-initialized Cell, whose access does not allocate.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let _ = ALLOCATIONS.try_with(|c| c.set(c.get() + 1));
        // SAFETY: the caller's layout is passed on as it is.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` was allocated by `System` with `layout`.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let _ = ALLOCATIONS.try_with(|c| c.set(c.get() + 1));
        // SAFETY: `ptr` was allocated by `System` with `layout`.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn allocations() -> usize {
    ALLOCATIONS.with(Cell::get)
}

const GET: [(&str, &[u8]); 7] = [
    (":authority", b"sts.us-east-1.amazonaws.com"),
    (":path", b"/?Action=GetCallerIdentity&Version=2011-06-15"),
    (":method", b"GET"),
    (":scheme", b"http"),
    ("x-grant-id", b"bench-grant"),
    ("x-forwarded-proto", b"http"),
    ("x-request-id", b"5b1c3c4e-9a51-4c39-9d1f-1f0e2c1f7a11"),
];

const PUT: [(&str, &[u8]); 9] = [
    (":authority", b"bench-bucket.s3.us-east-1.amazonaws.com"),
    (":path", b"/bench-key"),
    (":method", b"PUT"),
    (":scheme", b"http"),
    ("content-length", b"65536"),
    ("content-type", b"application/octet-stream"),
    ("x-grant-id", b"bench-grant"),
    ("x-forwarded-proto", b"http"),
    ("x-request-id", b"5b1c3c4e-9a51-4c39-9d1f-1f0e2c1f7a11"),
];

/// Allocations of one warm request: plan, sign, decision.
fn per_request(headers: &[(&str, &[u8])], end_of_stream: bool) -> usize {
    let cfg = Config::parse(br#"{"vault": {"token": "t"}}"#).unwrap();
    let creds = Credentials {
        access_key_id: "AKIDEXAMPLE".to_string(),
        secret_access_key: "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY".to_string(),
        session_token: None,
    };
    let mut memo = AuthorityMemo::new();
    let mut keys = SigningKeyCache::new();
    let now = 1_440_938_160;
    let mut edits = Edits::default();
    let mut counts = Vec::with_capacity(3);
    for _ in 0..3 {
        let before = allocations();
        let plan = plan_request_memoized(&cfg, &mut memo, headers, end_of_stream).unwrap();
        sign_into(&plan, &creds, now, &mut keys, &mut edits).unwrap();
        let decision = plan.decision("signed", None).to_json();
        let after = allocations();
        assert!(!edits.set.is_empty() && !decision.is_empty());
        drop((plan, decision));
        counts.push(after - before);
    }
    // The first request fills the memo and the key cache; the others are the warm path.
    assert_eq!(counts[1], counts[2], "{counts:?}");
    counts[2]
}

#[test]
fn a_cached_get_allocates_at_most() {
    const BOUND: usize = 10;
    let n = per_request(&GET, true);
    println!("GET: {n} allocations per request");
    assert!(n <= BOUND, "{n}");
}

#[test]
fn a_cached_s3_put_allocates_at_most() {
    const BOUND: usize = 12;
    let n = per_request(&PUT, false);
    println!("PUT: {n} allocations per request");
    assert!(n <= BOUND, "{n}");
}
