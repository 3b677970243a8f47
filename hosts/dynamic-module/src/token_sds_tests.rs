//! Tests only: the vault token from an SDS secret (`vault.token_sds`), with the fake Envoy
//! holding the secret: the token read is the one sent, a changed secret is used from the next
//! event on, and a secret Envoy does not have refuses the configuration.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use crate::fake_envoy::{self, envoy_chunks};
use crate::hooks::*;
use std::ffi::c_void;

pub(crate) fn s(x: &str) -> Vec<u8> {
    x.as_bytes().to_vec()
}

pub(crate) fn config_new(ptr: usize, json: &str) -> *const c_void {
    envoy_dynamic_module_on_program_init();
    envoy_dynamic_module_on_http_filter_config_new(
        ptr as *mut c_void,
        envoy_chunks(&[s("grant-sigv4")])[0],
        envoy_chunks(&[s(json)])[0],
    )
}

/// A request for `grant` on stream `envoy`: the X-Vault-Token of the grant read it starts.
pub(crate) fn read_token(config: *const c_void, envoy: usize, grant: &str) -> Vec<u8> {
    fake_envoy::with(|f| {
        f.streams.insert(
            envoy,
            fake_envoy::Stream {
                alive: true,
                request_headers: vec![
                    (s(":method"), s("GET")),
                    (
                        s(":path"),
                        s("/?Action=GetCallerIdentity&Version=2011-06-15"),
                    ),
                    (s(":authority"), s("sts.amazonaws.com")),
                    (s(":scheme"), s("https")),
                    (s("x-grant-id"), s(grant)),
                ],
                ..Default::default()
            },
        )
    });
    let filter = envoy_dynamic_module_on_http_filter_new(config, envoy as *mut c_void);
    assert!(!filter.is_null());
    let st =
        envoy_dynamic_module_on_http_filter_request_headers(envoy as *mut c_void, filter, true);
    assert_eq!(st, 1, "the request waits for its grant");
    let c = fake_envoy::with(|f| f.streams[&envoy].callouts.last().cloned()).expect("a grant read");
    envoy_dynamic_module_on_http_filter_stream_complete(envoy as *mut c_void, filter);
    envoy_dynamic_module_on_http_filter_destroy(filter);
    fake_envoy::with(|f| f.streams.get_mut(&envoy).unwrap().alive = false);
    c.header(b"x-vault-token").unwrap_or_default().to_vec()
}

#[test]
fn the_token_is_read_from_the_secret_and_follows_its_updates() {
    fake_envoy::reset();
    fake_envoy::with(|f| {
        f.secrets
            .insert("vault-token".into(), s("hvs.first-SDS-token\n"));
    });
    let cfg = config_new(0x5d5_0000, r#"{"vault": {"token_sds": "vault-token"}}"#);
    assert!(!cfg.is_null());
    assert_eq!(
        read_token(cfg, 0x5d5_0100, "team-a"),
        b"hvs.first-SDS-token"
    );
    fake_envoy::with(|f| {
        f.secrets
            .insert("vault-token".into(), s("hvs.second-SDS-token"));
    });
    assert_eq!(
        read_token(cfg, 0x5d5_0200, "team-b"),
        b"hvs.second-SDS-token"
    );
    // A value that is no token: the last good one stays, and the log says so without it.
    fake_envoy::with(|f| {
        f.secrets.insert("vault-token".into(), s("two words"));
    });
    assert_eq!(
        read_token(cfg, 0x5d5_0300, "team-c"),
        b"hvs.second-SDS-token"
    );
    let logs = fake_envoy::with(|f| f.logs.join("\n"));
    assert!(logs.contains("no usable token"), "{logs}");
    assert!(
        !logs.contains("SDS-token") && !logs.contains("two words"),
        "{logs}"
    );
    envoy_dynamic_module_on_http_filter_config_destroy(cfg);
}

#[test]
fn a_secret_envoy_does_not_have_refuses_the_configuration() {
    fake_envoy::reset();
    let cfg = config_new(0x5d6_0000, r#"{"vault": {"token_sds": "missing"}}"#);
    assert!(cfg.is_null());
    let logs = fake_envoy::with(|f| f.logs.join("\n"));
    assert!(logs.contains("key \"vault.token_sds\""), "{logs}");
    let both = config_new(
        0x5d7_0000,
        r#"{"vault": {"token": "t", "token_sds": "vault-token"}}"#,
    );
    assert!(both.is_null());
}
