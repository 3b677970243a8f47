//! The engine: the filter's logic for one plugin instance (one plugin configuration in one
//! worker), with no I/O of its own. A host feeds it events — request headers, callout
//! answer, response headers, tick, request done — and carries out what it asks through the
//! [`Host`] trait: continue or pause, local replies, header edits, callouts, shared data,
//! filter state, metrics. Logging goes through the `log` facade, which the host routes.
//!
//! - A request whose grant is cached is signed in its headers event without pausing.
//! - Otherwise the request pauses and the grant is fetched with one callout (two for a
//!   dynamic grant: the record, then the AWS secrets engine); further requests for the same
//!   grant wait for that fetch (single flight), and all are signed and resumed, or answered,
//!   when it ends. A fetch belongs to the plugin instance, not to the request that started
//!   it: when that request goes away, the fetch goes on for the others.
//! - Grants fetched here are also put into the host's shared data, so other workers take them
//!   from there instead of calling the vault; a key there is never replaced by an older one.
//! - The tick refreshes used grants before they expire, so requests do not wait on
//!   refreshes. A static key past its TTL is still used at once (up to `max_stale_seconds`)
//!   while one background fetch tries the vault, backing off while the vault fails. One
//!   worker per process makes each background fetch (a claim in shared data,
//!   [`refresh_claim`]); the others take the new key from shared data.
//! - Fetches of grants in no cache are limited per process ([`fetch_limit`]): over the
//!   limit a request gets 503 `VaultBusy` and nothing is fetched.
//! - An AWS answer that refuses the key drops the grant from the caches, so the next request
//!   (or a retry of this one, when the filter runs as an upstream filter) is signed with a
//!   freshly fetched key.
//!
//! Everything kept per request is one [`RequestState`], created on first need and dropped in
//! [`Engine::on_request_done`].

mod fetch_limit;
mod host;
mod metrics;
mod refresh_claim;
mod request_audit;
mod request_body;
mod sds_token;
mod vault_fetch;
mod vault_health;
mod vault_token;

#[cfg(test)]
mod tests;

pub use host::{Action, CalloutToken, Host, IdHasher, IdMap, MetricKind, Property, RequestId};
pub use metrics::all_metrics;
pub use request_audit::AUDIT_FILTER_STATE;

use crate::audit;
use crate::aws_host::AuthorityMemo;
use crate::aws_response::{self, KeyVerdict};
use crate::config::{Config, Mode};
use crate::errors::{ErrorCode, LocalError};
use crate::grant_cache::{CachedGrant, GrantCache, Lookup};
use crate::policy::Caller;
use crate::request::{self, Edits, Plan};
use crate::retry_stash::RetryStash;
use crate::shared_grant;
use crate::sigv4::SigningKeyCache;
use crate::vault::{self, VaultError};
use log::{debug, error, info, warn};
use metrics::{Counter, Metrics};
use request_audit::{caller_of, status_of, Audit};
use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;
use vault_fetch::{Answer, Callout, GrantFetch, Stage};
use vault_token::{TokenUse, VaultToken};

/// How often the host delivers the tick event.
pub const TICK_MS: u32 = 1000;

/// Everything the engine keeps for one request.
#[derive(Default)]
struct RequestState {
    /// Paused until the fetch of its grant ends.
    waiting: Option<Box<Plan>>,
    /// Signed with this grant's key, fetched at that time: an AWS refusal drops exactly it.
    signed_with: Option<(String, u64)>,
    audit: Option<Box<Audit>>,
    /// Planned, its body being buffered by the host, which hands in its hash.
    awaiting_body: Option<Box<Plan>>,
}

/// The filter's state and logic for one plugin instance.
pub struct Engine {
    config: Option<Rc<Config>>,
    cache: GrantCache,
    keys: SigningKeyCache,
    authorities: AuthorityMemo,
    /// The signed headers of the last request, whose buffers the next one reuses.
    edits: Edits,
    /// Grants of requests that may be retried (upstream filter mode), shared by the
    /// plugin instances of one worker (the precheck and the signing instance).
    retries: Rc<RefCell<RetryStash>>,
    requests: IdMap<RequestState>,
    /// Fetches under way, by grant.
    fetches: HashMap<String, GrantFetch>,
    /// Callouts under way, by token.
    callouts: IdMap<Callout>,
    metrics: Metrics,
    /// The filter's own vault token (see `vault_token.rs`).
    auth: VaultToken,
    /// The host buffers and hashes request bodies ([`Engine::hash_bodies_in_host`]).
    body_hashing: bool,
    /// The host hands in the vault token of `vault.token_sds` ([`Engine::vault_token_from_host`]).
    token_from_host: bool,
}

