//! The filter's own Vault token, kept alive: the state machine over [`crate::vault_auth`].
//!
//! - Method `token`: at the first tick, `lookup-self` (TTL, renewable, policies are logged;
//!   never the token); a renewable token is renewed with `renew-self` at about two thirds of
//!   its remaining TTL; a token that cannot be renewed is logged loudly as its end nears, and
//!   once it has expired, reads refused by the vault say so.
//! - Method `approle`: the filter logs in (`POST /v1/auth/<mount>/login`), renews, and logs in
//!   again when a renewal is refused, when the max TTL is near, and once when a grant read is
//!   refused (that read is then tried again with the new token).
//! - Method `proxy`: nothing to do; no token is sent.
//!
//! One token per process, not per worker: the token and what is known of it live in the
//! host's shared data, and a login or renewal is made by the worker that holds the login
//! claim (a shared value taken by compare-and-set, with an expiry so a stuck worker cannot
//! keep it). The others take the token from the shared data. Requests never wait on a
//! renewal or a re-login while the current token is valid; reads that need a token when
//! there is none (before the first login, after a refusal) wait for the login, and fail with
//! a 503 naming the cause when it fails.

use super::vault_fetch::Stage;
use super::{CalloutToken, Engine, Host, IdMap, MetricKind};
use crate::config::{AuthMethod, Config};
use crate::errors::LocalError;
use crate::grant_cache::Lookup;
use crate::vault::VaultError;
use crate::vault_auth::{self, AuthError, Lease, SharedToken, TokenInfo};
use log::{debug, error, info, warn};

/// Which token call is under way.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Op {
    Lookup,
    Renew,
    Login,
}

/// A grant read that waits for a token.
struct Deferred {
    grant: String,
    stage: Stage,
    since: u64,
}

/// How a grant read is to be authenticated.
pub(super) enum TokenUse {
    /// Send this token as `X-Vault-Token`.
    Header(String),
    /// Send none (method `proxy`).
    NoHeader,
    /// No valid token yet: the read waits for the login.
    Wait,
}

/// Counters and the gauge of the token's life, defined by this module.
#[derive(Default)]
struct AuthMetrics {
    logins: (Option<u32>, i64),
    renewals: (Option<u32>, i64),
    failures: (Option<u32>, i64),
    ttl_gauge: Option<u32>,
}

pub const LOGINS: &str = "grant_sigv4.vault_logins";
pub const RENEWALS: &str = "grant_sigv4.vault_token_renewals";
pub const AUTH_FAILURES: &str = "grant_sigv4.vault_auth_failures";
pub const TTL_GAUGE: &str = "grant_sigv4.vault_token_ttl_seconds";

/// A login claim is held at most this long past the callout's timeout (a worker that went
/// away with the claim blocks the others no longer).
const CLAIM_MARGIN_SECONDS: u64 = 2;
/// The first tick comes this soon after configuration (the token's lookup or first login);
/// the later ones every [`super::TICK_MS`]. Not at configuration itself: Envoy configures a
/// plugin in VMs that do not live on (the main thread's first one), whose callouts would be
/// lost with them.
pub const FIRST_TICK_MS: u32 = 100;
/// Reads wait at most this long for a login made by another worker.
const WAIT_FOR_LOGIN_SECONDS: u64 = 10;

/// The token's state in one plugin instance.
#[derive(Default)]
pub(super) struct VaultToken {
    method: Option<AuthMethod>,
    /// The shared-data keys of the token record and of the login claim.
    keys: (String, String),
    /// The token in use and what is known of it. With method `token` its `token` field is
    /// unused (the configured token is sent).
    current: Option<SharedToken>,
    /// Method `token`: `lookup-self` has been answered (or given up on).
    looked_up: bool,
    /// The token call under way.
    op: Option<(CalloutToken, Op)>,
    holds_claim: bool,
    failures: u32,
    /// No token call before this (s): back-off after failures.
    next_try: u64,
    /// A token refused by a grant read (its serial): never taken again from shared data.
    refused_serial: Option<u64>,
    /// A token that a grant read was refused with right after a new login: the refusals are
    /// the policy's, not the token's, and log in again no more.
    policy_refused_serial: Option<u64>,
    deferred: Vec<Deferred>,
    /// Grants whose read was refused once and is being tried again with a new token.
    retried: Vec<String>,
    /// The serial of the token each grant read in flight was sent with.
    reads: IdMap<u64>,
    warned_near_end: bool,
    warned_expired: bool,
    /// The first (early) tick has set the tick period back to [`super::TICK_MS`].
    ticking: bool,
    /// How long a login claim is held (s).
    claim_seconds: u64,
    /// Another engine of the process makes the token calls at its ticks
    /// ([`Engine::vault_token_kept_elsewhere`]): this one's ticks only take its token.
    pub(super) passive: bool,
    metrics: AuthMetrics,
}

