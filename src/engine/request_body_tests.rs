//! Bodies hashed by the host (`request_body.rs`): buffered, handed in, signed with their hash.

use super::*;
use crate::sigv4;

/// SHA-256 of `hello`.
const HELLO_SHA256: &str = "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824";

fn hashing_worker(shared: &SharedData, extra: &str) -> Worker {
    let mut w = Worker::with_config(shared, &config(extra));
    w.engine.hash_bodies_in_host();
    w
}

/// A POST with a 5-byte body and no payload hash, for `grant`.
fn post(w: &mut Worker, id: u32, grant: &str, extra: &[(&str, &str)]) -> Action {
    let mut headers: Vec<(&str, &[u8])> = vec![
        (":method", b"POST"),
        (":path", b"/"),
        (":authority", STS.as_bytes()),
        ("x-grant-id", grant.as_bytes()),
        ("content-type", b"application/x-www-form-urlencoded"),
    ];
    for (k, v) in extra {
        headers.push((k, v.as_bytes()));
    }
    if !extra.iter().any(|(k, _)| *k == "content-length") {
        headers.push(("content-length", b"5"));
    }
    w.engine
        .on_request_headers(&mut w.host, id, &headers, false)
}

/// The payload hash the last signed request was given.
fn signed_payload_hash(w: &Worker) -> Option<String> {
    w.host
        .last_edits
        .as_ref()?
        .set
        .iter()
        .find(|(k, _)| k == "x-amz-content-sha256")
        .map(|(_, v)| v.clone())
}

#[test]
fn a_body_is_buffered_then_signed_with_its_hash_after_the_fetch() {
    let mut w = hashing_worker(&new_shared(), "");
    assert_eq!(post(&mut w, 1, "g", &[]), Action::BufferBody);
    // Nothing is fetched before the body is complete.
    assert_eq!(w.effects(), vec![]);
    assert!(w.engine.awaits_body(1));
    assert_eq!(
        w.engine.on_request_body(&mut w.host, 1, HELLO_SHA256),
        Action::Pause
    );
    assert!(!w.engine.awaits_body(1));
    let t = Worker::callouts(&w.effects())[0];
    w.answer(t, 200, &record(KEY_A));
    let e = w.effects();
    assert!(e.contains(&signed(1, KEY_A)), "{e:?}");
    assert!(e.contains(&Effect::Resumed(1)), "{e:?}");
    assert_eq!(signed_payload_hash(&w).as_deref(), Some(HELLO_SHA256));
    w.done(1);
    assert_eq!(w.engine.requests_tracked(), 0);
}

#[test]
fn with_the_grant_cached_the_body_event_signs_at_once() {
    let mut w = hashing_worker(&new_shared(), "");
    warm(&mut w, 1, KEY_A);
    assert_eq!(post(&mut w, 2, "g", &[]), Action::BufferBody);
    let upper = HELLO_SHA256.to_ascii_uppercase();
    assert_eq!(
        w.engine.on_request_body(&mut w.host, 2, &upper),
        Action::Continue
    );
    assert_eq!(w.effects(), vec![signed(2, KEY_A)]);
    assert_eq!(signed_payload_hash(&w).as_deref(), Some(HELLO_SHA256));
    assert_eq!(w.engine.metric_pending("grant_sigv4.cache_hits"), 1);
}

#[test]
fn a_body_that_grows_past_the_limit_is_refused_413() {
    let mut w = hashing_worker(&new_shared(), r#", "max_body_bytes": 16"#);
    assert_eq!(
        post(&mut w, 2, "g", &[("content-length", "10")]),
        Action::BufferBody
    );
    w.engine.on_request_body_too_large(&mut w.host, 2);
    assert_eq!(w.effects(), vec![Effect::Replied(2, 413, "BodyTooLarge")]);
    assert_eq!(
        w.engine
            .metric_pending("grant_sigv4.local_errors.BodyTooLarge"),
        1
    );
    assert!(!w.engine.awaits_body(2));
    w.done(2);
    assert_eq!(w.engine.requests_tracked(), 0);
}

#[test]
fn a_content_length_over_the_limit_is_refused_before_buffering() {
    let mut w = hashing_worker(&new_shared(), r#", "max_body_bytes": 16"#);
    assert_eq!(
        post(&mut w, 1, "g", &[("content-length", "17")]),
        Action::Pause
    );
    assert_eq!(w.effects(), vec![Effect::Replied(1, 413, "BodyTooLarge")]);
    assert!(!w.engine.awaits_body(1));
}

#[test]
fn a_host_that_does_not_hash_bodies_still_requires_the_hash() {
    let mut w = Worker::new(&new_shared());
    assert_eq!(post(&mut w, 1, "g", &[]), Action::Pause);
    assert_eq!(
        w.effects(),
        vec![Effect::Replied(1, 400, "PayloadHashRequired")]
    );
}

#[test]
fn a_known_hash_and_an_unsigned_s3_body_are_not_buffered() {
    let mut w = hashing_worker(&new_shared(), "");
    warm(&mut w, 1, KEY_A);
    let h = "ab".repeat(32);
    assert_eq!(
        post(&mut w, 2, "g", &[("x-amz-content-sha256", &h)]),
        Action::Continue
    );
    let put: [(&str, &[u8]); 5] = [
        (":method", b"PUT"),
        (":path", b"/bucket/key"),
        (":authority", b"s3.us-east-1.amazonaws.com"),
        ("x-grant-id", b"g"),
        ("content-length", b"5"),
    ];
    assert_eq!(
        w.engine.on_request_headers(&mut w.host, 3, &put, false),
        Action::Continue
    );
    assert_eq!(
        signed_payload_hash(&w).as_deref(),
        Some(sigv4::UNSIGNED_PAYLOAD)
    );
    assert_eq!(w.effects(), vec![signed(2, KEY_A), signed(3, KEY_A)]);
}

#[test]
fn a_request_that_goes_away_while_its_body_is_buffered_leaves_nothing() {
    let mut w = hashing_worker(&new_shared(), "");
    assert_eq!(post(&mut w, 1, "g", &[]), Action::BufferBody);
    w.done(1);
    assert_eq!(w.engine.requests_tracked(), 0);
    assert_eq!(w.engine.fetches_under_way(), (0, 0));
}

#[test]
fn a_body_that_was_not_awaited_is_refused_never_forwarded() {
    let mut w = hashing_worker(&new_shared(), "");
    warm(&mut w, 1, KEY_A);
    assert_eq!(w.get(2, "g"), Action::Continue);
    w.effects();
    assert_eq!(
        w.engine.on_request_body(&mut w.host, 2, HELLO_SHA256),
        Action::Pause
    );
    assert_eq!(w.effects(), vec![Effect::Replied(2, 500, "InternalError")]);
}

#[test]
fn bodies_of_a_cold_burst_share_one_fetch() {
    let mut w = hashing_worker(&new_shared(), "");
    for id in 1..=3 {
        assert_eq!(post(&mut w, id, "g", &[]), Action::BufferBody);
        assert_eq!(
            w.engine.on_request_body(&mut w.host, id, HELLO_SHA256),
            Action::Pause
        );
    }
    let e = w.effects();
    assert_eq!(Worker::callouts(&e).len(), 1, "{e:?}");
    w.answer(Worker::callouts(&e)[0], 200, &record(KEY_A));
    let e = w.effects();
    for id in 1..=3 {
        assert!(e.contains(&signed(id, KEY_A)), "{e:?}");
        assert!(e.contains(&Effect::Resumed(id)), "{e:?}");
    }
}
