//! Tests only: the exported hooks driven natively as Envoy drives them (`fake_envoy` plays
//! Envoy), with hostile inputs and events out of order, from a seeded generator so that every
//! run sees the same cases (a failure names its seed and the events that led to it).
//!
//! Each case loads a plugin configuration (valid variants, or malformed bytes), makes up to
//! four streams and runs a random sequence of events on them: request headers (realistic AWS
//! requests with random mutations: non-UTF-8 and huge names and values, empty ones,
//! duplicated or missing pseudo-headers, junk `content-length`), body chunks of random sizes
//! around `max_body_bytes`, trailers, vault answers (good records, random status, truncated
//! or huge or junk bodies, failed callouts, unknown callout ids, an answer on another
//! stream), scheduler runs, response headers (also before any request headers, and from a
//! local reply at once, re-entrantly), stream completion (twice), destruction mid-request.
//! Then Envoy finishes every request (the rest of its body, every vault callout answered well;
//! a request still waiting then is given up to 10 s for the module's ticker to wake it) and
//! destroys everything.
//!
//! Asserted for every case: no panic at all (none reaches `catch_unwind`); no call on a
//! destroyed stream or deleted scheduler; every request let through carries a SigV4
//! signature, and no request is let through after, or answered twice or after being let
//! through; every local reply is `{"error", "message"}` JSON with a 4xx/5xx status; every
//! request fully received and not completed early ends let through or answered; no secret of
//! the configuration or the vault (token, secret id, AWS secret key) appears in a request
//! header the module wrote, a reply, a filter state, a metric name or a log line.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use crate::fake_envoy::{self, envoy_chunks, envoy_headers, Callout, Pair};
use crate::hooks::*;
use std::cell::Cell;
use std::ffi::c_void;
use std::sync::Once;

/// Every secret of a case contains this (clients never send it).
const MARK: &[u8] = b"SECRET";
const VAULT_TOKEN: &str = "hvs.FUZZ-SECRET-token";
const LOGIN_TOKEN: &str = "hvs.LOGIN-SECRET-token";
const SECRET_ID: &str = "approle-SECRET-id";
const AWS_SECRET: &str = "wJalrXUtnFEMI/K7MDENG/SECRET/bPxRfiCYEXAMPLEKEY";

thread_local! {
    /// Panics on this thread (each test runs on its own).
    static PANICS: Cell<usize> = const { Cell::new(0) };
}

/// Count every panic (caught or not) before the default hook prints it.
fn count_panics() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let default = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            PANICS.with(|p| p.set(p.get() + 1));
            default(info);
        }));
    });
}

