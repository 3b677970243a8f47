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
