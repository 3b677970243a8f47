//! The engine as event sequences, with a fake host and a fake clock.

use super::*;
use crate::request::Edits;
use crate::vault_auth;
use std::collections::HashMap;

const T0_MS: u64 = 1_700_000_000_000;
const STS: &str = "sts.us-east-1.amazonaws.com";

/// What the engine asked the host to do, in order.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Effect {
    /// Request signed with this access key id.
    Signed(u32, String),
    Resumed(u32),
    Replied(u32, u32, &'static str),
    FilterState(u32, String),
    Callout(u32, String),
    SharedWrite(String, usize),
}

/// Shared data of one process: value and version per key.
type SharedData = Rc<RefCell<HashMap<String, (Vec<u8>, u32)>>>;

struct FakeHost {
    now_ms: u64,
    effects: Vec<Effect>,
    next_token: u32,
    callouts_fail: bool,
    /// The callout answer being delivered.
    answer: (Option<u32>, Vec<u8>),
    shared: SharedData,
    /// Response headers of the request whose response-headers event runs.
    response: Vec<(&'static str, String)>,
    peer_address: Option<String>,
    /// The clock is broken.
    no_clock: bool,
    /// Names of the headers of the last callout started.
    callout_headers: Vec<String>,
    /// Metric names by id, and the last value recorded per name (gauges, histograms).
    metric_names: Vec<String>,
    recorded: HashMap<String, u64>,
    /// Another worker changes a shared value right after each read of it.
    race_after_read: bool,
    /// The `X-Vault-Token`, `:method` and body of the last callout started.
    callout_token: Option<String>,
    callout_method: String,
    callout_body_sent: Vec<u8>,
    /// The message of the last local reply.
    reply_message: String,
    /// The tick period last asked for.
    tick_ms: u32,
    /// The header edits of the last request signed.
    last_edits: Option<Edits>,
}

impl Host for FakeHost {
    fn now_ms(&mut self) -> Option<u64> {
        (!self.no_clock).then_some(self.now_ms)
    }
    fn property(&mut self, _id: RequestId, property: Property) -> Option<Vec<u8>> {
        match property {
            Property::SourceAddress => self.peer_address.clone().map(String::into_bytes),
            Property::PeerUriSan => None,
        }
    }
    fn edit_request_headers(&mut self, id: RequestId, edits: &Edits) -> Result<(), String> {
        let auth = edits
            .set
            .iter()
            .find(|(k, _)| k == "authorization")
            .map(|(_, v)| v.clone())
            .unwrap_or_default();
        let akid = auth
            .split("Credential=")
            .nth(1)
            .and_then(|c| c.split('/').next())
            .unwrap_or("")
            .to_string();
        self.effects.push(Effect::Signed(id, akid));
        self.last_edits = Some(edits.clone());
        Ok(())
    }
    fn resume_request(&mut self, id: RequestId) {
        self.effects.push(Effect::Resumed(id));
    }
    fn send_local_reply(&mut self, id: RequestId, error: &LocalError) {
        self.reply_message = error.message.clone();
        self.effects
            .push(Effect::Replied(id, error.status(), error.code.as_str()));
    }
    fn set_filter_state(&mut self, id: RequestId, _name: &str, value: &[u8]) {
        let v = String::from_utf8_lossy(value).into_owned();
        self.effects.push(Effect::FilterState(id, v));
    }
    fn response_header(&mut self, _id: RequestId, name: &str) -> Option<Vec<u8>> {
        self.response
            .iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.clone().into_bytes())
    }
    fn start_callout_with_body(
        &mut self,
        _cluster: &str,
        headers: &[(&str, &[u8])],
        body: &[u8],
        _timeout_ms: u32,
    ) -> Result<CalloutToken, String> {
        if self.callouts_fail {
            return Err("no such cluster".into());
        }
        self.next_token += 1;
        self.callout_headers = headers.iter().map(|(k, _)| k.to_string()).collect();
        let value = |name: &str| {
            headers
                .iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| String::from_utf8_lossy(v).into_owned())
        };
        self.callout_token = value("x-vault-token");
        self.callout_method = value(":method").unwrap_or_default();
        self.callout_body_sent = body.to_vec();
        let path = headers
            .iter()
            .find(|(k, _)| *k == ":path")
            .map(|(_, v)| String::from_utf8_lossy(v).into_owned())
            .unwrap_or_default();
        self.effects.push(Effect::Callout(self.next_token, path));
        Ok(self.next_token)
    }
    fn callout_status(&mut self) -> Option<u32> {
        self.answer.0
    }
    fn callout_body(&mut self, size: usize) -> Vec<u8> {
        self.answer.1.iter().copied().take(size).collect()
    }
    fn get_shared(&mut self, key: &str) -> Option<(Vec<u8>, u32)> {
        let mut shared = self.shared.borrow_mut();
        let read = shared.get(key).cloned();
        if self.race_after_read {
            if let Some((_, v)) = shared.get_mut(key) {
                *v += 1;
            }
        }
        read
    }
    fn set_shared(&mut self, key: &str, value: &[u8], cas: u32) -> Result<(), String> {
        let mut shared = self.shared.borrow_mut();
        let version = shared.get(key).map_or(0, |(_, v)| *v);
        if cas != 0 && cas != version {
            return Err("CAS mismatch".into());
        }
        shared.insert(key.to_string(), (value.to_vec(), version + 1));
        // Grants' keys only: the fetch budget, claims and vault health are read from
        // `shared` by the tests that check them.
        let bookkeeping = key == fetch_limit::KEY
            || key == vault_health::KEY
            || key.starts_with("grant_sigv4/v1/claim/");
        if !bookkeeping {
            self.effects
                .push(Effect::SharedWrite(key.to_string(), value.len()));
        }
        Ok(())
    }
    fn set_tick_period_ms(&mut self, ms: u32) -> Result<(), String> {
        self.tick_ms = ms;
        Ok(())
    }
    fn define_metric(&mut self, _kind: MetricKind, name: &str) -> Option<u32> {
        self.metric_names.push(name.to_string());
        u32::try_from(self.metric_names.len() - 1).ok()
    }
    fn increment_metric(&mut self, _id: u32, _by: i64) {}
    fn record_metric(&mut self, id: u32, value: u64) {
        if let Some(name) = self.metric_names.get(id as usize) {
            self.recorded.insert(name.clone(), value);
        }
    }
}

