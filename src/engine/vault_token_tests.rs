//! The filter's own vault token (`vault_token.rs`) as event sequences: lookup, renewal,
//! expiry, AppRole login, one login per process, re-login after a refusal.

use super::*;
use crate::engine::vault_token::{self, AUTH_FAILURES, LOGINS, RENEWALS};

const LOOKUP: &str = vault_auth::LOOKUP_SELF_PATH;
const RENEW: &str = vault_auth::RENEW_SELF_PATH;
const LOGIN: &str = "/v1/auth/approle/login";

fn approle_config() -> String {
    format!(
        r#"{{"vault": {{"auth": {{"method": "approle", "role_id": "role-1",
        "secret_id_env": "SECRET_ID"}}}}, {CACHE}}}"#
    )
}

/// A worker with method `approle`, its secret id from the environment.
fn approle_worker(shared: &SharedData) -> Worker {
    let env = |n: &str| (n == "SECRET_ID").then(|| String::from("secret-id-1"));
    Worker::bare_env(shared, &approle_config(), env)
}

/// Two AppRole workers on one shared store, A's first request (grant `g`) having started
/// the login: the store, A, B and the login's callout token.
fn two_workers_a_logging_in() -> (SharedData, Worker, Worker, u32) {
    let shared = new_shared();
    let mut a = approle_worker(&shared);
    let b = approle_worker(&shared);
    a.get(1, "g");
    let t = one_callout(&mut a, LOGIN);
    (shared, a, b, t)
}

fn lease(token: &str, ttl: u64, renewable: bool) -> String {
    format!(
        r#"{{"auth": {{"client_token": "{token}", "lease_duration": {ttl}, "renewable": {renewable},
        "policies": ["default", "grant-sigv4-filter"]}}}}"#
    )
}

fn without_shared_writes(effects: Vec<Effect>) -> Vec<Effect> {
    effects
        .into_iter()
        .filter(|e| !matches!(e, Effect::SharedWrite(..)))
        .collect()
}

fn paths(effects: &[Effect]) -> Vec<(u32, String)> {
    effects
        .iter()
        .filter_map(|e| match e {
            Effect::Callout(t, p) => Some((*t, p.clone())),
            _ => None,
        })
        .collect()
}

/// The one callout started since the last look, to `path`.
fn one_callout(w: &mut Worker, path: &str) -> u32 {
    let c = paths(&w.effects());
    assert_eq!(c.len(), 1, "{c:?}");
    assert_eq!(c[0].1, path);
    c[0].0
}

fn token_worker(shared: &SharedData, lookup: &str) -> Worker {
    let mut w = Worker::bare(shared, &config(""));
    // The first tick comes early, for the lookup; then every second.
    assert_eq!(w.host.tick_ms, vault_token::FIRST_TICK_MS);
    w.tick();
    assert_eq!(w.host.tick_ms, TICK_MS);
    let t = one_callout(&mut w, LOOKUP);
    assert_eq!(w.host.callout_method, "GET");
    assert_eq!(w.host.callout_token.as_deref(), Some("vault-token"));
    w.answer(t, 200, lookup);
    w.effects();
    w
}

#[test]
fn a_periodic_token_is_renewed_at_about_two_thirds_of_its_ttl_and_requests_never_wait() {
    let shared = new_shared();
    let mut w = token_worker(
        &shared,
        r#"{"data": {"ttl": 15, "renewable": true, "period": 15, "policies": ["grant-sigv4-filter"]}}"#,
    );
    warm(&mut w, 1, KEY_A);
    let mut renewals = 0;
    for _ in 0..60 {
        w.advance(1);
        w.tick();
        // Requests are signed from the cache whatever the token does.
        assert_eq!(w.get(100, "g"), Action::Continue);
        w.done(100);
        let c = paths(&w.effects());
        if let Some((t, p)) = c.first() {
            assert_eq!(p, RENEW);
            assert_eq!(w.host.callout_method, "POST");
            assert_eq!(w.host.callout_token.as_deref(), Some("vault-token"));
            let left = w.engine.vault_token_left(w.host.now_ms / 1000).unwrap();
            assert!((5..=6).contains(&left), "renewed with {left}s left");
            w.answer(*t, 200, &lease("", 15, true));
            renewals += 1;
        }
        assert!(w.engine.vault_token_left(w.host.now_ms / 1000).unwrap() > 0);
    }
    // 60 s of a 15 s period: a renewal every 9-10 s.
    assert!((6..=7).contains(&renewals), "{renewals}");
    assert_eq!(
        w.engine.auth_metric_pending(RENEWALS),
        0,
        "flushed on ticks"
    );
    assert!(w
        .host
        .recorded
        .get(vault_token::TTL_GAUGE)
        .is_some_and(|s| (1..=15).contains(s)));
}