impl Engine {
    /// An unconfigured engine; `retries` is shared with the other plugin instances of the
    /// worker.
    pub fn new(retries: Rc<RefCell<RetryStash>>) -> Engine {
        Engine {
            config: None,
            cache: GrantCache::default(),
            keys: SigningKeyCache::default(),
            authorities: AuthorityMemo::new(),
            edits: Edits::default(),
            retries,
            requests: IdMap::default(),
            fetches: HashMap::new(),
            callouts: IdMap::default(),
            metrics: Metrics::default(),
            auth: VaultToken::default(),
            body_hashing: false,
            token_from_host: false,
        }
    }

    /// The plugin configuration, once configured.
    pub fn config(&self) -> Option<&Config> {
        self.config.as_deref()
    }

    /// Requests the engine keeps state for (for tests and leak checks).
    pub fn requests_tracked(&self) -> usize {
        self.requests.len()
    }

    /// Fetches and callouts under way (for tests).
    pub fn fetches_under_way(&self) -> (usize, usize) {
        (self.fetches.len(), self.callouts.len())
    }

    /// Counted and not yet flushed (for tests).
    pub fn metric_pending(&self, name: &str) -> i64 {
        self.metrics.pending(name)
    }

    /// The plugin configuration arrived (`env` reads the process environment). Returns
    /// whether it is usable; the reason is logged when not.
    pub fn on_configure(
        &mut self,
        host: &mut impl Host,
        bytes: &[u8],
        env: impl Fn(&str) -> Option<String>,
    ) -> bool {
        match Config::parse(bytes).and_then(|mut c| {
            c.resolve_token(env)?;
            Ok(c)
        }) {
            Ok(cfg) if self.host_refuses(&cfg).is_some() => {
                if let Some(e) = self.host_refuses(&cfg) {
                    error!("grant-sigv4: {e}");
                }
                false
            }
            Ok(cfg) => {
                match cfg.mode {
                    Mode::Sign => info!(
                        "grant-sigv4 configured: grant header {}, vault cluster {}, vault auth {}, cache ttl {}s",
                        cfg.grant_header,
                        cfg.vault.cluster,
                        cfg.vault.auth.as_str(),
                        cfg.cache.ttl_seconds
                    ),
                    Mode::Precheck => info!(
                        "grant-sigv4 configured: precheck, grant header {}, max body {} bytes",
                        cfg.grant_header, cfg.max_body_bytes
                    ),
                }
                if let Err(s) = host.set_tick_period_ms(TICK_MS) {
                    warn!("no tick ({s}): no background refresh, metrics not flushed");
                }
                self.cache = GrantCache::new(&cfg.cache);
                self.metrics = Metrics::define(host);
                self.auth = VaultToken::configure(host, &cfg);
                self.config = Some(Rc::new(cfg));
                true
            }
            Err(e) => {
                error!("grant-sigv4: {e}");
                false
            }
        }
    }

    /// The state of request `id`, created on first need (the one place it is created).
    fn state(&mut self, id: RequestId) -> &mut RequestState {
        self.requests.entry(id).or_default()
    }