/// One plugin instance on one worker, its host, and its clock.
struct Worker {
    engine: Engine,
    host: FakeHost,
}

const CACHE: &str = r#""cache": {"ttl_seconds": 300, "max_stale_seconds": 600,
    "negative_ttl_seconds": 10, "refresh_ahead_seconds": 60, "min_refetch_seconds": 5}"#;

fn config(extra: &str) -> String {
    format!(r#"{{"vault": {{"token": "vault-token"}}, {CACHE}{extra}}}"#)
}

impl Worker {
    fn new(shared: &SharedData) -> Worker {
        Worker::with_config(shared, &config(""))
    }

    /// A worker configured with `cfg`; with method `token`, its first tick's lookup-self
    /// is answered (a token with no expiry) and forgotten.
    fn with_config(shared: &SharedData, cfg: &str) -> Worker {
        let mut w = Worker::bare(shared, cfg);
        w.tick();
        let e = w.effects();
        let lookup = e.iter().find_map(|x| match x {
            Effect::Callout(t, p) => Some((t, p)),
            _ => None,
        });
        if let Some((t, p)) = lookup {
            assert_eq!(p, vault_auth::LOOKUP_SELF_PATH);
            w.answer(
                *t,
                200,
                r#"{"data": {"ttl": 0, "renewable": false, "policies": ["p"]}}"#,
            );
        }
        w.effects();
        w.host.next_token = 0;
        w
    }

    /// A worker configured with `cfg`, before its first tick.
    fn bare(shared: &SharedData, cfg: &str) -> Worker {
        Worker::bare_env(shared, cfg, |_| None)
    }

    /// A worker configured with `cfg` in a VM whose environment is `env`.
    fn bare_env(shared: &SharedData, cfg: &str, env: fn(&str) -> Option<String>) -> Worker {
        let mut host = FakeHost {
            now_ms: T0_MS,
            effects: Vec::new(),
            next_token: 0,
            callouts_fail: false,
            answer: (None, Vec::new()),
            shared: Rc::clone(shared),
            response: Vec::new(),
            peer_address: Some("10.0.0.7:5000".into()),
            race_after_read: false,
            no_clock: false,
            callout_headers: Vec::new(),
            callout_token: None,
            callout_method: String::new(),
            callout_body_sent: Vec::new(),
            reply_message: String::new(),
            tick_ms: 0,
            last_edits: None,
            metric_names: Vec::new(),
            recorded: HashMap::new(),
        };
        let mut engine = Engine::new(Rc::default());
        assert!(engine.on_configure(&mut host, cfg.as_bytes(), env));
        Worker { engine, host }
    }

    fn advance(&mut self, secs: u64) {
        self.host.now_ms += secs * 1000;
    }

    fn advance_ms(&mut self, ms: u64) {
        self.host.now_ms += ms;
    }

    /// A GET for `grant` as request `id`.
    fn get(&mut self, id: u32, grant: &str) -> Action {
        let headers: [(&str, &[u8]); 4] = [
            (":method", b"GET"),
            (":path", b"/?Action=GetCallerIdentity&Version=2011-06-15"),
            (":authority", STS.as_bytes()),
            ("x-grant-id", grant.as_bytes()),
        ];
        self.engine
            .on_request_headers(&mut self.host, id, &headers, true)
    }

    fn answer(&mut self, token: u32, status: u32, body: &str) {
        self.host.answer = (Some(status), body.as_bytes().to_vec());
        self.engine
            .on_callout_answer(&mut self.host, token, body.len());
    }

    fn respond(&mut self, id: u32, status: u32, error_type: Option<&str>) {
        self.host.response = vec![(":status", status.to_string())];
        if let Some(t) = error_type {
            self.host.response.push(("x-amzn-errortype", t.to_string()));
        }
        self.engine.on_response_headers(&mut self.host, id);
    }

    fn done(&mut self, id: u32) {
        self.engine.on_request_done(&mut self.host, id);
    }

    fn tick(&mut self) {
        self.engine.on_tick(&mut self.host);
    }

    /// The effects since the last call, filter-state writes left out.
    fn effects(&mut self) -> Vec<Effect> {
        std::mem::take(&mut self.host.effects)
            .into_iter()
            .filter(|e| !matches!(e, Effect::FilterState(..)))
            .collect()
    }

    /// Tokens of the callouts started since the last call of `effects`.
    fn callouts(effects: &[Effect]) -> Vec<u32> {
        effects
            .iter()
            .filter_map(|e| match e {
                Effect::Callout(t, _) => Some(*t),
                _ => None,
            })
            .collect()
    }
}

fn record(akid: &str) -> String {
    format!(
        r#"{{"data":{{"data":{{"access_key_id":"{akid}","secret_access_key":"secret-{akid}"}}}}}}"#
    )
}

const KEY_A: &str = "AKIAAAAAAAAAAAAAAAAA";
const KEY_B: &str = "AKIABBBBBBBBBBBBBBBB";
const RECORD_PATH: &str = "/v1/secret/data/aws/grants/g";

fn signed(id: u32, akid: &str) -> Effect {
    Effect::Signed(id, akid.to_string())
}

fn new_shared() -> SharedData {
    Rc::default()
}

/// Fetch grant `g` with key `akid` through request `id` (answered, resumed, done).
fn warm(w: &mut Worker, id: u32, akid: &str) {
    assert_eq!(w.get(id, "g"), Action::Pause);
    let e = w.effects();
    let token = Worker::callouts(&e)[0];
    w.answer(token, 200, &record(akid));
    assert!(w.effects().contains(&signed(id, akid)));
    w.done(id);
}

#[test]
fn a_cached_grant_is_signed_without_pausing_and_its_state_dropped() {
    let mut w = Worker::new(&new_shared());
    warm(&mut w, 1, KEY_A);
    assert_eq!(w.get(2, "g"), Action::Continue);
    assert_eq!(w.effects(), vec![signed(2, KEY_A)]);
    w.respond(2, 200, None);
    w.done(2);
    assert_eq!(w.engine.requests_tracked(), 0);
    assert_eq!(w.engine.fetches_under_way(), (0, 0));
}

#[test]
fn single_flight_one_callout_for_a_burst_and_all_resumed() {
    let mut w = Worker::new(&new_shared());
    for id in 1..=5 {
        assert_eq!(w.get(id, "g"), Action::Pause);
    }
    let e = w.effects();
    assert_eq!(e, vec![Effect::Callout(1, RECORD_PATH.into())]);
    w.answer(1, 200, &record(KEY_A));
    let e = w.effects();
    for id in 1..=5 {
        assert!(e.contains(&signed(id, KEY_A)), "{e:?}");
        assert!(e.contains(&Effect::Resumed(id)), "{e:?}");
    }
    assert_eq!(Worker::callouts(&e), Vec::<u32>::new());
    for id in 1..=5 {
        w.done(id);
    }
    assert_eq!(w.engine.requests_tracked(), 0);
    assert_eq!(w.engine.fetches_under_way(), (0, 0));
}

#[test]
fn when_the_request_that_started_a_fetch_goes_away_the_others_still_get_its_answer() {
    let mut w = Worker::new(&new_shared());
    w.get(1, "g");
    w.get(2, "g");
    w.get(3, "g");
    let token = Worker::callouts(&w.effects())[0];
    w.done(1);
    assert_eq!(w.effects(), vec![], "nobody is answered 503");
    w.answer(token, 200, &record(KEY_A));
    let e = any_len(w.effects());
    assert_eq!(
        e,
        vec![
            Effect::SharedWrite("grant_sigv4/v1/g".into(), usize::MAX),
            signed(2, KEY_A),
            Effect::Resumed(2),
            signed(3, KEY_A),
            Effect::Resumed(3)
        ]
    );
    // When every waiter went away, the answer still fills the cache.
    w.done(2);
    w.done(3);
    w.get(4, "h");
    let token = Worker::callouts(&w.effects())[0];
    w.done(4);
    w.answer(token, 200, &record(KEY_B));
    assert_eq!(
        any_len(w.effects()),
        vec![Effect::SharedWrite("grant_sigv4/v1/h".into(), usize::MAX)]
    );
    assert_eq!(w.get(5, "h"), Action::Continue);
    assert_eq!(w.effects(), vec![signed(5, KEY_B)]);
}

impl Effect {
    /// A shared write of any length (for comparisons).
    fn len_any(self) -> Effect {
        match self {
            Effect::SharedWrite(k, _) => Effect::SharedWrite(k, usize::MAX),
            e => e,
        }
    }
}

fn any_len(e: Vec<Effect>) -> Vec<Effect> {
    e.into_iter().map(Effect::len_any).collect()
}

#[test]
fn another_worker_takes_the_key_from_shared_data() {
    let shared = new_shared();
    let mut a = Worker::new(&shared);
    let mut b = Worker::new(&shared);
    warm(&mut a, 1, KEY_A);
    assert_eq!(b.get(1, "g"), Action::Continue);
    assert_eq!(b.effects(), vec![signed(1, KEY_A)]);
    assert_eq!(b.engine.metric_pending("grant_sigv4.cache_shared_hits"), 1);
    assert_eq!(b.engine.metric_pending("grant_sigv4.vault_callouts"), 0);
}

#[test]
fn shared_data_never_takes_an_older_key_and_forgets_only_the_refused_one() {
    let shared = new_shared();
    let mut a = Worker::new(&shared);
    let mut b = Worker::new(&shared);
    // a starts a fetch; b fetches later and stores a newer key first.
    a.get(1, "g");
    let ta = Worker::callouts(&a.effects())[0];
    b.advance(1);
    b.get(1, "g");
    let tb = Worker::callouts(&b.effects())[0];
    b.answer(tb, 200, &record(KEY_B));
    assert!(
        any_len(b.effects()).contains(&Effect::SharedWrite("grant_sigv4/v1/g".into(), usize::MAX))
    );
    a.answer(ta, 200, &record(KEY_A));
    let e = a.effects();
    assert!(e.contains(&signed(1, KEY_A)));
    assert!(
        !e.iter().any(|x| matches!(x, Effect::SharedWrite(..))),
        "the older key does not replace the newer one: {e:?}"
    );
    // A third worker gets the newer key.
    let mut c = Worker::new(&shared);
    c.advance(2);
    assert_eq!(c.get(1, "g"), Action::Continue);
    assert_eq!(c.effects(), vec![signed(1, KEY_B)]);
    // AWS refuses a's (older) key: a drops it, the shared newer key stays.
    a.respond(1, 403, Some("InvalidClientTokenId"));
    assert!(a.effects().is_empty());
    assert!(shared
        .borrow()
        .get("grant_sigv4/v1/g")
        .is_some_and(|(v, _)| !v.is_empty()));
    // AWS refuses c's key (the shared one): it is forgotten in shared data too.
    c.respond(1, 403, Some("InvalidClientTokenId"));
    assert_eq!(
        any_len(c.effects()),
        vec![Effect::SharedWrite("grant_sigv4/v1/g".into(), usize::MAX)]
    );
    assert!(shared
        .borrow()
        .get("grant_sigv4/v1/g")
        .is_some_and(|(v, _)| v.is_empty()));
    assert_eq!(c.engine.metric_pending("grant_sigv4.key_refusals"), 1);
}

#[test]
fn a_shared_write_that_loses_the_compare_and_set_is_dropped() {
    let shared = new_shared();
    let mut w = Worker::new(&shared);
    w.get(1, "g");
    let t = Worker::callouts(&w.effects())[0];
    shared
        .borrow_mut()
        .insert("grant_sigv4/v1/g".into(), (b"not a grant".to_vec(), 7));
    // Another worker writes right after the engine's read.
    w.host.race_after_read = true;
    w.answer(t, 200, &record(KEY_A));
    let e = w.effects();
    assert_eq!(e, vec![signed(1, KEY_A), Effect::Resumed(1)], "no write");
    assert_eq!(
        shared.borrow().get("grant_sigv4/v1/g").map(|(_, v)| *v),
        Some(8)
    );
    // Without the race, the write replaces what is not a grant, with the token read.
    w.host.race_after_read = false;
    w.advance(1);
    w.respond(1, 403, Some("InvalidClientTokenId"));
    w.get(2, "g");
    let t = Worker::callouts(&w.effects())[0];
    w.answer(t, 200, &record(KEY_B));
    let (v, version) = shared
        .borrow()
        .get("grant_sigv4/v1/g")
        .cloned()
        .unwrap_or_default();
    assert_eq!(version, 9);
    assert_eq!(
        crate::shared_grant::decode(&v).map(|g| g.creds.access_key_id),
        Some(KEY_B.into())
    );
}

#[test]
fn after_the_ttl_the_stale_key_is_used_at_once_while_one_background_fetch_brings_the_new_one() {
    let mut w = Worker::new(&new_shared());
    warm(&mut w, 1, KEY_A);
    w.advance(299);
    assert_eq!(w.get(2, "g"), Action::Continue);
    assert_eq!(w.effects(), vec![signed(2, KEY_A)]);
    w.advance(1);
    // Past the TTL: signed at once with the stale key, and one background fetch starts.
    assert_eq!(w.get(3, "g"), Action::Continue);
    let e = w.effects();
    assert_eq!(
        e,
        vec![Effect::Callout(2, RECORD_PATH.into()), signed(3, KEY_A)]
    );
    assert_eq!(w.get(4, "g"), Action::Continue);
    assert_eq!(w.effects(), vec![signed(4, KEY_A)], "one fetch at a time");
    assert_eq!(w.engine.metric_pending("grant_sigv4.cache_stale_serves"), 2);
    w.tick();
    assert!(w.effects().is_empty(), "the tick starts no second fetch");
    w.answer(2, 200, &record(KEY_B));
    assert_eq!(
        any_len(w.effects()),
        vec![Effect::SharedWrite("grant_sigv4/v1/g".into(), usize::MAX)]
    );
    assert_eq!(w.get(5, "g"), Action::Continue);
    assert_eq!(w.effects(), vec![signed(5, KEY_B)]);
}

#[test]
fn used_grants_are_refreshed_ahead_and_requests_do_not_wait() {
    let mut w = Worker::new(&new_shared());
    warm(&mut w, 1, KEY_A);
    w.get(2, "g");
    w.effects();
    w.advance(239);
    w.tick();
    assert!(w.effects().is_empty(), "not yet due");
    w.advance(1);
    w.tick();
    let e = w.effects();
    assert_eq!(e, vec![Effect::Callout(2, RECORD_PATH.into())]);
    // Requests during the refresh are signed at once with the current key.
    assert_eq!(w.get(3, "g"), Action::Continue);
    assert_eq!(w.effects(), vec![signed(3, KEY_A)]);
    w.tick();
    assert!(w.effects().is_empty(), "one refresh at a time");
    w.answer(2, 200, &record(KEY_B));
    assert_eq!(
        any_len(w.effects()),
        vec![Effect::SharedWrite("grant_sigv4/v1/g".into(), usize::MAX)]
    );
    assert_eq!(
        w.engine.metric_pending("grant_sigv4.credential_refreshes"),
        1
    );
    assert_eq!(w.get(4, "g"), Action::Continue);
    assert_eq!(w.effects(), vec![signed(4, KEY_B)]);
}

#[test]
fn idle_grants_are_not_refreshed() {
    let mut w = Worker::new(&new_shared());
    warm(&mut w, 1, KEY_A);
    w.advance(250);
    w.tick();
    assert!(w.effects().is_empty());
}

#[test]
fn a_stale_key_is_served_at_once_while_the_vault_fails_and_the_probes_back_off() {
    let mut w = Worker::new(&new_shared());
    warm(&mut w, 1, KEY_A);
    w.get(2, "g");
    w.effects();
    // Used, so the tick refreshes it at 240 s; the vault is down from then on.
    w.advance(240);
    let mut probes = Vec::new();
    let mut id = 10;
    // Usable until ttl + max_stale (900 s).
    for second in 240..900u64 {
        w.tick();
        id += 1;
        // Never paused: signed at once, fresh or stale.
        assert_eq!(w.get(id, "g"), Action::Continue, "at {second} s");
        let e = w.effects();
        assert!(e.contains(&signed(id, KEY_A)), "at {second} s: {e:?}");
        for t in Worker::callouts(&e) {
            probes.push(second);
            w.answer(t, 503, "{}");
            let after = w.effects();
            assert!(after.is_empty(), "{after:?}");
        }
        w.done(id);
        w.advance(1);
    }
    // Past it the key is never used: the request waits for the vault, which fails.
    assert_eq!(w.get(1, "g"), Action::Pause);
    let t = Worker::callouts(&w.effects())[0];
    w.answer(t, 503, "{}");
    assert_eq!(
        w.effects(),
        vec![Effect::Replied(1, 503, "VaultUnavailable")]
    );
    w.done(1);
    w.advance(300);
    // Doubling from 1 s, with up to a quarter off for jitter, capped at ttl_seconds (300 s).
    let gaps: Vec<u64> = probes.windows(2).map(|p| p[1] - p[0]).collect();
    let mut expected = 1000u64;
    for (i, gap) in gaps.iter().take(8).enumerate() {
        let low = (expected - expected / 4) / 1000;
        let high = expected.div_ceil(1000) + 1;
        assert!(
            (low..=high).contains(gap),
            "gap {i}: {gap} s, expected {low}..={high} ({gaps:?})"
        );
        expected = (expected * 2).min(300_000);
    }
    assert!(
        probes.len() <= 12,
        "a dead vault gets a trickle of probes: {probes:?}"
    );
    // The vault has been failing since the first probe; the gauge says so.
    w.tick();
    let failing = w
        .host
        .recorded
        .get("grant_sigv4.vault_failing_seconds")
        .copied();
    assert_eq!(failing, Some(1200 - 240));
    assert!(probes.iter().all(|p| *p < 900));
    // The vault is back: the next fetch brings a key, and the gauge drops to 0.
    w.advance(3600);
    w.get(1, "g");
    let t = Worker::callouts(&w.effects())[0];
    w.answer(t, 200, &record(KEY_B));
    assert!(w.effects().contains(&signed(1, KEY_B)));
    w.tick();
    let failing = w
        .host
        .recorded
        .get("grant_sigv4.vault_failing_seconds")
        .copied();
    assert_eq!(failing, Some(0));
}

#[test]
fn a_refresh_that_fails_keeps_the_key_and_is_tried_again_after_the_backoff() {
    let mut w = Worker::new(&new_shared());
    warm(&mut w, 1, KEY_A);
    w.get(2, "g");
    w.advance(240);
    w.tick();
    let t = Worker::callouts(&w.effects())[0];
    w.answer(t, 500, "{}");
    assert!(w.effects().is_empty());
    assert_eq!(w.get(3, "g"), Action::Continue);
    w.effects();
    w.tick();
    assert!(w.effects().is_empty(), "not within the first backoff");
    w.advance(1);
    w.tick();
    assert_eq!(Worker::callouts(&w.effects()).len(), 1, "tried again");
}

#[test]
fn an_unknown_grant_is_remembered_for_the_negative_ttl() {
    let mut w = Worker::new(&new_shared());
    w.get(1, "g");
    w.get(2, "g");
    let t = Worker::callouts(&w.effects())[0];
    w.answer(t, 404, "{}");
    assert_eq!(
        w.effects(),
        vec![
            Effect::Replied(1, 403, "GrantNotFound"),
            Effect::Replied(2, 403, "GrantNotFound")
        ]
    );
    w.advance(9);
    assert_eq!(w.get(3, "g"), Action::Pause);
    assert_eq!(w.effects(), vec![Effect::Replied(3, 403, "GrantNotFound")]);
    w.advance(1);
    w.get(4, "g");
    assert_eq!(
        Worker::callouts(&w.effects()).len(),
        1,
        "asked again after 10 s"
    );
}

#[test]
fn a_refused_key_is_dropped_and_the_same_key_refetched_at_most_once_per_min_refetch() {
    let mut w = Worker::new(&new_shared());
    warm(&mut w, 1, KEY_A);
    w.get(2, "g");
    w.effects();
    // Not a refusal of the key.
    w.respond(2, 403, Some("AccessDenied"));
    assert_eq!(w.get(3, "g"), Action::Continue);
    w.effects();
    w.respond(3, 403, Some("InvalidClientTokenId"));
    assert_eq!(w.engine.metric_pending("grant_sigv4.key_refusals"), 1);
    // Fetched again; the vault still has the same key.
    assert_eq!(w.get(4, "g"), Action::Pause);
    let t = Worker::callouts(&w.effects())[0];
    w.answer(t, 200, &record(KEY_A));
    w.effects();
    // Refused again within min_refetch_seconds: kept (no callout per request).
    w.advance(4);
    w.get(5, "g");
    w.effects();
    w.respond(5, 403, Some("InvalidClientTokenId"));
    assert_eq!(w.get(6, "g"), Action::Continue);
    w.effects();
    // After min_refetch_seconds the refusal drops it again.
    w.advance(1);
    w.respond(6, 403, Some("InvalidClientTokenId"));
    assert_eq!(w.get(7, "g"), Action::Pause);
    assert_eq!(Worker::callouts(&w.effects()).len(), 1);
    assert_eq!(w.engine.metric_pending("grant_sigv4.key_refusals"), 2);
}

#[test]
fn without_drop_refused_keys_a_signed_request_keeps_no_state_and_a_refused_key_stays() {
    let mut w = Worker::with_config(&new_shared(), &config(r#", "drop_refused_keys": false"#));
    warm(&mut w, 1, KEY_A);
    assert_eq!(w.get(2, "g"), Action::Continue);
    w.effects();
    // Nothing kept for the answer: its headers are not read.
    assert_eq!(w.engine.requests_tracked(), 0);
    w.respond(2, 403, Some("InvalidClientTokenId"));
    assert_eq!(w.engine.metric_pending("grant_sigv4.key_refusals"), 0);
    assert_eq!(w.get(3, "g"), Action::Continue);
    assert_eq!(w.effects(), vec![signed(3, KEY_A)]);
}

const DYNAMIC_RECORD: &str = r#"{"data":{"data":{"aws_role":"app"}}}"#;

fn issued(akid: &str, lease: u64) -> String {
    format!(
        r#"{{"lease_duration":{lease},"data":{{"access_key":"{akid}","secret_key":"s-{akid}","session_token":null}}}}"#
    )
}

#[test]
fn a_dynamic_key_is_refreshed_before_its_lease_ends_and_never_used_after() {
    let mut w = Worker::new(&new_shared());
    w.get(1, "g");
    let e = w.effects();
    w.answer(Worker::callouts(&e)[0], 200, DYNAMIC_RECORD);
    let e = w.effects();
    assert_eq!(e, vec![Effect::Callout(2, "/v1/aws/creds/app".into())]);
    w.answer(2, 200, &issued(KEY_A, 60));
    assert!(w.effects().contains(&signed(1, KEY_A)));
    // A 60 s lease: refreshed half-way, usable until 60 - 10 s.
    w.get(2, "g");
    w.effects();
    w.advance(30);
    w.tick();
    let t = Worker::callouts(&w.effects())[0];
    // The vault fails: the key is served until its lease's end, then never.
    w.answer(t, 503, "{}");
    w.effects();
    w.advance(19);
    assert_eq!(w.get(3, "g"), Action::Continue);
    w.effects();
    w.advance(1);
    assert_eq!(w.get(4, "g"), Action::Pause);
    let t = Worker::callouts(&w.effects())[0];
    w.answer(t, 503, "{}");
    assert_eq!(
        w.effects(),
        vec![Effect::Replied(4, 503, "VaultUnavailable")]
    );
}

#[test]
fn a_callout_that_cannot_start_answers_503() {
    let mut w = Worker::new(&new_shared());
    w.host.callouts_fail = true;
    assert_eq!(w.get(1, "g"), Action::Pause);
    assert_eq!(
        w.effects(),
        vec![Effect::Replied(1, 503, "VaultUnavailable")]
    );
    assert_eq!(w.engine.fetches_under_way(), (0, 0));
    w.host.callouts_fail = false;
    w.get(2, "g");
    assert_eq!(Worker::callouts(&w.effects()).len(), 1);
}

#[test]
fn an_answer_for_an_unknown_token_is_ignored() {
    let mut w = Worker::new(&new_shared());
    w.answer(42, 200, &record(KEY_A));
    assert!(w.effects().is_empty());
}

#[test]
fn a_request_refused_before_planning_has_its_decision_in_the_filter_state() {
    let mut w = Worker::new(&new_shared());
    let headers: [(&str, &[u8]); 2] = [(":method", b"GET"), (":authority", STS.as_bytes())];
    assert_eq!(
        w.engine.on_request_headers(&mut w.host, 1, &headers, true),
        Action::Pause
    );
    let e = std::mem::take(&mut w.host.effects);
    assert!(
        matches!(e.last(), Some(Effect::Replied(1, 401, "GrantMissing"))),
        "{e:?}"
    );
    assert!(e
        .iter()
        .any(|x| matches!(x, Effect::FilterState(1, s) if s.contains("GrantMissing"))));
    w.done(1);
    assert_eq!(w.engine.requests_tracked(), 0);
}

#[test]
fn upstream_retries_carry_the_grant_of_their_first_attempt() {
    let shared = new_shared();
    let mut w = Worker::with_config(&shared, &config(r#", "upstream_filter": true"#));
    warm(&mut w, 1, KEY_A);
    let first: [(&str, &[u8]); 5] = [
        (":method", b"GET"),
        (":path", b"/"),
        (":authority", STS.as_bytes()),
        ("x-grant-id", b"g"),
        ("x-request-id", b"r-1"),
    ];
    assert_eq!(
        w.engine.on_request_headers(&mut w.host, 2, &first, true),
        Action::Continue
    );
    let retry: [(&str, &[u8]); 4] = [
        (":method", b"GET"),
        (":path", b"/"),
        (":authority", STS.as_bytes()),
        ("x-request-id", b"r-1"),
    ];
    assert_eq!(
        w.engine.on_request_headers(&mut w.host, 3, &retry, true),
        Action::Continue
    );
    assert_eq!(w.effects(), vec![signed(2, KEY_A), signed(3, KEY_A)]);
    // Another caller cannot use the request id.
    w.host.peer_address = Some("10.0.0.8:5000".into());
    assert_eq!(
        w.engine.on_request_headers(&mut w.host, 4, &retry, true),
        Action::Pause
    );
    assert!(matches!(
        w.effects().as_slice(),
        [Effect::Replied(4, 401, "GrantMissing")]
    ));
}

#[test]
fn behind_a_vault_proxy_no_token_is_sent() {
    let mut w = Worker::new(&new_shared());
    w.get(1, "g");
    assert!(w
        .host
        .callout_headers
        .contains(&"x-vault-token".to_string()));
    let proxy = r#"{"vault": {"auth": {"method": "proxy"}}}"#;
    let mut p = Worker::with_config(&new_shared(), proxy);
    p.get(1, "g");
    assert_eq!(Worker::callouts(&p.effects()).len(), 1);
    assert_eq!(
        p.host.callout_headers,
        vec![":method", ":path", ":authority", "accept"]
    );
    p.answer(1, 503, "{}");
    let e = p.effects();
    assert_eq!(e, vec![Effect::Replied(1, 503, "VaultUnavailable")]);
}

#[test]
fn without_a_clock_nothing_is_signed() {
    let mut w = Worker::new(&new_shared());
    warm(&mut w, 1, KEY_A);
    w.host.no_clock = true;
    assert_eq!(w.get(2, "g"), Action::Pause);
    assert_eq!(w.effects(), vec![Effect::Replied(2, 500, "InternalError")]);
    // A vault answer that arrives without a clock refuses its waiters.
    w.host.no_clock = false;
    w.get(3, "h");
    let t = Worker::callouts(&w.effects())[0];
    w.host.no_clock = true;
    w.answer(t, 200, &record(KEY_B));
    assert_eq!(w.effects(), vec![Effect::Replied(3, 500, "InternalError")]);
    w.tick();
    assert!(w.effects().is_empty());
}

#[test]
fn the_tick_leaves_a_grant_to_the_fetch_under_way() {
    let mut w = Worker::new(&new_shared());
    warm(&mut w, 1, KEY_A);
    w.get(2, "g");
    w.effects();
    // Past the TTL a request starts the background fetch; the tick that finds the grant
    // due starts nothing.
    w.advance(300);
    w.get(3, "g");
    let t = Worker::callouts(&w.effects())[0];
    w.tick();
    assert!(w.effects().is_empty());
    w.answer(t, 200, &record(KEY_B));
    w.effects();
    w.get(4, "g");
    assert_eq!(w.effects(), vec![signed(4, KEY_B)]);
    // The new key is refreshed ahead of its own expiry.
    w.advance(240);
    w.tick();
    assert_eq!(Worker::callouts(&w.effects()).len(), 1);
}

#[test]
fn a_waiting_request_that_goes_away_is_not_resumed() {
    let mut w = Worker::new(&new_shared());
    w.get(1, "g");
    w.get(2, "g");
    let t = Worker::callouts(&w.effects())[0];
    w.done(2);
    w.answer(t, 200, &record(KEY_A));
    let e = w.effects();
    assert!(e.contains(&Effect::Resumed(1)));
    assert!(
        !e.iter()
            .any(|x| matches!(x, Effect::Signed(2, _) | Effect::Resumed(2))),
        "{e:?}"
    );
    w.done(1);
    assert_eq!(w.engine.requests_tracked(), 0);
}

/// A GET for `grant` as request `id` that must be refused with `code` at once.
fn refused(w: &mut Worker, id: u32, grant: &str, status: u32, code: &'static str) {
    assert_eq!(w.get(id, grant), Action::Pause);
    assert_eq!(
        w.effects(),
        vec![Effect::Replied(id, status, code)],
        "{grant}"
    );
    w.done(id);
}

#[test]
fn new_grant_fetches_are_limited_per_process_and_cached_grants_never() {
    let shared = new_shared();
    let limit = r#", "new_grant_fetches": {"per_second": 2, "burst": 3}"#;
    let mut a = Worker::with_config(&shared, &config(limit));
    let mut b = Worker::with_config(&shared, &config(limit));
    // The burst: three fetches, on two workers.
    a.get(1, "g1");
    a.get(2, "g2");
    b.get(1, "g3");
    let (ea, eb) = (a.effects(), b.effects());
    assert_eq!(
        (Worker::callouts(&ea).len(), Worker::callouts(&eb).len()),
        (2, 1)
    );
    // A request that joins a fetch under way takes no token.
    assert_eq!(a.get(3, "g1"), Action::Pause);
    assert!(a.effects().is_empty());
    // The fourth new grant, on either worker: 503 VaultBusy, nothing fetched.
    refused(&mut b, 2, "g4", 503, "VaultBusy");
    refused(&mut a, 4, "g5", 503, "VaultBusy");
    assert_eq!(
        b.engine
            .metric_pending("grant_sigv4.local_errors.VaultBusy"),
        1
    );
    // Answers: g1 found, g2 unknown. Both are cached now and take no token.
    a.answer(Worker::callouts(&ea)[0], 200, &record(KEY_A));
    a.answer(Worker::callouts(&ea)[1], 404, "{}");
    a.effects();
    assert_eq!(a.get(5, "g1"), Action::Continue);
    a.effects();
    refused(&mut a, 6, "g2", 403, "GrantNotFound");
    // Another worker takes g1 from shared data without a token.
    assert_eq!(b.get(3, "g1"), Action::Continue);
    assert_eq!(b.effects(), vec![signed(3, KEY_A)]);
    // Tokens come back at 2 a second: one after 500 ms.
    b.advance_ms(499);
    refused(&mut b, 4, "g4", 503, "VaultBusy");
    b.advance_ms(1);
    b.get(5, "g4");
    assert_eq!(Worker::callouts(&b.effects()).len(), 1);
    refused(&mut b, 6, "g6", 503, "VaultBusy");
    // At most the burst, however long the bucket stays unused.
    a.advance(3600);
    for id in 10..13 {
        a.get(id, &format!("n{id}"));
    }
    assert_eq!(Worker::callouts(&a.effects()).len(), 3);
    refused(&mut a, 13, "n13", 503, "VaultBusy");
}

#[test]
fn a_fetch_budget_that_cannot_be_updated_fails_closed() {
    let shared = new_shared();
    let mut w = Worker::new(&shared);
    w.get(1, "g");
    assert_eq!(Worker::callouts(&w.effects()).len(), 1);
    // Every compare-and-set loses: no token, no fetch.
    w.host.race_after_read = true;
    refused(&mut w, 2, "h", 503, "VaultBusy");
    assert!(w.engine.fetches_under_way().1 == 1);
    w.host.race_after_read = false;
    w.get(3, "h");
    assert_eq!(Worker::callouts(&w.effects()).len(), 1);
}

#[test]
fn vault_busy_tells_the_client_when_to_retry() {
    let e = LocalError::vault_busy();
    assert_eq!((e.status(), e.code.retry_after()), (503, Some("1")));
    assert!(e.code.retryable());
    assert_eq!(ErrorCode::VaultUnavailable.retry_after(), None);
}

#[test]
fn the_caches_are_bounded_and_drop_the_least_recently_used() {
    let bounds =
        r#"{"vault": {"token": "t"}, "cache": {"max_grants": 2, "max_unknown_grants": 2}}"#;
    let mut w = Worker::with_config(&new_shared(), bounds);
    let fetch = |w: &mut Worker, id: u32, grant: &str, status: u32| {
        w.get(id, grant);
        let e = w.effects();
        let t = Worker::callouts(&e);
        assert_eq!(t.len(), 1, "{grant}: {e:?}");
        w.answer(t[0], status, &record(KEY_A));
        w.effects();
        w.done(id);
    };
    fetch(&mut w, 1, "g1", 200);
    fetch(&mut w, 2, "g2", 200);
    assert_eq!(w.get(3, "g1"), Action::Continue);
    w.effects();
    fetch(&mut w, 4, "g3", 200);
    // g2 was the least recently used: dropped from this worker's cache (shared data still
    // has it); g1 and g3 stay.
    assert_eq!(w.engine.metric_pending("grant_sigv4.cache_shared_hits"), 0);
    assert_eq!(w.get(5, "g3"), Action::Continue);
    assert_eq!(w.get(6, "g2"), Action::Continue);
    assert_eq!(w.engine.metric_pending("grant_sigv4.cache_shared_hits"), 1);
    // g2 is back in, and g1 (now the least recently used) went out; g3 stays.
    assert_eq!(w.get(7, "g3"), Action::Continue);
    assert_eq!(w.engine.metric_pending("grant_sigv4.cache_shared_hits"), 1);
    assert_eq!(w.get(8, "g1"), Action::Continue);
    assert_eq!(w.engine.metric_pending("grant_sigv4.cache_shared_hits"), 2);
    w.effects();
    // Unknown grants: two remembered, the least recently used forgotten first.
    fetch(&mut w, 18, "u1", 404);
    fetch(&mut w, 19, "u2", 404);
    refused(&mut w, 20, "u1", 403, "GrantNotFound");
    fetch(&mut w, 21, "u3", 404);
    refused(&mut w, 22, "u1", 403, "GrantNotFound");
    refused(&mut w, 23, "u3", 403, "GrantNotFound");
    fetch(&mut w, 24, "u2", 404);
}

#[test]
fn one_worker_refreshes_a_grant_and_the_others_take_its_key() {
    let shared = new_shared();
    let mut a = Worker::new(&shared);
    let mut b = Worker::new(&shared);
    warm(&mut a, 1, KEY_A);
    assert_eq!(b.get(1, "g"), Action::Continue);
    // Both use it.
    b.get(2, "g");
    b.effects();
    a.get(2, "g");
    a.effects();
    // Both are due at 240 s: one callout for the process.
    a.advance(240);
    b.advance(240);
    a.tick();
    b.tick();
    let (ea, eb) = (a.effects(), b.effects());
    assert_eq!(Worker::callouts(&ea).len(), 1);
    assert!(eb.is_empty(), "{eb:?}");
    a.answer(Worker::callouts(&ea)[0], 200, &record(KEY_B));
    a.effects();
    // b looks again a second later and takes the new key from shared data.
    b.advance(1);
    b.tick();
    assert!(b.effects().is_empty());
    assert_eq!(b.get(3, "g"), Action::Continue);
    assert_eq!(b.effects(), vec![signed(3, KEY_B)]);
    assert_eq!(b.engine.metric_pending("grant_sigv4.vault_callouts"), 0);
}

#[test]
fn one_worker_probes_a_failing_vault_for_a_stale_grant_and_the_backoff_is_shared() {
    let shared = new_shared();
    let mut a = Worker::new(&shared);
    let mut b = Worker::new(&shared);
    warm(&mut a, 1, KEY_A);
    b.get(1, "g");
    b.effects();
    // Past the TTL, idle until now: a's request starts the one fetch, b's signs stale.
    a.advance(301);
    b.advance(301);
    assert_eq!(a.get(2, "g"), Action::Continue);
    let ea = a.effects();
    assert_eq!(Worker::callouts(&ea).len(), 1);
    assert_eq!(b.get(2, "g"), Action::Continue);
    assert_eq!(b.effects(), vec![signed(2, KEY_A)]);
    a.answer(Worker::callouts(&ea)[0], 503, "{}");
    // The backoff (at most 1 s after the first failure) holds for b too.
    b.tick();
    b.get(3, "g");
    assert_eq!(b.effects(), vec![signed(3, KEY_A)]);
    b.advance(1);
    a.advance(1);
    b.tick();
    a.tick();
    let (ea, eb) = (a.effects(), b.effects());
    assert_eq!(
        Worker::callouts(&ea).len() + Worker::callouts(&eb).len(),
        1,
        "one probe for the process: {ea:?} {eb:?}"
    );
}

#[test]
fn a_worker_without_the_grant_takes_another_workers_stale_key_rather_than_wait() {
    let shared = new_shared();
    let mut a = Worker::new(&shared);
    let mut b = Worker::new(&shared);
    warm(&mut a, 1, KEY_A);
    // b never saw the grant; past its TTL it takes a's stale key and probes the vault once.
    b.advance(301);
    assert_eq!(b.get(1, "g"), Action::Continue);
    let e = b.effects();
    assert_eq!(
        e,
        vec![Effect::Callout(1, RECORD_PATH.into()), signed(1, KEY_A)]
    );
    assert_eq!(b.engine.metric_pending("grant_sigv4.cache_stale_serves"), 1);
    b.answer(1, 503, "{}");
    assert_eq!(b.get(2, "g"), Action::Continue);
    assert_eq!(b.effects(), vec![signed(2, KEY_A)]);
}

#[path = "request_body_tests.rs"]
mod request_body;
#[path = "sds_token_tests.rs"]
mod sds_token_tests;
#[path = "vault_token_tests.rs"]
mod vault_token_tests;

#[test]
fn every_metric_the_engine_defines_is_in_all_metrics() {
    // A host that must define its metrics when the configuration loads (the dynamic
    // module) defines `all_metrics()`: a metric missing there would never be counted.
    let w = Worker::new(&new_shared());
    let all: Vec<String> = super::all_metrics().into_iter().map(|(_, n)| n).collect();
    let missing: Vec<&String> = w
        .host
        .metric_names
        .iter()
        .filter(|n| !all.contains(n))
        .collect();
    assert!(!w.host.metric_names.is_empty());
    assert!(missing.is_empty(), "not in all_metrics(): {missing:?}");
}