fn count(m: &mut (Option<u32>, i64)) {
    m.1 += 1;
}

impl VaultToken {
    /// The state of a freshly configured plugin instance.
    pub(super) fn configure(host: &mut impl Host, cfg: &Config) -> VaultToken {
        let method = cfg.vault.auth;
        let identity = match (&cfg.vault.approle, method) {
            (Some(a), AuthMethod::AppRole) => format!("approle/{}/{}", a.mount, a.role_id),
            _ => format!("token/{}", cfg.vault.token),
        };
        let mut t = VaultToken {
            method: Some(method),
            keys: vault_auth::shared_keys(&identity),
            claim_seconds: cfg.vault.timeout_ms.div_ceil(1000) + CLAIM_MARGIN_SECONDS,
            ..VaultToken::default()
        };
        if method == AuthMethod::Proxy || cfg.mode != crate::config::Mode::Sign {
            t.ticking = true;
            return t;
        }
        if let Err(s) = host.set_tick_period_ms(FIRST_TICK_MS) {
            debug!("no early first tick ({s})");
        }
        t.metrics = AuthMetrics {
            logins: (host.define_metric(MetricKind::Counter, LOGINS), 0),
            renewals: (host.define_metric(MetricKind::Counter, RENEWALS), 0),
            failures: (host.define_metric(MetricKind::Counter, AUTH_FAILURES), 0),
            ttl_gauge: host.define_metric(MetricKind::Gauge, TTL_GAUGE),
        };
        if method == AuthMethod::Token {
            // Until lookup-self answers: a token of unknown end, used as is.
            t.current = Some(SharedToken {
                token: String::from("-"),
                expires_at: u64::MAX,
                renewable: false,
                renew_at: u64::MAX,
                login_ttl: 0,
                relogin: false,
                serial: 0,
            });
        }
        t
    }

    fn method(&self) -> AuthMethod {
        self.method.unwrap_or(AuthMethod::Proxy)
    }

    /// How to authenticate a grant read at `now` (s); with `Wait`, a login is under way.
    pub(super) fn token_for_read(
        &mut self,
        host: &mut impl Host,
        cfg: &Config,
        now: u64,
    ) -> TokenUse {
        match self.method() {
            AuthMethod::Proxy => TokenUse::NoHeader,
            AuthMethod::Token => TokenUse::Header(cfg.vault.token.clone()),
            AuthMethod::AppRole => {
                self.adopt_shared(host);
                match &self.current {
                    Some(c) if now < c.expires_at => TokenUse::Header(c.token.clone()),
                    _ => {
                        self.start_login_if_free(host, cfg, now);
                        TokenUse::Wait
                    }
                }
            }
        }
    }

    /// The serial of the current token, to tell later which token a refused read used.
    pub(super) fn serial(&self) -> u64 {
        self.current.as_ref().map_or(0, |c| c.serial)
    }

    /// A grant read started as callout `token` with the current token.
    pub(super) fn read_started(&mut self, token: CalloutToken) {
        if self.method() == AuthMethod::AppRole {
            let s = self.serial();
            self.reads.insert(token, s);
        }
    }

    /// Take the newer token record another worker wrote, if any.
    fn adopt_shared(&mut self, host: &mut impl Host) {
        let Some((bytes, _)) = host.get_shared(&self.keys.0) else {
            return;
        };
        let Some(rec) = SharedToken::decode(&bytes) else {
            return;
        };
        if self.refused_serial.is_some_and(|r| rec.serial <= r) {
            return;
        }
        if self
            .current
            .as_ref()
            .is_some_and(|c| c.serial >= rec.serial)
        {
            return;
        }
        if self.method() == AuthMethod::Token {
            self.looked_up = true;
        }
        debug!(
            "vault token: taken from shared data (serial {})",
            rec.serial
        );
        self.current = Some(rec);
    }