    /// The headers of request `id` arrived (`end_of_stream`: no body follows).
    pub fn on_request_headers(
        &mut self,
        host: &mut impl Host,
        id: RequestId,
        headers: &[(&str, &[u8])],
        end_of_stream: bool,
    ) -> Action {
        let Some(cfg) = self.config.clone() else {
            host.send_local_reply(id, &LocalError::internal("the filter is not configured"));
            return Action::Pause;
        };
        // Never sign with a made-up date (a 1970 signature): no clock, no signature.
        let Some(start_ms) = host.now_ms() else {
            self.refuse(host, id, &no_clock());
            return Action::Pause;
        };
        // A record is started with the request only for the log line (which needs its start
        // time); for the filter state alone, what is known is written when the outcome is
        // decided. The precheck instance passes most requests on, which the signing instance
        // then audits: its own record is started only when it refuses.
        if cfg.mode == Mode::Sign && cfg.audit.log {
            self.start_audit(&cfg, id, start_ms);
        }
        let now = start_ms / 1000;
        let retry_grant = if cfg.upstream_filter {
            self.carry_grant_to_retries(host, &cfg, id, headers, now)
        } else {
            None
        };
        let with_grant;
        let headers = match &retry_grant {
            Some(g) => {
                let mut h = headers.to_vec();
                h.push((cfg.grant_header.as_str(), g.as_bytes()));
                with_grant = h;
                &with_grant[..]
            }
            None => headers,
        };
        if cfg.mode == Mode::Precheck {
            return match request::precheck_request_memoized(
                &cfg,
                &mut self.authorities,
                headers,
                end_of_stream,
            ) {
                Ok(None) => Action::Continue,
                // The grant is named by the client's own signature, which the body hasher
                // behind this instance replaces: hand its credential scope on.
                Ok(Some((name, value))) => {
                    let edits = Edits {
                        remove: Vec::new(),
                        set: vec![(name.to_string(), value)],
                        added: 0,
                    };
                    if host.edit_request_headers(id, &edits).is_ok() {
                        return Action::Continue;
                    }
                    self.start_audit(&cfg, id, start_ms);
                    let e = "the client's credential scope could not be handed on";
                    self.refuse(host, id, &LocalError::internal(e));
                    Action::Pause
                }
                Err(e) => {
                    self.start_audit(&cfg, id, start_ms);
                    self.refuse(host, id, &e);
                    Action::Pause
                }
            };
        }
        let plan = match request::plan_request_hashing_body(
            &cfg,
            &mut self.authorities,
            headers,
            end_of_stream,
            self.body_hashing,
        ) {
            Ok(p) => p,
            Err(e) => {
                self.start_audit(&cfg, id, start_ms);
                if let Some(a) = self.state(id).audit.as_mut() {
                    // What can be told of a refused request without trusting it.
                    a.record.grant_id = headers
                        .iter()
                        .find(|(k, _)| *k == cfg.grant_header)
                        .and_then(|(_, v)| vault::validate_grant_id(v).ok())
                        .map(str::to_string);
                }
                self.refuse(host, id, &e);
                return Action::Pause;
            }
        };
        if let Some(a) = self.requests.get_mut(&id).and_then(|s| s.audit.as_mut()) {
            let r = &mut a.record;
            r.grant_id = Some(plan.grant_id.clone());
            r.grant_from = Some(plan.grant_from.as_str());
            r.service = Some(plan.endpoint.signing_name.clone());
            r.region = Some(plan.endpoint.region.clone());
            r.method = Some(plan.method.clone());
            r.path = Some(audit::path_without_query_values(&plan.path));
            r.reason = plan.reason.clone();
            r.context = plan.context.clone();
        }
        if plan.payload_hash.is_empty() {
            return self.await_body(id, plan);
        }
        self.sign_planned(host, &cfg, id, plan, start_ms)
    }

    /// Sign request `id`, planned as `plan`, with its grant's key from the caches, or pause it
    /// until the fetch of its grant ends.
    fn sign_planned(
        &mut self,
        host: &mut impl Host,
        cfg: &Config,
        id: RequestId,
        plan: Plan,
        start_ms: u64,
    ) -> Action {
        let now = start_ms / 1000;
        match self.cache.lookup(&plan.grant_id, now) {
            Lookup::Fresh(g) => {
                self.metrics.inc(Counter::CacheHit);
                return self.sign_or_refuse(host, id, &plan, &g, now);
            }
            Lookup::NotFound => {
                self.metrics.inc(Counter::CacheHit);
                self.refuse_planned(host, id, &LocalError::grant_not_found(), &plan);
                return Action::Pause;
            }
            Lookup::Stale(g) => return self.sign_stale(host, cfg, id, &plan, g, start_ms),
            Lookup::Miss => {}
        }
        // Another worker's key, even a stale one, is better than waiting on the vault.
        let shared = shared_usable(host, &plan.grant_id, now);
        if let Some(g) = shared {
            self.metrics.inc(Counter::SharedHit);
            let g = self.cache.insert(&plan.grant_id, g);
            if now >= g.fresh_until {
                return self.sign_stale(host, cfg, id, &plan, g, start_ms);
            }
            return self.sign_or_refuse(host, id, &plan, &g, now);
        }
        self.metrics.inc(Counter::CacheMiss);
        let grant = plan.grant_id.clone();
        if let Some(fetch) = self.fetches.get_mut(&grant) {
            fetch.waiters.push(id);
            self.state(id).waiting = Some(Box::new(plan));
            return Action::Pause;
        }
        if !fetch_limit::take(host, start_ms, &cfg.new_grant_fetches) {
            self.refuse_planned(host, id, &LocalError::vault_busy(), &plan);
            return Action::Pause;
        }
        self.state(id).waiting = Some(Box::new(plan));
        self.fetches.insert(
            grant.clone(),
            GrantFetch {
                waiters: vec![id],
                refresh: false,
            },
        );
        if let Err(e) = self.start_callout(host, cfg, &grant, Stage::Record) {
            warn!(
                "vault callout to cluster {} failed to start: {e}",
                cfg.vault.cluster
            );
            let e = LocalError::vault_unavailable(
                "the vault callout could not be started (is the vault cluster defined?)",
            );
            self.finish_fetch(host, &grant, Err(e), true, now);
        }
        Action::Pause
    }