#[test]
fn a_renewal_refused_makes_the_token_not_renewable_and_its_expiry_is_named() {
    let shared = new_shared();
    let mut w = token_worker(&shared, r#"{"data": {"ttl": 30, "renewable": true}}"#);
    warm(&mut w, 1, KEY_A);
    w.advance(20);
    w.tick();
    let t = one_callout(&mut w, RENEW);
    w.answer(t, 403, r#"{"errors": ["permission denied"]}"#);
    assert_eq!(w.engine.auth_metric_pending(AUTH_FAILURES), 1);
    for _ in 0..20 {
        w.advance(1);
        w.tick();
        assert!(paths(&w.effects()).is_empty(), "no renewal once refused");
    }
    // Expired: a new grant's read is refused, and the reply says why.
    w.get(2, "other");
    let t = Worker::callouts(&w.effects())[0];
    w.answer(t, 403, r#"{"errors": ["permission denied"]}"#);
    assert_eq!(
        w.effects(),
        vec![Effect::Replied(2, 503, "VaultUnavailable")]
    );
    assert!(
        w.host
            .reply_message
            .contains("the filter's vault token expired at 2023-11-14T22:13:50Z"),
        "{}",
        w.host.reply_message
    );
    // The cached grant is still served (stale once past its TTL).
    assert_eq!(w.get(3, "g"), Action::Continue);
}

#[test]
fn a_renewal_that_fails_backs_off_and_is_tried_again() {
    let shared = new_shared();
    let mut w = token_worker(&shared, r#"{"data": {"ttl": 60, "renewable": true}}"#);
    w.advance(40);
    w.tick();
    let t = one_callout(&mut w, RENEW);
    w.answer(t, 503, "sealed");
    w.tick();
    assert!(paths(&w.effects()).is_empty(), "backs off");
    w.advance(1);
    w.tick();
    let t = one_callout(&mut w, RENEW);
    w.answer(t, 500, "");
    w.advance(1);
    w.tick();
    assert!(paths(&w.effects()).is_empty(), "backs off longer");
    w.advance(1);
    w.tick();
    let t = one_callout(&mut w, RENEW);
    w.answer(t, 200, &lease("", 60, true));
    assert_eq!(w.engine.vault_token_left(w.host.now_ms / 1000), Some(60));
}

#[test]
fn one_lookup_per_process_the_other_workers_take_it_from_shared_data() {
    let shared = new_shared();
    let _a = token_worker(&shared, r#"{"data": {"ttl": 100, "renewable": true}}"#);
    let mut b = Worker::bare(&shared, &config(""));
    b.tick();
    assert!(paths(&b.effects()).is_empty());
    assert_eq!(b.engine.vault_token_left(b.host.now_ms / 1000), Some(100));
}

#[test]
fn approle_a_request_before_the_first_login_waits_for_it() {
    let shared = new_shared();
    let mut w = approle_worker(&shared);
    assert_eq!(w.get(1, "g"), Action::Pause);
    let t = one_callout(&mut w, LOGIN);
    assert_eq!(w.host.callout_method, "POST");
    assert_eq!(w.host.callout_token, None, "a login carries no token");
    let body: serde_json::Value = serde_json::from_slice(&w.host.callout_body_sent).unwrap();
    assert_eq!(body["role_id"], "role-1");
    assert_eq!(body["secret_id"], "secret-id-1");
    // A second request for another grant waits too: still one login.
    assert_eq!(w.get(2, "h"), Action::Pause);
    assert!(w.effects().is_empty());
    w.answer(t, 200, &lease("s.login-1", 10, true));
    let c = paths(&w.effects());
    assert_eq!(c.len(), 2, "both reads start: {c:?}");
    assert_eq!(w.host.callout_token.as_deref(), Some("s.login-1"));
    w.answer(c[0].0, 200, &record(KEY_A));
    assert!(w.effects().contains(&signed(1, KEY_A)));
    assert_eq!(w.engine.auth_metric_pending(LOGINS), 1);
}

#[test]
fn approle_a_failed_login_answers_503_naming_it_and_is_tried_again() {
    let shared = new_shared();
    let mut w = approle_worker(&shared);
    w.get(1, "g");
    let t = one_callout(&mut w, LOGIN);
    w.answer(t, 400, r#"{"errors": ["invalid role or secret ID"]}"#);
    assert_eq!(
        without_shared_writes(w.effects()),
        vec![Effect::Replied(1, 503, "VaultUnavailable")]
    );
    assert!(
        w.host.reply_message.contains("vault login failed")
            && w.host.reply_message.contains("invalid role or secret ID"),
        "{}",
        w.host.reply_message
    );
    assert!(!w.host.reply_message.contains("secret-id-1"));
    assert_eq!(w.engine.auth_metric_pending(AUTH_FAILURES), 1);
    assert_eq!(w.engine.fetches_under_way(), (0, 0));
    // Backed off: the next request waits without a login, then the tick logs in.
    w.get(2, "g");
    assert!(paths(&w.effects()).is_empty());
    w.advance(1);
    w.tick();
    let t = one_callout(&mut w, LOGIN);
    w.answer(t, 200, &lease("s.login-2", 10, true));
    let t = one_callout(&mut w, RECORD_PATH);
    w.answer(t, 200, &record(KEY_A));
    assert!(w.effects().contains(&signed(2, KEY_A)));
}

#[test]
fn approle_one_login_per_process_shared_with_the_other_workers() {
    let (shared, mut a, mut b, t) = two_workers_a_logging_in();
    // B needs a token while A logs in: it waits, and does not log in itself.
    assert_eq!(b.get(1, "g"), Action::Pause);
    b.tick();
    assert!(paths(&b.effects()).is_empty());
    a.answer(t, 200, &lease("s.shared", 10, true));
    a.effects();
    // B's next tick takes the token and starts its read with it.
    b.tick();
    let t = one_callout(&mut b, RECORD_PATH);
    assert_eq!(b.host.callout_token.as_deref(), Some("s.shared"));
    b.answer(t, 200, &record(KEY_A));
    assert!(b.effects().contains(&signed(1, KEY_A)));
    assert_eq!(b.engine.auth_metric_pending(LOGINS), 0);
    // A new worker takes the token on its first read, with no login.
    let mut c = approle_worker(&shared);
    c.get(1, "h");
    one_callout(&mut c, "/v1/secret/data/aws/grants/h");
    assert_eq!(c.host.callout_token.as_deref(), Some("s.shared"));
}

#[test]
fn a_read_waiting_for_another_workers_login_goes_out_when_a_later_read_took_the_token() {
    let (_shared, mut a, mut b, t) = two_workers_a_logging_in();
    assert_eq!(b.get(1, "g"), Action::Pause);
    a.answer(t, 200, &lease("s.shared", 600, true));
    a.effects();
    // A second request of B takes the token for its own read, before B's tick.
    b.get(2, "h");
    one_callout(&mut b, "/v1/secret/data/aws/grants/h");
    // B's tick sends the read that waited, with the token (not a 503 ten seconds later).
    b.advance(1);
    b.tick();
    one_callout(&mut b, RECORD_PATH);
    assert_eq!(b.host.callout_token.as_deref(), Some("s.shared"));
}

#[test]
fn approle_renews_then_logs_in_again_as_the_max_ttl_nears_and_requests_never_wait() {
    let (_shared, mut a, mut b, t) = two_workers_a_logging_in();
    a.answer(t, 200, &lease("s.t0", 10, true));
    let t = Worker::callouts(&a.effects())[0];
    a.answer(t, 200, &record(KEY_A));
    a.done(1);
    a.effects();
    // A 30 s max TTL: renewals give back 10, 10, then what is left.
    let max_end = a.host.now_ms / 1000 + 30;
    let (mut logins, mut renewals, mut token) = (1, 0, 0);
    for _ in 0..90 {
        for w in [&mut a, &mut b] {
            w.advance(1);
        }
        for w in [&mut a, &mut b] {
            w.tick();
            let now = w.host.now_ms / 1000;
            for (t, p) in paths(&w.effects()) {
                if p == RENEW {
                    renewals += 1;
                    let end = (now + 10).min(max_end + 30 * (logins - 1));
                    w.answer(t, 200, &lease("", end - now, true));
                } else {
                    assert_eq!(p, LOGIN);
                    logins += 1;
                    token += 1;
                    w.answer(t, 200, &lease(&format!("s.t{token}"), 10, true));
                }
            }
        }
        // Signing from the cache never waits.
        assert_eq!(a.get(50, "g"), Action::Continue);
        a.done(50);
        a.effects();
        let now = a.host.now_ms / 1000;
        assert!(a.engine.vault_token_left(now).is_some_and(|l| l > 0));
    }
    // 90 s with a 30 s max TTL: a new login about every 30 s, renewals between.
    assert!((3..=5).contains(&logins), "logins {logins}");
    assert!(renewals >= 6, "renewals {renewals}");
}

#[test]
fn approle_a_refused_read_logs_in_again_and_is_tried_once_more() {
    let shared = new_shared();
    let mut w = approle_worker(&shared);
    w.get(1, "g");
    let t = one_callout(&mut w, LOGIN);
    w.answer(t, 200, &lease("s.revoked", 60, true));
    let t = one_callout(&mut w, RECORD_PATH);
    w.answer(t, 403, r#"{"errors": ["permission denied"]}"#);
    assert_eq!(w.engine.auth_metric_pending(AUTH_FAILURES), 1);
    let t = one_callout(&mut w, LOGIN);
    w.answer(t, 200, &lease("s.new", 60, true));
    let t = one_callout(&mut w, RECORD_PATH);
    assert_eq!(w.host.callout_token.as_deref(), Some("s.new"));
    w.answer(t, 200, &record(KEY_A));
    assert!(w.effects().contains(&signed(1, KEY_A)));
    // Refused again after the new login: the refusal stands (no loop of logins).
    w.get(2, "h");
    let t = Worker::callouts(&w.effects())[0];
    w.answer(t, 403, "{}");
    let t = one_callout(&mut w, LOGIN);
    w.answer(t, 200, &lease("s.newer", 60, true));
    let t = Worker::callouts(&w.effects())[0];
    w.answer(t, 403, "{}");
    assert_eq!(
        without_shared_writes(w.effects()),
        vec![Effect::Replied(2, 503, "VaultUnavailable")]
    );
    assert_eq!(w.engine.auth_metric_pending(AUTH_FAILURES), 3);
    assert_eq!(w.engine.fetches_under_way(), (0, 0));
    // The policy refuses those reads, not the token: no more logins for them.
    w.get(3, "k");
    let t = Worker::callouts(&w.effects())[0];
    w.answer(t, 403, "{}");
    assert_eq!(
        without_shared_writes(w.effects()),
        vec![Effect::Replied(3, 503, "VaultUnavailable")]
    );
    assert_eq!(w.engine.auth_metric_pending(LOGINS), 3);
}

#[test]
fn approle_a_worker_that_sees_a_refusal_does_not_take_the_refused_token_again() {
    let (_shared, mut a, mut b, t) = two_workers_a_logging_in();
    a.answer(t, 200, &lease("s.old", 60, true));
    a.effects();
    // B reads with the shared token, which was revoked meanwhile.
    b.get(1, "h");
    let t = Worker::callouts(&b.effects())[0];
    assert_eq!(b.host.callout_token.as_deref(), Some("s.old"));
    b.answer(t, 403, "{}");
    // B logs in (A holds no claim), and its read goes again with the new token.
    let t = one_callout(&mut b, LOGIN);
    b.answer(t, 200, &lease("s.fresh", 60, true));
    let t = one_callout(&mut b, "/v1/secret/data/aws/grants/h");
    assert_eq!(b.host.callout_token.as_deref(), Some("s.fresh"));
    b.answer(t, 200, &record(KEY_B));
    assert!(b.effects().contains(&signed(1, KEY_B)));
    // A takes the new token on its tick.
    a.tick();
    a.get(2, "k");
    Worker::callouts(&a.effects());
    assert_eq!(a.host.callout_token.as_deref(), Some("s.fresh"));
}

#[test]
fn a_vault_proxy_needs_no_token_calls() {
    let shared = new_shared();
    let cfg = format!(r#"{{"vault": {{"auth": {{"method": "proxy"}}}}, {CACHE}}}"#);
    let mut w = Worker::bare(&shared, &cfg);
    assert_eq!(w.host.tick_ms, TICK_MS, "no early tick: nothing to look up");
    for _ in 0..5 {
        w.advance(1);
        w.tick();
    }
    assert!(w.effects().is_empty());
}