    /// Write the current record for the other workers.
    fn publish(&self, host: &mut impl Host) {
        let Some(c) = &self.current else {
            return;
        };
        let cas = host.get_shared(&self.keys.0).map_or(0, |(_, cas)| cas);
        if let Err(s) = host.set_shared(&self.keys.0, &c.encode(), cas) {
            debug!("vault token not shared ({s})");
        }
    }

    /// Take the login claim; false when another worker holds it.
    fn claim(&mut self, host: &mut impl Host, now: u64) -> bool {
        if self.holds_claim {
            return true;
        }
        let until = now.saturating_add(self.claim_seconds).to_string();
        let ok = match host.get_shared(&self.keys.1) {
            Some((v, cas)) => {
                let held_until = std::str::from_utf8(&v)
                    .ok()
                    .and_then(|s| s.parse::<u64>().ok())
                    .unwrap_or(0);
                held_until <= now && host.set_shared(&self.keys.1, until.as_bytes(), cas).is_ok()
            }
            // First use: nothing to compare with.
            None => host.set_shared(&self.keys.1, until.as_bytes(), 0).is_ok(),
        };
        self.holds_claim = ok;
        ok
    }

    fn release(&mut self, host: &mut impl Host) {
        if !self.holds_claim {
            return;
        }
        self.holds_claim = false;
        if let Some((_, cas)) = host.get_shared(&self.keys.1) {
            let _ = host.set_shared(&self.keys.1, b"0", cas);
        }
    }

    fn start_login_if_free(&mut self, host: &mut impl Host, cfg: &Config, now: u64) {
        if self.op.is_some() || now < self.next_try || !self.claim(host, now) {
            return;
        }
        self.start(host, cfg, Op::Login);
    }

    /// Start token call `op`; the claim is held (released here if it cannot start).
    fn start(&mut self, host: &mut impl Host, cfg: &Config, op: Op) {
        let (method, path, body) = match op {
            Op::Lookup => ("GET", vault_auth::LOOKUP_SELF_PATH.to_string(), Vec::new()),
            Op::Renew => (
                "POST",
                vault_auth::RENEW_SELF_PATH.to_string(),
                b"{}".to_vec(),
            ),
            Op::Login => match &cfg.vault.approle {
                Some(a) => (
                    "POST",
                    vault_auth::login_path(&a.mount),
                    vault_auth::login_body(&a.role_id, &a.secret_id),
                ),
                None => return,
            },
        };
        let token = match (op, self.method()) {
            (Op::Login, _) => String::new(),
            (_, AuthMethod::Token) => cfg.vault.token.clone(),
            (_, _) => self
                .current
                .as_ref()
                .map(|c| c.token.clone())
                .unwrap_or_default(),
        };
        let mut headers: Vec<(&str, &[u8])> = vec![
            (":method", method.as_bytes()),
            (":path", path.as_bytes()),
            (":authority", cfg.vault.authority.as_bytes()),
            ("accept", b"application/json"),
        ];
        if !body.is_empty() {
            headers.push(("content-type", b"application/json"));
        }
        if !token.is_empty() {
            headers.push(("x-vault-token", token.as_bytes()));
        }
        let timeout_ms = u32::try_from(cfg.vault.timeout_ms).unwrap_or(u32::MAX);
        match host.start_callout_with_body(&cfg.vault.cluster, &headers, &body, timeout_ms) {
            Ok(t) => self.op = Some((t, op)),
            Err(e) => {
                warn!("vault token: the {op:?} callout could not start ({e})");
                self.release(host);
            }
        }
    }

    /// Whether callout `token` is this module's.
    pub(super) fn owns(&self, token: CalloutToken) -> bool {
        self.op.is_some_and(|(t, _)| t == token)
    }

    /// The answer to a grant read of callout `token` arrived: the serial of the token it
    /// was sent with (AppRole).
    pub(super) fn read_answered(&mut self, token: CalloutToken) -> Option<u64> {
        self.reads.remove(&token)
    }

    fn flush(&mut self, host: &mut impl Host, now: u64) {
        for m in [
            &mut self.metrics.logins,
            &mut self.metrics.renewals,
            &mut self.metrics.failures,
        ] {
            if let (Some(id), true) = (m.0, m.1 > 0) {
                host.increment_metric(id, m.1);
            }
            m.1 = 0;
        }
        if let (Some(id), Some(left)) = (
            self.metrics.ttl_gauge,
            self.current.as_ref().and_then(|c| c.left(now)),
        ) {
            host.record_metric(id, left);
        }
    }