    /// Sign request `id` at once with `g`, a key past its TTL but still usable, while one
    /// background fetch (unless one is under way or the vault is backing off) tries the
    /// vault: no request waits on the vault while a stale key may be used.
    fn sign_stale(
        &mut self,
        host: &mut impl Host,
        cfg: &Config,
        id: RequestId,
        plan: &Plan,
        g: Rc<CachedGrant>,
        now_ms: u64,
    ) -> Action {
        let now = now_ms / 1000;
        let g = match self.cache.start_revalidation(&plan.grant_id, now) {
            true => self
                .background_fetch(host, cfg, &plan.grant_id, now_ms)
                .unwrap_or(g),
            false => g,
        };
        if now >= g.fresh_until {
            self.metrics.inc(Counter::StaleServed);
        }
        self.sign_or_refuse(host, id, plan, &g, now)
    }

    /// The headers of request `id` could not be read from the host.
    pub fn on_request_headers_unreadable(&mut self, host: &mut impl Host, id: RequestId) -> Action {
        warn!("could not read request headers");
        if let Some(cfg) = self.config.clone() {
            let start_ms = host.now_ms().unwrap_or(0);
            self.start_audit(&cfg, id, start_ms);
        }
        self.refuse(
            host,
            id,
            &LocalError::internal("the request headers could not be read"),
        );
        Action::Pause
    }

    /// The answer to callout `token` arrived, with a body of `body_size` bytes.
    pub fn on_callout_answer(
        &mut self,
        host: &mut impl Host,
        token: CalloutToken,
        body_size: usize,
    ) {
        let Some(call) = self.callouts.remove(&token) else {
            if self.auth.owns(token) {
                self.on_auth_answer(host, body_size);
            }
            return;
        };
        let read_with = self.auth.read_answered(token);
        let Some(cfg) = self.config.clone() else {
            return;
        };
        let status = host.callout_status();
        let body = answer_body(host, body_size, vault::MAX_RESPONSE_BYTES);
        let now_ms = host.now_ms();
        if let Some(ms) = now_ms.and_then(|t| t.checked_sub(call.started_ms?)) {
            self.metrics.callout_latency(host, ms);
        }
        let grant = call.grant;
        let Some(now) = now_ms.map(|t| t / 1000) else {
            // Never sign with a made-up date: the waiting requests are refused.
            warn!("vault answer dropped: Envoy did not give the current time");
            self.finish_fetch(host, &grant, Err(no_clock()), true, 0);
            return;
        };
        let answered = matches!(status, Some(200) | Some(404));
        if !answered {
            self.metrics.inc(Counter::VaultFailures);
        }
        vault_health::record(host, now_ms.unwrap_or_default(), answered);
        let stage = call.stage.clone();
        let fetched = match vault_fetch::digest(&cfg, call.stage, status, &body, now) {
            Answer::Next(stage) => match self.start_callout(host, &cfg, &grant, stage) {
                Ok(()) => return,
                Err(e) => {
                    warn!("vault callout failed to start: {e}");
                    let e =
                        LocalError::vault_unavailable("the AWS secrets engine could not be called");
                    self.finish_fetch(host, &grant, Err(e), true, now);
                    return;
                }
            },
            // A refused token: with AppRole, log in again and read once more.
            Answer::Fetched(Err(_))
                if status == Some(403)
                    && self.retry_refused_read(host, &grant, &stage, read_with, now) =>
            {
                return
            }
            Answer::Fetched(f) => {
                self.read_done(&grant);
                f.map_err(|e| self.auth.explain_refusal(status, e, now))
            }
        };
        let mut fresh = true;
        let outcome = match fetched {
            Ok(g) => {
                shared_store(host, &grant, &g);
                Ok(self.cache.insert(&grant, g))
            }
            Err(VaultError::NotFound) => {
                self.cache.remember_not_found(
                    &grant,
                    now,
                    now.saturating_add(cfg.cache.negative_ttl_seconds),
                );
                Err(VaultError::NotFound.local_error(&cfg.vault))
            }
            Err(e @ VaultError::Unavailable(_)) => match self.cache.lookup(&grant, now) {
                // The vault is down: serve the stale key while it is usable.
                Lookup::Stale(g) | Lookup::Fresh(g) => {
                    warn!("vault unavailable ({e:?}); serving a grant's cached key");
                    self.metrics.inc(Counter::StaleServed);
                    fresh = false;
                    Ok(g)
                }
                _ => {
                    warn!("vault read for a grant failed: {e:?}");
                    Err(e.local_error(&cfg.vault))
                }
            },
            Err(e) => {
                warn!("vault read for a grant failed: {e:?}");
                Err(e.local_error(&cfg.vault))
            }
        };
        self.finish_fetch(host, &grant, outcome, fresh, now);
    }

