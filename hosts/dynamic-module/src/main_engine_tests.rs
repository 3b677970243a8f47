//! Tests only: the main-thread engine (`main_engine`) keeps the vault token with no request:
//! the AppRole login (and the token lookup) is made when the configuration loads, and a
//! worker's first request is signed with the token it got, with no login of its own.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use crate::fake_envoy::{self, envoy_chunks, envoy_headers, Callout};
use crate::hooks::*;
use crate::token_sds_tests::{config_new, read_token, s};
use std::ffi::c_void;

/// Run the configuration's committed scheduler events (its main engine's ticks).
fn run_config_events(config_envoy: usize, config: *const c_void) -> usize {
    let commits = fake_envoy::take_commits();
    let mut n = 0;
    for (p, id) in commits {
        let owner = fake_envoy::with(|f| f.schedulers.get(&p).map(|s| (s.0, s.1)));
        if owner == Some((true, config_envoy)) {
            envoy_dynamic_module_on_http_filter_config_scheduled(
                config_envoy as *mut c_void,
                config,
                id,
            );
            n += 1;
        }
    }
    n
}

fn answer(config_envoy: usize, config: *const c_void, c: &Callout, body: &str) {
    let pairs = [(s(":status"), s("200"))];
    let bodies = [s(body)];
    let headers = envoy_headers(&pairs);
    let chunks = envoy_chunks(&bodies);
    envoy_dynamic_module_on_http_filter_config_http_callout_done(
        config_envoy as *mut c_void,
        config,
        c.id,
        0,
        headers.as_ptr(),
        headers.len(),
        chunks.as_ptr(),
        chunks.len(),
    );
}

fn path(c: &Callout) -> String {
    String::from_utf8_lossy(c.header(b":path").unwrap()).into_owned()
}

#[test]
fn the_approle_login_is_made_at_configuration_load_and_the_first_request_uses_its_token() {
    fake_envoy::reset();
    let ce = 0x3a1_0000usize;
    let cfg = config_new(
        ce,
        r#"{"vault": {"auth": {"method": "approle", "role_id": "role-main", "secret_id": "sid-main-1"}}}"#,
    );
    assert!(!cfg.is_null());
    // No request at all: the first tick is committed with the configuration.
    assert!(run_config_events(ce, cfg) >= 1);
    let login = fake_envoy::with(|f| f.config_callouts.pop())
        .expect("a login with no request")
        .1;
    assert!(path(&login).ends_with("/approle/login"), "{}", path(&login));
    answer(
        ce,
        cfg,
        &login,
        r#"{"auth": {"client_token": "hvs.main-login", "lease_duration": 600, "renewable": true, "policies": ["p"]}}"#,
    );
    // The first request of a worker reads its grant with that token, and no one logs in
    // again.
    assert_eq!(read_token(cfg, 0x3a1_0100, "team-a"), b"hvs.main-login");
    run_config_events(ce, cfg);
    let more = fake_envoy::with(|f| {
        f.config_callouts
            .iter()
            .map(|(_, c)| path(c))
            .collect::<Vec<_>>()
    });
    assert!(more.iter().all(|p| !p.ends_with("/login")), "{more:?}");
    envoy_dynamic_module_on_http_filter_config_destroy(cfg);
    // A tick committed after the configuration is gone does nothing.
    assert_eq!(run_config_events(ce, cfg), 0);
}

#[test]
fn the_token_is_looked_up_at_configuration_load() {
    fake_envoy::reset();
    let ce = 0x3a2_0000usize;
    let cfg = config_new(ce, r#"{"vault": {"token": "hvs.configured"}}"#);
    assert!(run_config_events(ce, cfg) >= 1);
    let lookup = fake_envoy::with(|f| f.config_callouts.pop())
        .expect("a lookup with no request")
        .1;
    assert_eq!(path(&lookup), "/v1/auth/token/lookup-self");
    assert_eq!(
        lookup.header(b"x-vault-token"),
        Some(&b"hvs.configured"[..])
    );
    answer(
        ce,
        cfg,
        &lookup,
        r#"{"data": {"ttl": 600, "renewable": true, "policies": ["p"]}}"#,
    );
    let logs = fake_envoy::with(|f| f.logs.join("\n"));
    assert!(logs.contains("grant-sigv4 vault token: ttl 600s"), "{logs}");
    assert!(!logs.contains("hvs.configured"));
    envoy_dynamic_module_on_http_filter_config_destroy(cfg);
}