    /// What is counted and not yet flushed (for tests).
    fn pending(&self, name: &str) -> i64 {
        match name {
            LOGINS => self.metrics.logins.1,
            RENEWALS => self.metrics.renewals.1,
            AUTH_FAILURES => self.metrics.failures.1,
            _ => 0,
        }
    }

    fn failed(&mut self, now: u64) {
        count(&mut self.metrics.failures);
        self.failures = self.failures.saturating_add(1);
        let left = self.current.as_ref().and_then(|c| c.left(now));
        self.next_try = now.saturating_add(vault_auth::backoff_seconds(self.failures, left));
    }

    /// Method `token`: say loudly when a token that cannot be renewed nears its end.
    fn warn_of_end(&mut self, now: u64) {
        let Some(c) = &self.current else {
            return;
        };
        if c.renewable || c.expires_at == u64::MAX {
            return;
        }
        let at = vault_auth::format_time(c.expires_at);
        if now >= c.expires_at {
            if !self.warned_expired {
                self.warned_expired = true;
                error!(
                    "the filter's vault token expired at {at}: new grants cannot be read until \
                     the token is replaced (cached keys are served while they are usable)"
                );
            }
        } else if c.expires_at - now <= vault_auth::NEAR_END_SECONDS && !self.warned_near_end {
            self.warned_near_end = true;
            error!(
                "the filter's vault token cannot be renewed and expires at {at} (in {}s): \
                 replace it, or use vault.auth.method \"approle\" or \"proxy\"",
                c.expires_at - now
            );
        }
    }

    /// How a grant read refused with 403 is explained: with method `token`, an expired
    /// token is named with its end.
    pub(super) fn explain_refusal(
        &mut self,
        status: Option<u32>,
        e: VaultError,
        now: u64,
    ) -> VaultError {
        if status != Some(403) || self.method() == AuthMethod::Proxy {
            return e;
        }
        count(&mut self.metrics.failures);
        match &self.current {
            Some(c) if self.method() == AuthMethod::Token && c.expires_at <= now => {
                VaultError::Unavailable(format!(
                    "the filter's vault token expired at {}",
                    vault_auth::format_time(c.expires_at)
                ))
            }
            _ => e,
        }
    }
}

impl Engine {
    /// Another engine of the process (the dynamic module's, on Envoy's main thread) looks the
    /// token up, renews it and logs in at its own ticks: this engine's ticks only take the
    /// token it shares, unless reads of its own wait for a token (then it logs in itself when
    /// no one holds the claim, and answers them with the login's outcome, as any engine does).
    /// Call after [`Engine::on_configure`].
    pub fn vault_token_kept_elsewhere(&mut self) {
        self.auth.passive = true;
    }

    /// The token's share of the tick: flush its metrics, take a newer shared token, and
    /// start a lookup, renewal or login when one is due.
    pub(super) fn auth_tick(&mut self, host: &mut impl Host, cfg: &Config, now: u64) {
        if !self.auth.ticking {
            self.auth.ticking = true;
            if let Err(s) = host.set_tick_period_ms(super::TICK_MS) {
                warn!("tick period not restored ({s})");
            }
        }
        self.auth.flush(host, now);
        let method = self.auth.method();
        if method == AuthMethod::Proxy || cfg.mode != crate::config::Mode::Sign {
            return;
        }
        let before = self.auth.serial();
        self.auth.adopt_shared(host);
        // Reads waiting for a token go out once there is one: taken now, or taken meanwhile
        // by another read of this engine (which does not resume them itself).
        let usable = self
            .auth
            .current
            .as_ref()
            .is_some_and(|c| now < c.expires_at);
        let waiting = !self.auth.deferred.is_empty();
        if method == AuthMethod::AppRole && (self.auth.serial() != before || (usable && waiting)) {
            self.resume_deferred(host, now);
        }
        self.expire_deferred(host, now);
        // An engine whose token is kept elsewhere makes token calls only for its own reads
        // that wait for a token (the keeper's login failed or is backing off).
        let idle = self.auth.passive && self.auth.deferred.is_empty();
        if idle || self.auth.op.is_some() || now < self.auth.next_try {
            return;
        }
        match method {
            AuthMethod::Token => {
                if !self.auth.looked_up {
                    if self.auth.claim(host, now) {
                        self.auth.start(host, cfg, Op::Lookup);
                    }
                    return;
                }
                let due = self
                    .auth
                    .current
                    .as_ref()
                    .is_some_and(|c| c.renewable && now >= c.renew_at);
                if due && self.auth.claim(host, now) {
                    self.auth.start(host, cfg, Op::Renew);
                }
                self.auth.warn_of_end(now);
            }
            AuthMethod::AppRole => {
                let next = match &self.auth.current {
                    None => Some(Op::Login),
                    Some(c) if now >= c.expires_at => Some(Op::Login),
                    Some(c) if now >= c.renew_at => Some(if c.renewable && !c.relogin {
                        Op::Renew
                    } else {
                        Op::Login
                    }),
                    Some(_) => None,
                };
                if let Some(op) = next {
                    if self.auth.claim(host, now) {
                        self.auth.start(host, cfg, op);
                    }
                }
            }
            AuthMethod::Proxy => {}
        }
    }