    /// The response headers of request `id` arrived.
    pub fn on_response_headers(&mut self, host: &mut impl Host, id: RequestId) {
        let Some(state) = self.requests.get_mut(&id) else {
            return;
        };
        let audit = state.audit.take();
        let signed_with = state.signed_with.take();
        if let Some(mut a) = audit {
            if a.log {
                a.write_log(host, id, true);
            }
        }
        let Some((grant, fetched_at)) = signed_with else {
            // Not signed by this filter (a local reply, or not handled): nothing to learn.
            return;
        };
        let status = status_of(host.response_header(id, ":status")).unwrap_or(0);
        if status != 400 && status != 403 {
            return;
        }
        let error_type = host
            .response_header(id, "x-amzn-errortype")
            .and_then(|v| String::from_utf8(v).ok());
        let verdict = aws_response::key_verdict(status, error_type.as_deref());
        if verdict == KeyVerdict::Accepted {
            return;
        }
        let Some(cfg) = self.config.clone() else {
            return;
        };
        let Some(now) = host.now_ms().map(|t| t / 1000) else {
            warn!("AWS refused a grant's key, but Envoy did not give the current time: it stays cached");
            return;
        };
        if self
            .cache
            .invalidate(&grant, fetched_at, now, cfg.cache.min_refetch_seconds)
        {
            self.metrics.inc(Counter::KeyRefusals);
            shared_forget(host, &grant, fetched_at);
            warn!("AWS refused a grant's key ({verdict:?}, status {status}); it will be fetched again");
        }
    }

    /// Request `id` is gone (answered, or the client went away): its state is dropped here.
    pub fn on_request_done(&mut self, host: &mut impl Host, id: RequestId) {
        let Some(state) = self.requests.remove(&id) else {
            return;
        };
        if let Some(plan) = &state.waiting {
            // Its fetch goes on for the other requests that wait for it.
            if let Some(f) = self.fetches.get_mut(&plan.grant_id) {
                f.waiters.retain(|w| *w != id);
            }
        }
        if let Some(mut a) = state.audit {
            if a.log {
                // Ended before an answer came back (the client or the upstream went away).
                a.write_log(host, id, false);
            }
        }
    }

    /// Add the counts kept since the last flush to the host's metrics now (the tick does it
    /// every second; a host whose metric calls are cheap may do it after every request).
    pub fn flush_metrics(&mut self, host: &mut impl Host) {
        self.metrics.flush(host);
    }

    /// The periodic tick: flush the metrics and refresh used grants ahead of their expiry
    /// (the answers come back to the engine whatever happens to the requests).
    pub fn on_tick(&mut self, host: &mut impl Host) {
        self.metrics.flush(host);
        let Some(cfg) = self.config.clone() else {
            return;
        };
        let Some(now_ms) = host.now_ms() else {
            warn!("no background refresh: Envoy did not give the current time");
            return;
        };
        self.auth_tick(host, &cfg, now_ms / 1000);
        if cfg.mode == Mode::Sign {
            let failing = vault_health::failing_seconds(host, now_ms);
            self.metrics.vault_failing(host, failing);
        }
        for grant in self.cache.due_for_refresh(now_ms / 1000) {
            self.background_fetch(host, &cfg, &grant, now_ms);
        }
    }

