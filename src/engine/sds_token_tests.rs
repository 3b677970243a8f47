//! `vault.token_sds` in the engine: refused unless the host reads SDS secrets; the token the
//! host hands in is sent, and a new one is looked up again and used from then on.

use super::*;

fn paths(e: &[Effect]) -> Vec<&str> {
    e.iter()
        .filter_map(|x| match x {
            Effect::Callout(_, p) => Some(p.as_str()),
            _ => None,
        })
        .collect()
}

const SDS: &str = r#"{"vault": {"token_sds": "vault-token"}}"#;

#[test]
fn a_host_that_cannot_read_sds_refuses_the_key() {
    let shared = SharedData::default();
    let mut w = Worker::bare(&shared, &config(""));
    assert!(!w.engine.on_configure(&mut w.host, SDS.as_bytes(), |_| None));
    let mut e = Engine::new(Rc::default());
    assert!(e
        .host_refuses(&Config::parse(SDS.as_bytes()).unwrap())
        .is_some());
    e.vault_token_from_host();
    assert!(e
        .host_refuses(&Config::parse(SDS.as_bytes()).unwrap())
        .is_none());
}

#[test]
fn the_token_handed_in_is_sent_and_a_new_one_looked_up_again() {
    let shared = SharedData::default();
    let mut w = Worker::bare(&shared, &config(""));
    let mut engine = Engine::new(Rc::default());
    engine.vault_token_from_host();
    assert!(engine.on_configure(&mut w.host, SDS.as_bytes(), |_| None));
    w.engine = engine;
    assert!(w.engine.vault_token_is(""));
    assert!(w.engine.replace_vault_token(&mut w.host, "hvs.one"));
    w.tick();
    assert_eq!(w.host.callout_token.as_deref(), Some("hvs.one"));
    let e = w.effects();
    assert_eq!(paths(&e), [vault_auth::LOOKUP_SELF_PATH], "{e:?}");
    assert!(w.engine.replace_vault_token(&mut w.host, "hvs.one"));
    assert!(
        paths(&w.effects()).is_empty(),
        "the same token changes nothing"
    );
    assert!(w.engine.replace_vault_token(&mut w.host, "hvs.two"));
    assert!(w.engine.vault_token_is("hvs.two"));
    w.advance(1);
    w.tick();
    assert_eq!(w.host.callout_token.as_deref(), Some("hvs.two"));
    let e = w.effects();
    assert_eq!(paths(&e), [vault_auth::LOOKUP_SELF_PATH], "{e:?}");
    assert_eq!(w.get(1, "g"), Action::Pause);
    assert_eq!(w.host.callout_token.as_deref(), Some("hvs.two"));
    // A configured token is not the host's to replace.
    let mut plain = Worker::new(&shared);
    assert!(!plain.engine.replace_vault_token(&mut plain.host, "x"));
}

#[test]
fn an_engine_whose_token_is_kept_elsewhere_only_takes_it_from_shared_data() {
    let shared = SharedData::default();
    // The engine that keeps the token (the main thread's) looks it up and shares it.
    let mut main = Worker::bare(&shared, &config(""));
    let mut worker = Worker::bare(&shared, &config(""));
    worker.engine.vault_token_kept_elsewhere();
    worker.tick();
    assert!(paths(&worker.effects()).is_empty(), "no lookup of its own");
    main.tick();
    let e = main.effects();
    assert_eq!(paths(&e), [vault_auth::LOOKUP_SELF_PATH]);
    let Some(Effect::Callout(t, _)) = e.iter().find(|x| matches!(x, Effect::Callout(..))) else {
        panic!("{e:?}");
    };
    main.answer(
        *t,
        200,
        r#"{"data": {"ttl": 30, "renewable": true, "policies": ["p"]}}"#,
    );
    // Past the renewal time: the main engine renews, the other one does not.
    worker.advance(25);
    main.advance(25);
    worker.tick();
    assert!(paths(&worker.effects()).is_empty(), "no renewal of its own");
    assert_eq!(worker.engine.vault_token_left(T0_MS / 1000 + 25), Some(5));
    main.tick();
    assert_eq!(paths(&main.effects()), [vault_auth::RENEW_SELF_PATH]);
}