    /// The answer to a token call arrived (the callout is this module's: [`VaultToken::owns`]).
    pub(super) fn on_auth_answer(&mut self, host: &mut impl Host, body_size: usize) {
        let Some((_, op)) = self.auth.op.take() else {
            return;
        };
        let Some(cfg) = self.config.clone() else {
            return;
        };
        let status = host.callout_status();
        let body = super::answer_body(host, body_size, vault_auth::MAX_AUTH_RESPONSE_BYTES);
        let Some(now_ms) = host.now_ms() else {
            warn!("vault token answer dropped: Envoy did not give the current time");
            self.auth.release(host);
            return;
        };
        let now = now_ms / 1000;
        match op {
            Op::Lookup => self.looked_up(host, vault_auth::parse_lookup_self(status, &body), now),
            Op::Renew => self.renewed(host, vault_auth::parse_auth(status, &body, false), now_ms),
            Op::Login => self.logged_in(
                host,
                &cfg,
                vault_auth::parse_auth(status, &body, true),
                now_ms,
            ),
        }
        self.auth.release(host);
    }

    fn looked_up(&mut self, host: &mut impl Host, r: Result<TokenInfo, AuthError>, now: u64) {
        let a = &mut self.auth;
        match r {
            Ok(i) => {
                a.looked_up = true;
                a.failures = 0;
                let expires_at = if i.ttl == 0 {
                    u64::MAX
                } else {
                    now.saturating_add(i.ttl)
                };
                let serial = a.serial() + 1;
                a.current = Some(SharedToken {
                    token: String::from("-"),
                    expires_at,
                    renewable: i.renewable,
                    renew_at: if i.renewable {
                        vault_auth::renew_at(now, i.ttl, now ^ serial)
                    } else {
                        u64::MAX
                    },
                    login_ttl: i.period.unwrap_or(i.ttl),
                    relogin: false,
                    serial,
                });
                let ttl = if i.ttl == 0 {
                    String::from("no expiry")
                } else {
                    format!(
                        "ttl {}s (until {})",
                        i.ttl,
                        vault_auth::format_time(expires_at)
                    )
                };
                info!(
                    "grant-sigv4 vault token: {ttl}, {}renewable{}, policies [{}]",
                    if i.renewable { "" } else { "not " },
                    i.period
                        .map(|p| format!(", period {p}s"))
                        .unwrap_or_default(),
                    i.policies.join(", ")
                );
                a.publish(host);
                a.warn_of_end(now);
            }
            Err(AuthError::Denied(m)) => {
                // No use asking again: the token is wrong, revoked or expired.
                a.looked_up = true;
                count(&mut a.metrics.failures);
                error!("grant-sigv4 vault token lookup refused: {m}");
            }
            Err(AuthError::Unavailable(m)) => {
                a.failed(now);
                warn!("grant-sigv4 vault token lookup failed ({m}); tried again later");
            }
        }
    }