    /// Fetch the cached `grant` in the background, at most once per process at a time:
    /// take the key another worker fetched if there is a fresher one (returned), else claim
    /// the fetch and start it. The caller marked the entry as refreshing; it is unmarked
    /// here unless a fetch starts.
    fn background_fetch(
        &mut self,
        host: &mut impl Host,
        cfg: &Config,
        grant: &str,
        now_ms: u64,
    ) -> Option<Rc<CachedGrant>> {
        let now = now_ms / 1000;
        if self.fetches.contains_key(grant) {
            // A fetch is under way here: it brings the new key.
            self.cache.refresh_failed(grant);
            return None;
        }
        // Another worker may have fetched it already.
        let mut newer = None;
        if let Some(g) = shared_lookup(host, grant, now) {
            let due = now >= g.refresh_at;
            let g = self.cache.insert(grant, g);
            if !due {
                return Some(g);
            }
            newer = Some(g);
        }
        let lease_ms = cfg.vault.timeout_ms.saturating_mul(2).saturating_add(1000);
        if !refresh_claim::try_claim(host, grant, now_ms, lease_ms) {
            // Another worker is fetching it, or the vault is backing off: look again later.
            self.cache.retry_at(grant, now.saturating_add(1));
            return newer;
        }
        self.fetches.insert(
            grant.to_string(),
            GrantFetch {
                waiters: Vec::new(),
                refresh: true,
            },
        );
        if let Err(e) = self.start_callout(host, cfg, grant, Stage::Record) {
            warn!("background refresh could not start: {e}");
            self.fetches.remove(grant);
            self.release_claim(host, cfg, grant, now_ms, false);
        }
        newer
    }

    /// A background fetch of `grant` ended (`succeeded`: the vault answered): the other
    /// workers may fetch it again, at once or after the backoff.
    fn release_claim(
        &mut self,
        host: &mut impl Host,
        cfg: &Config,
        grant: &str,
        now_ms: u64,
        succeeded: bool,
    ) {
        let max_backoff_ms = cfg.cache.ttl_seconds.saturating_mul(1000);
        let until_ms = refresh_claim::release(host, grant, now_ms, succeeded, max_backoff_ms);
        if !succeeded {
            self.cache.retry_at(grant, until_ms.div_ceil(1000));
        }
    }

    /// Start the callout of `stage` of the fetch of `grant`.
    fn start_callout(
        &mut self,
        host: &mut impl Host,
        cfg: &Config,
        grant: &str,
        stage: Stage,
    ) -> Result<(), String> {
        let started_ms = host.now_ms();
        // Behind a Vault or OpenBao Proxy the filter holds no token and sends none; with
        // AppRole, a read waits for the first login.
        let vault_token = match self
            .auth
            .token_for_read(host, cfg, started_ms.unwrap_or(0) / 1000)
        {
            TokenUse::Header(t) => t,
            TokenUse::NoHeader => String::new(),
            TokenUse::Wait => {
                self.defer_read(grant, stage, started_ms.unwrap_or(0) / 1000);
                return Ok(());
            }
        };
        self.metrics.inc(Counter::VaultCallouts);
        let path = vault_fetch::path(&cfg.vault, grant, &stage);
        let all: [(&str, &[u8]); 5] = [
            (":method", b"GET"),
            (":path", path.as_bytes()),
            (":authority", cfg.vault.authority.as_bytes()),
            ("accept", b"application/json"),
            ("x-vault-token", vault_token.as_bytes()),
        ];
        let headers = if vault_token.is_empty() {
            &all[..4]
        } else {
            &all[..]
        };
        let timeout_ms = u32::try_from(cfg.vault.timeout_ms).unwrap_or(u32::MAX);
        let token = host.start_callout(&cfg.vault.cluster, headers, timeout_ms)?;
        self.auth.read_started(token);
        self.callouts.insert(
            token,
            Callout {
                grant: grant.to_string(),
                stage,
                started_ms,
            },
        );
        Ok(())
    }