/// SplitMix64.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
    fn chance(&mut self, percent: u64) -> bool {
        self.next() % 100 < percent
    }
    fn pick<'a, T>(&mut self, xs: &'a [T]) -> &'a T {
        &xs[self.below(xs.len())]
    }
    fn pick_str(&mut self, xs: &[&'static str]) -> &'static str {
        xs[self.below(xs.len())]
    }
    /// Random bytes, fewer than `max`.
    fn bytes(&mut self, max: usize) -> Vec<u8> {
        let n = self.below(max);
        (0..n).map(|_| self.next() as u8).collect()
    }
}

/// A plugin configuration: valid with random options, or malformed.
fn gen_config(r: &mut Rng) -> Vec<u8> {
    let auth = match r.below(10) {
        0 => format!(
            r#""auth": {{"method": "approle", "role_id": "role-1", "secret_id": "{SECRET_ID}"}}"#
        ),
        1 => r#""auth": {"method": "proxy"}"#.to_string(),
        _ => format!(r#""token": "{VAULT_TOKEN}""#),
    };
    let mut extra = String::new();
    let max_body = *r.pick(&[0u64, 1, 64, 1000, 4096, 8_388_608]);
    extra.push_str(&format!(r#", "max_body_bytes": {max_body}"#));
    for (p, opt) in [
        (30, r#", "request_overrides": true"#),
        (30, r#", "grant_from_access_key_id": true"#),
        (20, r#", "s3_payload": "signed""#),
        (40, r#", "audit": {"log": true}"#),
        (20, r#", "upstream_filter": true"#),
        (
            20,
            r#", "host_overrides": {"api.example.test": {"service": "execute-api", "region": "eu-west-1"}}"#,
        ),
    ] {
        if r.chance(p) {
            extra.push_str(opt);
        }
    }
    let good = format!(
        r#"{{"vault": {{{auth}, "timeout_ms": 500}}, "cache": {{"ttl_seconds": {}, "max_stale_seconds": 60,
        "negative_ttl_seconds": 1, "refresh_ahead_seconds": 1}},
        "new_grant_fetches": {{"per_second": 1000000, "burst": 1000000}}{extra}}}"#,
        r.pick(&[2, 300])
    );
    match r.below(20) {
        0 => r.bytes(64),
        1 => {
            let cut = r.below(good.len());
            good.as_bytes()[..cut].to_vec()
        }
        2 => br#"{"vault": {"token": 7}, "max_body_bytes": "many"}"#.to_vec(),
        3 => br#"{"vault": {"auth": {"method": "approle"}}}"#.to_vec(),
        4 => Vec::new(),
        _ => good.into_bytes(),
    }
}

/// A grant record answer with `akid` (the AWS secret key holds the mark).
fn good_record() -> Vec<u8> {
    format!(
        r#"{{"data":{{"data":{{"access_key_id":"AKIAFUZZFUZZFUZZFUZZ","secret_access_key":"{AWS_SECRET}"}}}}}}"#
    )
    .into_bytes()
}

/// The vault's answer to `c`: well-formed for its path, or (when `hostile`) anything.
fn vault_answer(r: &mut Rng, c: &Callout, hostile: bool) -> (u32, Vec<Pair>, Vec<Vec<u8>>) {
    if c.cluster != b"vault" {
        panic!(
            "a callout to cluster {:?}",
            String::from_utf8_lossy(&c.cluster)
        );
    }
    let path = c.header(b":path").unwrap_or_default().to_vec();
    let path = String::from_utf8_lossy(&path);
    let good = if path.contains("lookup-self") {
        br#"{"data": {"ttl": 0, "renewable": false, "policies": ["p"]}}"#.to_vec()
    } else if path.contains("renew-self") || path.contains("/login") {
        format!(
            r#"{{"auth": {{"client_token": "{LOGIN_TOKEN}", "lease_duration": 3600, "renewable": true, "policies": ["p"]}}}}"#
        )
        .into_bytes()
    } else {
        good_record()
    };
    let ok = |body: Vec<u8>| (0, vec![(b":status".to_vec(), b"200".to_vec())], vec![body]);
    // The filter's own token calls fail less often: each failure costs the case a second or
    // two of real time (the requests then wait for the login's retry at a tick).
    let auth = path.contains("/auth/");
    if !hostile || r.chance(40) || (auth && r.chance(80)) {
        return ok(good);
    }
    let status = r
        .pick(&[
            b"200".to_vec(),
            b"404".to_vec(),
            b"403".to_vec(),
            b"500".to_vec(),
            b"503".to_vec(),
            b"abc".to_vec(),
            b"99999999999".to_vec(),
        ])
        .clone();
    let body: Vec<Vec<u8>> = match r.below(7) {
        0 => {
            let cut = r.below(good.len());
            vec![good[..cut].to_vec()]
        }
        1 => vec![vec![b'{'; 40_000], vec![b'['; 40_000]],
        2 => vec![r.bytes(300)],
        3 => vec![br#"{"data":{"data":{"access_key_id":7,"secret_access_key":null}}}"#.to_vec()],
        4 => good.chunks(1 + r.below(16)).map(<[u8]>::to_vec).collect(),
        5 => Vec::new(),
        _ => vec![br#"{"errors":["permission denied"]}"#.to_vec()],
    };
    let result = if r.chance(15) {
        1 + r.below(2) as u32
    } else {
        0
    };
    let mut headers = vec![(b":status".to_vec(), status)];
    if r.chance(20) {
        headers.push((b":status".to_vec(), b"200".to_vec()));
    }
    (result, headers, body)
}

const AUTHORITIES: &[&str] = &[
    "dynamodb.us-east-1.amazonaws.com",
    "s3.us-west-2.amazonaws.com",
    "bucket.s3.eu-west-1.amazonaws.com",
    "sts.amazonaws.com",
    "lambda.eu-central-1.amazonaws.com:443",
    "sqs.ap-southeast-2.amazonaws.com",
    "api.example.test",
    "example.com",
    "",
    "DYNAMODB.US-EAST-1.AMAZONAWS.COM",
];

/// Request headers: a realistic AWS request, then random mutations. Returns whether the
/// headers end the request.
fn gen_headers(r: &mut Rng, body_len: usize) -> Vec<Pair> {
    let method = r.pick(&["GET", "PUT", "POST", "DELETE", "HEAD"]);
    let path = r.pick(&[
        "/",
        "/bucket/key.txt",
        "/?Action=GetCallerIdentity&Version=2011-06-15",
        "/2015-03-31/functions/f/invocations",
        "//a/../b/%2F?x=1&x=2",
    ]);
    let mut h: Vec<Pair> = vec![
        (s(":method"), s(method)),
        (s(":path"), s(path)),
        (s(":authority"), s(r.pick_str(AUTHORITIES))),
        (s(":scheme"), s("https")),
    ];
    if r.chance(85) {
        let grant = if r.chance(85) {
            r.pick_str(&["team-a", "team-b", "team-c"])
        } else {
            r.pick_str(&["team-c/x", "", "../etc", "a b", "x\u{7f}"])
        };
        h.push((s("x-grant-id"), s(grant)));
    }
    if r.chance(50) {
        let cl = match r.below(5) {
            0 => s("abc"),
            1 => s("99999999999999999999999"),
            2 => (body_len + r.below(3)).to_string().into_bytes(),
            _ => body_len.to_string().into_bytes(),
        };
        h.push((s("content-length"), cl));
    }
    if r.chance(20) {
        let v = *r.pick(&[
            "UNSIGNED-PAYLOAD",
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
            "STREAMING-AWS4-HMAC-SHA256-PAYLOAD",
            "zz",
        ]);
        h.push((s("x-amz-content-sha256"), s(v)));
    }
    if r.chance(15) {
        h.push((s("authorization"), s("AWS4-HMAC-SHA256 Credential=team-a/20240101/us-east-1/s3/aws4_request, SignedHeaders=host, Signature=00")));
    }
    if r.chance(10) {
        h.push((s("x-grant-service"), s(r.pick_str(&["s3", "", "dynamodb"]))));
        h.push((
            s("x-grant-region"),
            s(r.pick_str(&["us-east-1", "..", "x"])),
        ));
    }
    if r.chance(30) {
        h.push((s("content-type"), s("application/x-amz-json-1.0")));
    }
    let mutations = if r.chance(50) { 0 } else { 1 + r.below(3) };
    for _ in 0..mutations {
        match r.below(9) {
            0 if !h.is_empty() => {
                let i = r.below(h.len());
                h.remove(i);
            }
            1 => {
                let name = r.pick(&[":authority", ":path", ":method", "x-grant-id", "host"]);
                let v = r.bytes(20);
                h.push((s(name), v));
            }
            2 => {
                let n = r.below(12);
                let (k, v) = (r.bytes(n + 1), r.bytes(40));
                h.push((k, v));
            }
            3 => {
                let i = r.below(h.len());
                if let Some(e) = h.get_mut(i) {
                    e.1 = vec![b'a'; *r.pick(&[8192, 70_000])];
                }
            }
            4 => {
                let i = r.below(h.len());
                if let Some(e) = h.get_mut(i) {
                    e.1 = Vec::new();
                }
            }
            5 => h.push((Vec::new(), s("empty-name"))),
            6 => {
                let i = r.below(h.len());
                if let Some(e) = h.get_mut(i) {
                    e.1.extend_from_slice(&[0xff, 0xfe, 0, b'\r', b'\n']);
                }
            }
            7 => h.push((s("x-amz-date"), s("20200101T000000Z"))),
            _ => h.push((s("x-amz-security-token"), r.bytes(9))),
        }
    }
    h
}

fn gen_response_headers(r: &mut Rng) -> Vec<Pair> {
    let mut h = vec![(
        s(":status"),
        s(r.pick_str(&["200", "403", "400", "500", "x", ""])),
    )];
    if r.chance(30) {
        let t = r.pick(&[
            "InvalidClientTokenId",
            "UnrecognizedClientException",
            "SignatureDoesNotMatch",
            "AccessDenied",
        ]);
        h.push((s("x-amzn-errortype"), s(t)));
    }
    if r.chance(10) {
        h.clear();
    }
    h
}

fn s(x: &str) -> Vec<u8> {
    x.as_bytes().to_vec()
}

/// The driver's view of one stream.
struct S {
    envoy: usize,
    filter: *const c_void,
    headers_done: bool,
    /// The request is fully received (end of stream seen by the filter).
    ended: bool,
    completed: bool,
    destroyed: bool,
    body_len: usize,
}

impl S {
    /// Received in full and still live: it must end let through or answered.
    fn finished(&self) -> bool {
        !self.destroyed && self.headers_done && self.ended && !self.completed
    }
}

#[derive(Default, Debug)]
struct Totals {
    cases: usize,
    refused_configs: usize,
    requests: usize,
    signed: usize,
    replied: usize,
    callouts_answered: usize,
    /// Cases whose requests waited for the module's ticker.
    waited_for_ticks: usize,
    waited_ms: u128,
    events: usize,
}

struct Case {
    seed: u64,
    trace: Vec<String>,
    streams: Vec<S>,
    config_envoy: usize,
    config: *const c_void,
    next_stream: usize,
}

impl Case {
    fn fail(&self, why: &str) -> ! {
        panic!(
            "dynamic-module hook fuzz, seed {:#x}: {why}\nevents:\n  {}",
            self.seed,
            self.trace.join("\n  ")
        )
    }

    fn envoy(&self, i: usize) -> *mut c_void {
        self.streams[i].envoy as *mut c_void
    }

    fn new_stream(&mut self, r: &mut Rng) {
        self.next_stream += 1;
        let envoy = 0x7e00_0000 + self.next_stream * 16;
        fake_envoy::with(|f| {
            f.streams.insert(
                envoy,
                fake_envoy::Stream {
                    alive: true,
                    source_address: r.chance(80).then(|| b"10.1.2.3:5555".to_vec()),
                    uri_san: r
                        .chance(20)
                        .then(|| b"spiffe://cluster.local/ns/a/sa/b".to_vec()),
                    callout_fails: r.chance(5),
                    ..Default::default()
                },
            )
        });
        let filter = envoy_dynamic_module_on_http_filter_new(self.config, envoy as *mut c_void);
        fake_envoy::with(|f| {
            if let Some(s) = f.streams.get_mut(&envoy) {
                s.filter_ptr = filter as usize;
            }
        });
        self.trace.push(format!(
            "filter_new {envoy:#x} -> null={}",
            filter.is_null()
        ));
        self.streams.push(S {
            envoy,
            filter,
            headers_done: false,
            ended: false,
            completed: false,
            destroyed: false,
            body_len: 0,
        });
    }

    fn request_headers(&mut self, r: &mut Rng, i: usize) {
        let body_len = *r.pick(&[0usize, 1, 63, 64, 65, 999, 1000, 1001, 4096, 4097, 20_000]);
        let h = gen_headers(r, body_len);
        let eos = r.chance(40);
        let e = self.streams[i].envoy;
        fake_envoy::with(|f| {
            if let Some(s) = f.streams.get_mut(&e) {
                s.request_headers = h.clone();
            }
        });
        let st = envoy_dynamic_module_on_http_filter_request_headers(
            self.envoy(i),
            self.streams[i].filter,
            eos,
        );
        let names: Vec<String> = h
            .iter()
            .map(|(k, v)| format!("{}({})", String::from_utf8_lossy(k), v.len()))
            .collect();
        self.trace.push(format!(
            "request_headers {e:#x} eos={eos} [{}] -> {st}",
            names.join(" ")
        ));
        let s = &mut self.streams[i];
        s.headers_done = true;
        s.body_len = body_len;
        s.ended |= eos;
        if st == 0 {
            fake_envoy::with(|f| fake_envoy::forward(f, e, "request headers Continue"));
        }
    }

    fn request_body(&mut self, r: &mut Rng, i: usize, eos: bool) {
        let n = if r.chance(70) {
            self.streams[i].body_len / (1 + r.below(3))
        } else {
            *r.pick(&[0usize, 1, 65, 1001, 5000])
        };
        let chunk = vec![b'x'; n];
        let e = self.streams[i].envoy;
        fake_envoy::with(|f| {
            if let Some(s) = f.streams.get_mut(&e) {
                s.received = chunk;
            }
        });
        let st = envoy_dynamic_module_on_http_filter_request_body(
            self.envoy(i),
            self.streams[i].filter,
            eos,
        );
        self.trace
            .push(format!("request_body {e:#x} {n} bytes eos={eos} -> {st}"));
        self.streams[i].ended |= eos;
        fake_envoy::with(|f| {
            if let Some(s) = f.streams.get_mut(&e) {
                let received = std::mem::take(&mut s.received);
                // Stop-and-buffer and watermark: Envoy keeps the data for later.
                if st == 1 || st == 2 {
                    s.buffered.push(received);
                }
            }
            if st == 0 {
                fake_envoy::forward(f, e, "request body Continue");
            }
        });
    }

    fn request_trailers(&mut self, i: usize) {
        let e = self.streams[i].envoy;
        let st = envoy_dynamic_module_on_http_filter_request_trailers(
            self.envoy(i),
            self.streams[i].filter,
        );
        self.trace.push(format!("request_trailers {e:#x} -> {st}"));
        self.streams[i].ended = true;
        if st == 0 {
            fake_envoy::with(|f| fake_envoy::forward(f, e, "request trailers Continue"));
        }
    }

    fn response_headers(&mut self, r: &mut Rng, i: usize) {
        let e = self.streams[i].envoy;
        let h = gen_response_headers(r);
        fake_envoy::with(|f| {
            if let Some(s) = f.streams.get_mut(&e) {
                s.response_headers = h;
            }
        });
        let st = envoy_dynamic_module_on_http_filter_response_headers(
            self.envoy(i),
            self.streams[i].filter,
            r.chance(50),
        );
        self.trace.push(format!("response_headers {e:#x} -> {st}"));
    }

    fn stream_complete(&mut self, i: usize) {
        let e = self.streams[i].envoy;
        envoy_dynamic_module_on_http_filter_stream_complete(self.envoy(i), self.streams[i].filter);
        self.trace.push(format!("stream_complete {e:#x}"));
        self.streams[i].completed = true;
    }

    fn destroy(&mut self, i: usize) {
        let e = self.streams[i].envoy;
        envoy_dynamic_module_on_http_filter_destroy(self.streams[i].filter);
        self.trace.push(format!("filter_destroy {e:#x}"));
        self.streams[i].destroyed = true;
        // Envoy cancels the stream's callouts, silently, and the stream is gone.
        fake_envoy::with(|f| {
            if let Some(s) = f.streams.get_mut(&e) {
                s.alive = false;
                s.callouts.clear();
            }
        });
    }

    /// Answer one pending callout (of a stream or of the configuration); false if none.
    fn answer_one(&mut self, r: &mut Rng, hostile: bool, totals: &mut Totals) -> bool {
        let stream_callout = fake_envoy::with(|f| {
            let mut live: Vec<usize> = f
                .streams
                .iter()
                .filter(|(_, s)| s.alive && !s.callouts.is_empty())
                .map(|(k, _)| *k)
                .collect();
            live.sort_unstable();
            let k = *live.get(r.below(live.len()))?;
            let s = f.streams.get_mut(&k)?;
            let j = r.below(s.callouts.len());
            Some((k, s.callouts.remove(j)))
        });
        if let Some((e, c)) = stream_callout {
            let (result, hs, body) = vault_answer(r, &c, hostile);
            let i = self.streams.iter().position(|s| s.envoy == e).unwrap();
            // Now and then the answer arrives on another live stream, or with another id.
            let (mut target, mut id) = (i, c.id);
            if hostile && r.chance(5) {
                id = id.wrapping_add(1000);
            }
            if hostile && r.chance(5) {
                let others: Vec<usize> = (0..self.streams.len())
                    .filter(|&j| !self.streams[j].destroyed)
                    .collect();
                target = *r.pick(&others);
            }
            if (target, id) != (i, c.id) {
                // A stray answer; the real one still comes later.
                fake_envoy::with(|f| {
                    if let Some(s) = f.streams.get_mut(&e) {
                        s.callouts.push(c.clone());
                    }
                });
            }
            let eh = envoy_headers(&hs);
            let ec = envoy_chunks(&body);
            envoy_dynamic_module_on_http_filter_http_callout_done(
                self.envoy(target),
                self.streams[target].filter,
                id,
                result,
                eh.as_ptr(),
                eh.len(),
                ec.as_ptr(),
                ec.len(),
            );
            self.trace.push(format!(
                "http_callout_done {:#x} id={id} result={result} status={:?} {} chunks",
                self.streams[target].envoy,
                hs.first()
                    .map(|h| String::from_utf8_lossy(&h.1).into_owned()),
                body.len()
            ));
            totals.callouts_answered += 1;
            return true;
        }
        let config_callout = fake_envoy::with(|f| {
            (!f.config_callouts.is_empty()).then(|| {
                let j = r.below(f.config_callouts.len());
                f.config_callouts.remove(j)
            })
        });
        let Some((cep, c)) = config_callout else {
            return false;
        };
        let (result, hs, body) = vault_answer(r, &c, hostile);
        let eh = envoy_headers(&hs);
        let ec = envoy_chunks(&body);
        envoy_dynamic_module_on_http_filter_config_http_callout_done(
            cep as *mut c_void,
            self.config,
            c.id,
            result,
            eh.as_ptr(),
            eh.len(),
            ec.as_ptr(),
            ec.len(),
        );
        self.trace.push(format!(
            "config_http_callout_done id={} result={result}",
            c.id
        ));
        totals.callouts_answered += 1;
        true
    }

    /// Answer every callout well and run every committed event until none is left.
    fn settle(&mut self, r: &mut Rng, totals: &mut Totals) {
        let mut rounds = 0;
        while self.answer_one(r, false, totals) | self.run_scheduled() {
            rounds += 1;
            if rounds > 200 {
                self.fail("callouts and scheduled events never settle");
            }
        }
    }

    /// Requests received in full, live and not completed, that are neither let through nor
    /// answered.
    fn unresolved(&self) -> Vec<usize> {
        fake_envoy::with(|f| {
            self.streams
                .iter()
                .filter(|s| s.finished())
                .filter(|s| {
                    let st = &f.streams[&s.envoy];
                    !st.forwarded && st.replies.is_empty()
                })
                .map(|s| s.envoy)
                .collect()
        })
    }

    /// Run the committed scheduler events; false if none.
    fn run_scheduled(&mut self) -> bool {
        let commits = fake_envoy::take_commits();
        let events = fake_envoy::with(|f| {
            commits
                .into_iter()
                .filter_map(|(p, id)| f.schedulers.get(&p).map(|s| (s.0, s.1, s.2, id)))
                .collect::<Vec<_>>()
        });
        if events.is_empty() {
            return false;
        }
        for (is_config, owner, alive, id) in events {
            if !alive {
                continue;
            }
            if is_config {
                if owner == self.config_envoy {
                    envoy_dynamic_module_on_http_filter_config_scheduled(
                        owner as *mut c_void,
                        self.config,
                        id,
                    );
                    self.trace.push(format!("config_scheduled {id}"));
                }
            } else if let Some(i) = self
                .streams
                .iter()
                .position(|s| s.envoy == owner && !s.destroyed)
            {
                envoy_dynamic_module_on_http_filter_scheduled(
                    self.envoy(i),
                    self.streams[i].filter,
                    id,
                );
                self.trace.push(format!("scheduled {owner:#x} {id}"));
            }
        }
        true
    }
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

fn run_case(seed: u64, totals: &mut Totals) {
    let mut r = Rng(seed);
    fake_envoy::reset();
    fake_envoy::with(|f| {
        f.reentrant_reply = r.chance(30);
        f.config_callout_fails = r.chance(3);
    });
    let bytes = gen_config(&mut r);
    let config_envoy = 0x0c00_0000 + (seed as usize & 0xffff) * 16;
    let name = b"grant-sigv4";
    let config = envoy_dynamic_module_on_http_filter_config_new(
        config_envoy as *mut c_void,
        envoy_chunks(&[name.to_vec()])[0],
        envoy_chunks(std::slice::from_ref(&bytes))[0],
    );
    let mut case = Case {
        seed,
        trace: vec![format!(
            "config_new {} -> null={}",
            String::from_utf8_lossy(&bytes),
            config.is_null()
        )],
        streams: Vec::new(),
        config_envoy,
        config,
        next_stream: 0,
    };
    totals.cases += 1;
    if config.is_null() {
        totals.refused_configs += 1;
        let logged = fake_envoy::with(|f| f.logs.iter().any(|l| l.starts_with("grant-sigv4: ")));
        if !logged {
            case.fail("a configuration was refused without a log line naming why");
        }
        // Envoy refuses the configuration: no filter is ever made from it.
        check(&case);
        return;
    }
    let events = 3 + r.below(30);
    for _ in 0..events {
        totals.events += 1;
        let live: Vec<usize> = (0..case.streams.len())
            .filter(|&i| !case.streams[i].destroyed)
            .collect();
        if live.is_empty() || (case.streams.len() < 4 && r.chance(15)) {
            case.new_stream(&mut r);
            continue;
        }
        let i = *r.pick(&live);
        let (headers_done, ended) = (case.streams[i].headers_done, case.streams[i].ended);
        match r.below(100) {
            // Envoy's order for a request: headers, then body chunks, then trailers, nothing
            // after the end of the stream.
            0..=47 if !headers_done => case.request_headers(&mut r, i),
            0..=47 if ended => {
                case.answer_one(&mut r, true, totals);
            }
            0..=44 => {
                let eos = r.chance(40);
                case.request_body(&mut r, i, eos);
            }
            45..=47 => case.request_trailers(i),
            48..=69 => {
                case.answer_one(&mut r, true, totals);
            }
            70..=79 => {
                case.run_scheduled();
            }
            80..=86 => case.response_headers(&mut r, i),
            // Envoy completes a stream once the request is over (a second time at the end).
            87..=92 if ended => case.stream_complete(i),
            87..=92 => case.response_headers(&mut r, i),
            _ => case.destroy(i),
        }
    }
    // Envoy finishes: every live request gets the rest of its body, every callout a good
    // answer, every committed event runs.
    for i in 0..case.streams.len() {
        let s = &case.streams[i];
        if !s.destroyed && s.headers_done && !s.ended {
            case.request_body(&mut r, i, true);
        }
    }
    case.settle(&mut r, totals);
    // What waits for the engine's tick (a grant read waiting for the filter's login while it
    // backs off) is woken by the module's ticker thread within seconds.
    if !case.unresolved().is_empty() {
        totals.waited_for_ticks += 1;
        let start = std::time::Instant::now();
        while !case.unresolved().is_empty() && start.elapsed().as_secs() < 10 {
            std::thread::sleep(std::time::Duration::from_millis(20));
            case.settle(&mut r, totals);
        }
        totals.waited_ms += start.elapsed().as_millis();
    }
    for s in case.streams.iter().filter(|s| s.finished()) {
        totals.requests += 1;
        let (forwarded, replied) = fake_envoy::with(|f| {
            let st = &f.streams[&s.envoy];
            (st.forwarded, !st.replies.is_empty())
        });
        totals.signed += usize::from(forwarded);
        totals.replied += usize::from(replied);
    }
    if let Some(e) = case.unresolved().first() {
        case.fail(&format!(
            "request {e:#x} was neither let through nor answered"
        ));
    }
    for i in 0..case.streams.len() {
        if !case.streams[i].destroyed {
            if r.chance(90) {
                case.response_headers(&mut r, i);
            }
            case.stream_complete(i);
            case.destroy(i);
        }
    }
    envoy_dynamic_module_on_http_filter_config_destroy(config);
    case.trace.push("config_destroy".into());
    // The configuration's callouts answered after it is gone are never delivered (Envoy
    // cancels them with it).
    check(&case);
}

fn check(case: &Case) {
    let (violations, leaks, replies, caught) = fake_envoy::with(|f| {
        let mut leaks = Vec::new();
        let mut replies = Vec::new();
        for (k, s) in &f.streams {
            for (n, v) in &s.written {
                if contains(v, MARK) || contains(n, MARK) {
                    leaks.push(format!(
                        "request header {} of {k:#x}",
                        String::from_utf8_lossy(n)
                    ));
                }
            }
            for (n, v) in &s.filter_state {
                if contains(v, MARK) {
                    leaks.push(format!("filter state {}", String::from_utf8_lossy(n)));
                }
            }
            for rep in &s.replies {
                if contains(&rep.body, MARK) || rep.headers.iter().any(|(_, v)| contains(v, MARK)) {
                    leaks.push(format!("local reply of {k:#x}"));
                }
                replies.push(rep.clone());
            }
        }
        for l in &f.logs {
            if contains(l.as_bytes(), MARK) {
                leaks.push(format!("log line {l}"));
            }
        }
        for n in &f.metric_names {
            if contains(n, MARK) {
                leaks.push("metric name".into());
            }
        }
        let caught = f
            .logs
            .iter()
            .filter(|l| l.contains("a panic was caught"))
            .count();
        (f.violations.clone(), leaks, replies, caught)
    });
    if !violations.is_empty() {
        case.fail(&format!("violations: {violations:?}"));
    }
    if !leaks.is_empty() {
        case.fail(&format!("a secret leaked: {leaks:?}"));
    }
    if caught > 0 {
        case.fail(&format!("{caught} panics were caught by the hooks' guard"));
    }
    if PANICS.with(Cell::get) > 0 {
        case.fail("a panic happened");
    }
    for rep in replies {
        let json: serde_json::Value = serde_json::from_slice(&rep.body).unwrap_or_else(|e| {
            case.fail(&format!("reply body is not JSON ({e}): {:?}", rep.body))
        });
        let ok = json.get("error").is_some_and(serde_json::Value::is_string)
            && json
                .get("message")
                .is_some_and(serde_json::Value::is_string)
            && (400..600).contains(&rep.status)
            && rep
                .headers
                .iter()
                .any(|(k, v)| k == b"content-type" && v == b"application/json");
        if !ok {
            case.fail(&format!("malformed local reply {} {json}", rep.status));
        }
    }
}

/// Cases run by `fuzz_hooks` (a few seconds in a debug build).
const CASES: u64 = 4000;

#[test]
fn fuzz_hooks() {
    count_panics();
    envoy_dynamic_module_on_program_init();
    let mut totals = Totals::default();
    let start = std::time::Instant::now();
    for case in 0..CASES {
        run_case(
            0x6c0f_fee0_0000 ^ case.wrapping_mul(0x9e37_79b9),
            &mut totals,
        );
    }
    eprintln!(
        "dynamic-module hook fuzz: {totals:?} in {:?}",
        start.elapsed()
    );
    // The generators still reach the signing code and the local replies.
    assert!(totals.signed * 20 > totals.requests, "{totals:?}");
    assert!(totals.replied * 20 > totals.requests, "{totals:?}");
    assert!(totals.refused_configs * 50 > totals.cases, "{totals:?}");
    assert!(totals.callouts_answered * 10 > totals.cases, "{totals:?}");
    // Waiting for the ticker (a second or two) stays the exception.
    assert!(totals.waited_for_ticks * 500 < totals.cases, "{totals:?}");
}

/// A grant read that waits for the filter's AppRole login while the login backs off (its
/// first attempt failed) is woken by the ticker on an idle worker: the login is made again,
/// and the request signed, with no other event on the worker.
#[test]
fn read_waiting_for_login_retry_is_woken_on_an_idle_worker() {
    count_panics();
    envoy_dynamic_module_on_program_init();
    fake_envoy::reset();
    let bytes = format!(
        r#"{{"vault": {{"auth": {{"method": "approle", "role_id": "role-idle-worker", "secret_id": "{SECRET_ID}"}}}}}}"#
    )
    .into_bytes();
    let config_envoy = 0x0cff_0000usize;
    let config = envoy_dynamic_module_on_http_filter_config_new(
        config_envoy as *mut c_void,
        envoy_chunks(&[b"grant-sigv4".to_vec()])[0],
        envoy_chunks(std::slice::from_ref(&bytes))[0],
    );
    assert!(!config.is_null());
    let mut case = Case {
        seed: 0,
        trace: Vec::new(),
        streams: Vec::new(),
        config_envoy,
        config,
        next_stream: 0x100,
    };
    let mut r = Rng(1);
    let mut totals = Totals::default();
    let request = |case: &mut Case, r: &mut Rng| {
        case.new_stream(r);
        let i = case.streams.len() - 1;
        let e = case.streams[i].envoy;
        fake_envoy::with(|f| {
            let st = f.streams.get_mut(&e).unwrap();
            st.callout_fails = false;
            st.request_headers = vec![
                (s(":method"), s("GET")),
                (
                    s(":path"),
                    s("/?Action=GetCallerIdentity&Version=2011-06-15"),
                ),
                (s(":authority"), s("sts.amazonaws.com")),
                (s(":scheme"), s("https")),
                (s("x-grant-id"), s("team-a")),
            ];
        });
        let st = envoy_dynamic_module_on_http_filter_request_headers(
            case.envoy(i),
            case.streams[i].filter,
            true,
        );
        assert_eq!(st, 1, "the request waits for the login");
        case.streams[i].headers_done = true;
        case.streams[i].ended = true;
        (i, e)
    };
    // The first login fails (made on the request's stream or through the main thread): its
    // request is answered 503.
    let (_, a) = request(&mut case, &mut r);
    case.run_scheduled();
    let on_stream = fake_envoy::with(|f| f.streams.get_mut(&a).unwrap().callouts.pop());
    let on_main = fake_envoy::with(|f| f.config_callouts.pop());
    let login = on_stream.clone().or(on_main.clone().map(|c| c.1)).unwrap();
    assert!(String::from_utf8_lossy(login.header(b":path").unwrap()).ends_with("/login"));
    if on_stream.is_some() {
        envoy_dynamic_module_on_http_filter_http_callout_done(
            case.envoy(0),
            case.streams[0].filter,
            login.id,
            1,
            std::ptr::null(),
            0,
            std::ptr::null(),
            0,
        );
    } else {
        envoy_dynamic_module_on_http_filter_config_http_callout_done(
            config_envoy as *mut c_void,
            config,
            login.id,
            1,
            std::ptr::null(),
            0,
            std::ptr::null(),
            0,
        );
        case.run_scheduled();
    }
    let a_status = fake_envoy::with(|f| f.streams[&a].replies.first().map(|x| x.status));
    assert_eq!(a_status, Some(503));
    // The next request finds the login backing off: nothing is under way for it.
    let (_, b) = request(&mut case, &mut r);
    let idle = fake_envoy::with(|f| {
        f.streams.values().all(|st| st.callouts.is_empty()) && f.config_callouts.is_empty()
    });
    assert!(idle, "nothing is under way while the login backs off");
    let start = std::time::Instant::now();
    while start.elapsed() < std::time::Duration::from_secs(10) {
        case.settle(&mut r, &mut totals);
        if fake_envoy::with(|f| f.streams[&b].forwarded || !f.streams[&b].replies.is_empty()) {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let (forwarded, replies) =
        fake_envoy::with(|f| (f.streams[&b].forwarded, f.streams[&b].replies.len()));
    assert!(
        forwarded && replies == 0,
        "the waiting request was not signed"
    );
    for i in 0..case.streams.len() {
        case.stream_complete(i);
        case.destroy(i);
    }
    envoy_dynamic_module_on_http_filter_config_destroy(config);
    check(&case);
}