    fn renewed(&mut self, host: &mut impl Host, r: Result<Lease, AuthError>, now_ms: u64) {
        let now = now_ms / 1000;
        let method = self.auth.method();
        let a = &mut self.auth;
        let Some(c) = a.current.as_mut() else {
            return;
        };
        match r {
            Ok(l) => {
                a.failures = 0;
                count(&mut a.metrics.renewals);
                c.expires_at = if l.lease_duration == 0 {
                    u64::MAX
                } else {
                    now.saturating_add(l.lease_duration)
                };
                c.renewable = l.renewable;
                c.relogin = method == AuthMethod::AppRole
                    && (!l.renewable || vault_auth::near_max_ttl(l.lease_duration, c.login_ttl));
                c.renew_at = vault_auth::renew_at(now, l.lease_duration, now_ms);
                if method == AuthMethod::Token && !l.renewable {
                    c.renew_at = u64::MAX;
                }
                c.serial += 1;
                debug!(
                    "vault token renewed for {}s{}",
                    l.lease_duration,
                    if c.relogin {
                        " (max TTL near: a new login follows)"
                    } else {
                        ""
                    }
                );
                a.publish(host);
                a.warn_of_end(now);
                if !self.auth.deferred.is_empty() {
                    self.resume_deferred(host, now);
                }
            }
            Err(AuthError::Denied(m)) => {
                // Permission denied: not renewable (Vault's own client does the same).
                count(&mut a.metrics.failures);
                c.renewable = false;
                c.serial += 1;
                if method == AuthMethod::AppRole {
                    c.relogin = true;
                    c.renew_at = now;
                    warn!("vault token renewal refused ({m}); logging in again");
                } else {
                    c.renew_at = u64::MAX;
                    error!(
                        "the vault refused to renew the filter's token ({m}): it is treated as \
                         not renewable and ends at {}",
                        if c.expires_at == u64::MAX {
                            String::from("(unknown)")
                        } else {
                            vault_auth::format_time(c.expires_at)
                        }
                    );
                }
                a.publish(host);
            }
            Err(AuthError::Unavailable(m)) => {
                a.failed(now);
                warn!(
                    "vault token renewal failed ({m}); tried again in {}s",
                    a.next_try - now
                );
            }
        }
    }

    fn logged_in(
        &mut self,
        host: &mut impl Host,
        cfg: &Config,
        r: Result<Lease, AuthError>,
        now_ms: u64,
    ) {
        let now = now_ms / 1000;
        match r {
            Ok(l) => {
                let a = &mut self.auth;
                a.failures = 0;
                count(&mut a.metrics.logins);
                let shared_serial = host
                    .get_shared(&a.keys.0)
                    .and_then(|(b, _)| SharedToken::decode(&b))
                    .map_or(0, |s| s.serial);
                let serial = a
                    .serial()
                    .max(shared_serial)
                    .max(a.refused_serial.unwrap_or(0))
                    + 1;
                let expires_at = if l.lease_duration == 0 {
                    u64::MAX
                } else {
                    now.saturating_add(l.lease_duration)
                };
                info!(
                    "grant-sigv4 vault login ({} mount {}): token valid for {}s, {}renewable, policies [{}]",
                    cfg.vault.auth.as_str(),
                    cfg.vault.approle.as_ref().map_or("", |r| r.mount.as_str()),
                    l.lease_duration,
                    if l.renewable { "" } else { "not " },
                    l.policies.join(", ")
                );
                a.current = Some(SharedToken {
                    token: l.token,
                    expires_at,
                    renewable: l.renewable,
                    renew_at: vault_auth::renew_at(now, l.lease_duration, now_ms),
                    login_ttl: l.lease_duration,
                    relogin: !l.renewable,
                    serial,
                });
                a.publish(host);
                self.resume_deferred(host, now);
            }
            Err(e) => {
                let a = &mut self.auth;
                a.failed(now);
                error!(
                    "grant-sigv4 vault login failed: {}; tried again in {}s",
                    e.message(),
                    a.next_try.saturating_sub(now)
                );
                let why = format!("the filter's vault login failed: {}", e.message());
                self.fail_deferred(host, &why, now);
            }
        }
    }

    /// Put a grant read off until there is a token.
    pub(super) fn defer_read(&mut self, grant: &str, stage: Stage, now: u64) {
        self.auth.deferred.push(Deferred {
            grant: grant.to_string(),
            stage,
            since: now,
        });
    }

    /// A token is there: start the reads that waited for one.
    fn resume_deferred(&mut self, host: &mut impl Host, now: u64) {
        let Some(cfg) = self.config.clone() else {
            return;
        };
        for d in std::mem::take(&mut self.auth.deferred) {
            if !self.fetches.contains_key(&d.grant) {
                self.auth.retried.retain(|g| *g != d.grant);
                continue;
            }
            if let Err(e) = self.start_callout(host, &cfg, &d.grant, d.stage) {
                warn!("vault callout failed to start: {e}");
                let e = LocalError::vault_unavailable("the vault callout could not be started");
                self.finish_fetch(host, &d.grant, Err(e), true, now);
            }
        }
    }