    /// The fetch of `grant` ended with `outcome` (`fresh`: false when a stale key is served
    /// because the vault could not be read): sign and resume, or answer, every request that
    /// waited for it.
    fn finish_fetch(
        &mut self,
        host: &mut impl Host,
        grant: &str,
        outcome: Result<Rc<CachedGrant>, LocalError>,
        fresh: bool,
        now: u64,
    ) {
        let Some(fetch) = self.fetches.remove(grant) else {
            return;
        };
        if fetch.refresh {
            let succeeded = match &outcome {
                Ok(_) => fresh,
                Err(e) => e.code == ErrorCode::GrantNotFound,
            };
            if let Some(cfg) = self.config.clone() {
                let now_ms = host.now_ms().unwrap_or(now.saturating_mul(1000));
                self.release_claim(host, &cfg, grant, now_ms, succeeded);
            }
            match &outcome {
                Ok(_) if fresh => {
                    self.metrics.inc(Counter::Refreshes);
                    debug!("refreshed a grant in the background");
                }
                _ => {
                    debug!(
                        "background refresh failed: {:?}",
                        outcome.as_ref().err().map(|e| e.code.as_str())
                    );
                    self.cache.refresh_failed(grant);
                }
            }
        }
        for id in fetch.waiters {
            let Some(plan) = self.requests.get_mut(&id).and_then(|s| s.waiting.take()) else {
                continue;
            };
            match &outcome {
                Ok(g) => {
                    if self.sign_or_refuse(host, id, &plan, g, now) == Action::Continue {
                        host.resume_request(id);
                    }
                }
                Err(e) => self.refuse_planned(host, id, e, &plan),
            }
        }
    }

    /// Upstream filter mode: remember the grant of a first attempt, or return, for a retry
    /// (whose grant header the first attempt removed), the grant of its first attempt.
    fn carry_grant_to_retries(
        &mut self,
        host: &mut impl Host,
        cfg: &Config,
        id: RequestId,
        headers: &[(&str, &[u8])],
        now: u64,
    ) -> Option<String> {
        let request_id = headers
            .iter()
            .find(|(k, _)| *k == "x-request-id")
            .and_then(|(_, v)| std::str::from_utf8(v).ok())?;
        let source = host
            .property(id, Property::SourceAddress)
            .and_then(|v| String::from_utf8(v).ok())
            .unwrap_or_default();
        let grant = headers
            .iter()
            .find(|(k, _)| *k == cfg.grant_header)
            .and_then(|(_, v)| std::str::from_utf8(v).ok());
        let mut r = self.retries.try_borrow_mut().ok()?;
        match grant {
            Some(g) => {
                r.remember(request_id, &source, g, now);
                None
            }
            None => r.recall(request_id, &source, now).map(str::to_string),
        }
    }

    /// Start request `id`'s audit record (when audit is on and it has none yet).
    fn start_audit(&mut self, cfg: &Config, id: RequestId, start_ms: u64) {
        if !(cfg.audit.log || cfg.audit.filter_state) {
            return;
        }
        let state = self.state(id);
        if state.audit.is_none() {
            state.audit = Some(Box::new(Audit::start(cfg, start_ms)));
        }
    }

    /// Authorize and sign request `id`, planned as `plan`, with `g`; on failure answer it
    /// locally. [`Action::Continue`] when it may go on.
    fn sign_or_refuse(
        &mut self,
        host: &mut impl Host,
        id: RequestId,
        plan: &Plan,
        g: &CachedGrant,
        now: u64,
    ) -> Action {
        let caller = if g.policy.needs_caller() {
            caller_of(host, id)
        } else {
            Caller::default()
        };
        if let Err(e) = request::authorize(plan, &g.policy, &caller) {
            self.refuse_planned(host, id, &e, plan);
            return Action::Pause;
        }
        if let Err(e) = request::sign_into(plan, &g.creds, now, &mut self.keys, &mut self.edits) {
            self.refuse_planned(host, id, &e, plan);
            return Action::Pause;
        }
        if let Err(s) = host.edit_request_headers(id, &self.edits) {
            // Never forward a half-edited request.
            warn!("could not write signed headers ({s})");
            let e = LocalError::internal("the signed headers could not be written");
            self.refuse_planned(host, id, &e, plan);
            return Action::Pause;
        }
        self.metrics.inc(Counter::Signed);
        // Kept for the answer only when it is checked for a refusal of the key.
        let audit = if self.config.as_ref().is_some_and(|c| c.drop_refused_keys) {
            let state = self.state(id);
            state.signed_with = Some((plan.grant_id.clone(), g.fetched_at));
            state.audit.as_mut()
        } else {
            self.requests.get_mut(&id).and_then(|s| s.audit.as_mut())
        };
        match audit {
            Some(a) => {
                a.record.outcome = String::from("signed");
                a.decided(host, id);
            }
            None => self.decided_from_plan(host, id, plan, "signed", None),
        }
        debug!(
            "signed {} {} as {}/{}",
            plan.method, plan.endpoint.host, plan.endpoint.signing_name, plan.endpoint.region
        );
        Action::Continue
    }

    /// Answer request `id`, planned as `plan`, locally, and account for it.
    fn refuse_planned(&mut self, host: &mut impl Host, id: RequestId, e: &LocalError, plan: &Plan) {
        let has_audit = self.requests.get(&id).is_some_and(|s| s.audit.is_some());
        if !has_audit {
            self.decided_from_plan(host, id, plan, e.code.as_str(), Some(e.status()));
        }
        self.refuse(host, id, e);
    }

    /// The filter state of request `id` when it has no audit record (only the log line
    /// starts one with the request): its decision, written from its plan.
    fn decided_from_plan(
        &self,
        host: &mut impl Host,
        id: RequestId,
        plan: &Plan,
        outcome: &str,
        status: Option<u32>,
    ) {
        if self.config.as_ref().is_some_and(|c| c.audit.filter_state) {
            host.set_filter_state(
                id,
                AUDIT_FILTER_STATE,
                plan.decision(outcome, status).to_json().as_bytes(),
            );
        }
    }

    /// Answer request `id` locally, and account for it.
    fn refuse(&mut self, host: &mut impl Host, id: RequestId, e: &LocalError) {
        self.metrics.error(host, e.code);
        if e.code == ErrorCode::GrantPolicyDenied {
            self.metrics.inc(Counter::PolicyDenials);
        }
        if let Some(mut a) = self.requests.get_mut(&id).and_then(|s| s.audit.take()) {
            a.record.outcome = e.code.to_string();
            a.record.status = Some(e.status());
            a.decided(host, id);
            if a.log {
                a.write_log(host, id, false);
            }
        }
        debug!("local reply {} {}", e.status(), e.code);
        host.send_local_reply(id, e);
    }
}

/// The body of the callout answer being delivered, `size` bytes long; one over `max` bytes is
/// not read, and stands as `max + 1` spaces, for the parser to refuse by its size.
fn answer_body(host: &mut impl Host, size: usize, max: usize) -> Vec<u8> {
    if size > max {
        vec![b' '; max + 1]
    } else {
        host.callout_body(size)
    }
}

/// The refusal of a request when the host's clock cannot be read.
fn no_clock() -> LocalError {
    LocalError::internal("Envoy did not give the current time")
}

/// The grant as another worker stored it, if it is still fresh.
fn shared_lookup(host: &mut impl Host, grant: &str, now: u64) -> Option<CachedGrant> {
    shared_usable(host, grant, now).filter(|g| now < g.fresh_until)
}

/// The grant as another worker stored it, if it may still be used (fresh or stale).
fn shared_usable(host: &mut impl Host, grant: &str, now: u64) -> Option<CachedGrant> {
    match host.get_shared(&shared_grant::key(grant)) {
        Some((bytes, _)) if !bytes.is_empty() => {
            shared_grant::decode(&bytes).filter(|g| now < g.usable_until)
        }
        _ => None,
    }
}

/// Put a fetched grant into the shared data, unless a newer key is there.
fn shared_store(host: &mut impl Host, grant: &str, g: &CachedGrant) {
    let key = shared_grant::key(grant);
    let cas = match host.get_shared(&key) {
        Some((bytes, cas)) => match shared_grant::decode(&bytes) {
            // Never replace a newer key.
            Some(other) if other.fetched_at > g.fetched_at => return,
            _ => cas,
        },
        None => 0,
    };
    if let Err(s) = host.set_shared(&key, &shared_grant::encode(g), cas) {
        debug!("shared data not updated ({s}): another worker wrote first");
    }
}

/// Drop a refused key from the shared data, unless another worker already replaced it.
fn shared_forget(host: &mut impl Host, grant: &str, fetched_at: u64) {
    let key = shared_grant::key(grant);
    if let Some((bytes, cas)) = host.get_shared(&key) {
        if shared_grant::decode(&bytes).is_some_and(|g| g.fetched_at == fetched_at) {
            let _ = host.set_shared(&key, b"", cas);
        }
    }
}