    /// Reads that waited too long for another worker's login fail.
    fn expire_deferred(&mut self, host: &mut impl Host, now: u64) {
        if self
            .auth
            .deferred
            .iter()
            .any(|d| now.saturating_sub(d.since) >= WAIT_FOR_LOGIN_SECONDS)
        {
            self.fail_deferred(
                host,
                "the filter has no vault token: its login has not completed in time",
                now,
            );
        }
    }

    /// The login failed: the reads that waited for it serve a stale key, or fail with `why`.
    fn fail_deferred(&mut self, host: &mut impl Host, why: &str, now: u64) {
        let Some(cfg) = self.config.clone() else {
            return;
        };
        for d in std::mem::take(&mut self.auth.deferred) {
            self.auth.retried.retain(|g| *g != d.grant);
            let outcome = match self.cache.lookup(&d.grant, now) {
                Lookup::Stale(g) | Lookup::Fresh(g) => {
                    self.metrics.inc(super::Counter::StaleServed);
                    Ok(g)
                }
                _ => Err(VaultError::Unavailable(why.to_string()).local_error(&cfg.vault)),
            };
            let fresh = outcome.is_err();
            self.finish_fetch(host, &d.grant, outcome, fresh, now);
        }
    }

    /// A grant read sent with token `serial` was refused (403). With AppRole, the first
    /// refusal of a grant's read logs in again and tries the read once more: true when the
    /// read was put off for that.
    pub(super) fn retry_refused_read(
        &mut self,
        host: &mut impl Host,
        grant: &str,
        stage: &Stage,
        serial: Option<u64>,
        now: u64,
    ) -> bool {
        let Some(serial) = serial else {
            return false;
        };
        let Some(cfg) = self.config.clone() else {
            return false;
        };
        if self.auth.policy_refused_serial == Some(serial) {
            return false;
        }
        if let Some(i) = self.auth.retried.iter().position(|g| g == grant) {
            // Refused again with a new token: the refusal stands (and is counted where the
            // read's error is explained). The policy refuses it, not the token: more
            // refusals with this token do not log in again (a revoked token is still found
            // out by its next renewal).
            self.auth.retried.swap_remove(i);
            self.auth.policy_refused_serial = Some(serial);
            warn!(
                "a grant read was refused right after a new vault login: the filter's policy \
                 does not allow it (check vault.kv_mount and vault.path_prefix against the policy)"
            );
            return false;
        }
        count(&mut self.auth.metrics.failures);
        self.auth.retried.push(grant.to_string());
        if self.auth.serial() == serial {
            warn!("the vault refused the filter's token on a grant read; logging in again");
            self.auth.refused_serial = Some(serial);
            self.auth.current = None;
            // Tell the other workers, so that the claim holder logs in.
            let cas = host
                .get_shared(&self.auth.keys.0)
                .map(|(b, cas)| (SharedToken::decode(&b), cas));
            if let Some((Some(mut rec), cas)) = cas {
                if rec.serial == serial {
                    rec.renew_at = now;
                    rec.expires_at = now;
                    rec.relogin = true;
                    let _ = host.set_shared(&self.auth.keys.0, &rec.encode(), cas);
                }
            }
            self.auth.next_try = now;
        }
        self.defer_read(grant, stage.clone(), now);
        match self.auth.token_for_read(host, &cfg, now) {
            // Another worker logged in meanwhile.
            TokenUse::Header(_) => self.resume_deferred(host, now),
            TokenUse::NoHeader | TokenUse::Wait => {}
        }
        true
    }

    /// A grant read ended (any answer): it is no longer being retried.
    pub(super) fn read_done(&mut self, grant: &str) {
        self.auth.retried.retain(|g| g != grant);
    }

    /// Counted by the token's life and not yet flushed (for tests).
    pub fn auth_metric_pending(&self, name: &str) -> i64 {
        self.auth.pending(name)
    }

    /// Seconds left on the current token (for tests); `None` when unknown or endless.
    pub fn vault_token_left(&self, now: u64) -> Option<u64> {
        self.auth.current.as_ref().and_then(|c| c.left(now))
    }
}
