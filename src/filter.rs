//! The proxy-wasm glue: moves bytes between Envoy and the core, nothing else.
//!
//! Per worker VM there is one [`Worker`] state shared by the root context and every request
//! context: the plugin configuration, the credential cache, the signing-key cache and the
//! vault fetches under way. Grants fetched on one worker are also put into Envoy's shared
//! data, so other workers take them from there instead of calling the vault.
//!
//! - A request whose grant is cached is signed in its headers callback without pausing.
//! - Otherwise the first request for a grant on this worker pauses and fetches it with one
//!   callout (two for a dynamic grant: the record, then the AWS secrets engine); further
//!   requests for the same grant pause and wait for that answer (single flight), and are
//!   signed and resumed from the callout's callback.
//! - The root context's tick refreshes used grants before they expire, so requests do not
//!   wait on refreshes; if the vault is down, a static key is served stale for a while.
//! - An AWS answer that refuses the key drops the grant from the caches, so the next
//!   request (or a retry of this one, when the filter runs as an upstream filter) is signed
//!   with a freshly fetched key.

use crate::abi::{Action, IdMap};
use crate::audit::{self, AuditRecord};
use crate::aws_response::{self, KeyVerdict};
use crate::cache::{Begin, CachedGrant, GrantCache, Inflight, Lookup, RetryStash};
use crate::config::{AuthMethod, Config, Mode};
use crate::errors::{ErrorCode, LocalError};
use crate::hostcalls::{self, Buffer, Map};
use crate::metrics::{Counter, Metrics};
use crate::policy::{self, Caller, Policy};
use crate::request::{self, Plan};
use crate::sigv4::SigningKeyCache;
use crate::vault::{self, DynamicSource, Source, VaultError};
use log::{debug, error, info, warn};
use std::cell::RefCell;
use std::rc::Rc;

/// How often the root context looks for grants to refresh.
const TICK_MS: u32 = 1000;

/// A request paused until its grant is fetched.
struct Waiting {
    plan: Plan,
}

/// Which read of a fetch is under way.
#[derive(Clone, Debug)]
enum Stage {
    /// The grant record in KV.
    Record,
    /// The AWS secrets engine, for a dynamic grant whose record said so.
    Dynamic {
        source: DynamicSource,
        policy: Policy,
    },
}

#[derive(Clone, Debug)]
struct Fetch {
    grant: String,
    stage: Stage,
    /// When the callout started (ms), for the latency histogram.
    started_ms: Option<u64>,
}

/// Filter state key of the audit record (`%FILTER_STATE(wasm.grant_sigv4_audit:PLAIN)%`).
const AUDIT_FILTER_STATE: &str = "grant_sigv4_audit";

/// The audit record of a request under way.
struct Audit {
    record: AuditRecord,
    start_ms: u64,
    /// Put the record into the filter state (audit.filter_state).
    filter_state: bool,
    /// Write the record as a log line (audit.log).
    log: bool,
}

/// What one callout answer leads to.
enum Step {
    /// Another read is needed (the AWS secrets engine).
    Next(Fetch),
    /// `fresh` is false when the vault could not be read and a stale key is served.
    Done {
        outcome: Result<Rc<CachedGrant>, LocalError>,
        fresh: bool,
    },
}

/// State shared by all contexts of one worker VM.
#[derive(Default)]
pub struct Worker {
    config: Option<Rc<Config>>,
    cache: GrantCache,
    keys: SigningKeyCache,
    inflight: Inflight,
    /// Requests paused while their grant is fetched, by context id.
    waiting: IdMap<Waiting>,
    /// The fetch each request started (it owns the callout), by context id.
    fetching: IdMap<Fetch>,
    /// Requests signed, by context id: the grant and when its key was fetched, so that an
    /// AWS refusal drops exactly that key.
    signed_with: IdMap<(String, u64)>,
    /// Background refreshes dispatched by the root context, by callout token.
    refreshes: IdMap<Fetch>,
    metrics: Metrics,
    /// Audit records of the requests under way, by context id.
    audits: IdMap<Audit>,
}

thread_local! {
    /// Grants of requests that may be retried (upstream filter mode), shared by the
    /// precheck and signing instances of this VM.
    static RETRIES: RefCell<RetryStash> = RefCell::new(RetryStash::default());
}

/// Upstream filter mode: remember the grant of a first attempt, or return, for a retry (whose
/// grant header the first attempt removed), the grant of its first attempt.
fn carry_grant_to_retries(cfg: &Config, headers: &[(&str, &[u8])], now: u64) -> Option<String> {
    let request_id = headers
        .iter()
        .find(|(k, _)| *k == "x-request-id")
        .and_then(|(_, v)| std::str::from_utf8(v).ok())?;
    let source = hostcalls::get_property(&["source", "address"])
        .ok()
        .flatten()
        .and_then(|v| String::from_utf8(v).ok())
        .unwrap_or_default();
    let grant = headers
        .iter()
        .find(|(k, _)| *k == cfg.grant_header)
        .and_then(|(_, v)| std::str::from_utf8(v).ok());
    RETRIES.with(|r| {
        let mut r = r.try_borrow_mut().ok()?;
        match grant {
            Some(g) => {
                r.remember(request_id, &source, g, now);
                None
            }
            None => r.recall(request_id, &source, now).map(str::to_string),
        }
    })
}

/// The state of one root context (one plugin configuration) on this worker.
pub type Shared = Rc<RefCell<Worker>>;

fn shared_key(grant: &str) -> String {
    format!("grant_sigv4/v1/{grant}")
}

/// The grant as another worker stored it, if it is still fresh.
fn shared_lookup(grant: &str, now: u64) -> Option<CachedGrant> {
    match hostcalls::get_shared(&shared_key(grant)) {
        Ok((Some(bytes), _)) if !bytes.is_empty() => {
            CachedGrant::decode(&bytes).filter(|g| now < g.fresh_until)
        }
        _ => None,
    }
}

fn shared_store(grant: &str, g: &CachedGrant) {
    let key = shared_key(grant);
    let cas = match hostcalls::get_shared(&key) {
        Ok((Some(bytes), cas)) => match CachedGrant::decode(&bytes) {
            // Never replace a newer key.
            Some(other) if other.fetched_at > g.fetched_at => return,
            _ => cas,
        },
        _ => 0,
    };
    if let Err(s) = hostcalls::set_shared(&key, &g.encode(), cas) {
        debug!("shared data not updated (status {s}): another worker wrote first");
    }
}

/// Drop a refused key from the shared data, unless another worker already replaced it.
fn shared_forget(grant: &str, fetched_at: u64) {
    let key = shared_key(grant);
    if let Ok((Some(bytes), cas)) = hostcalls::get_shared(&key) {
        if CachedGrant::decode(&bytes).is_some_and(|g| g.fetched_at == fetched_at) {
            let _ = hostcalls::set_shared(&key, b"", cas);
        }
    }
}

/// Start a vault read. The answer goes to the context that is running now.
fn dispatch(cfg: &Config, path: &str) -> Result<u32, String> {
    let all: [(&str, &[u8]); 5] = [
        (":method", b"GET"),
        (":path", path.as_bytes()),
        (":authority", cfg.vault.authority.as_bytes()),
        ("accept", b"application/json"),
        ("x-vault-token", cfg.vault.token.as_bytes()),
    ];
    // Behind a Vault or OpenBao Proxy the filter holds no token and sends none.
    let headers = match cfg.vault.auth {
        AuthMethod::Token => &all[..],
        AuthMethod::Proxy => &all[..4],
    };
    let timeout_ms = u32::try_from(cfg.vault.timeout_ms).unwrap_or(u32::MAX);
    hostcalls::dispatch_http_call(&cfg.vault.cluster, headers, timeout_ms)
        .map_err(|s| format!("status {s}"))
}

fn start_fetch(cfg: &Config, fetch: &mut Fetch, metrics: &mut Metrics) -> Result<u32, String> {
    metrics.inc(Counter::VaultCallouts);
    fetch.started_ms = hostcalls::now_ms().ok();
    let path = match &fetch.stage {
        Stage::Record => vault::grant_path(&cfg.vault, &fetch.grant),
        Stage::Dynamic { source, .. } => vault::dynamic_path(source),
    };
    dispatch(cfg, &path)
}

/// The `:status` of a header map, when it has a numeric one.
fn status_of(map: Map) -> Option<u32> {
    hostcalls::get_value(map, ":status")
        .ok()
        .flatten()
        .and_then(|v| std::str::from_utf8(&v).ok()?.parse::<u32>().ok())
}

/// Status and body of the callout answer being delivered now.
fn callout_answer(body_size: usize) -> (Option<u32>, Vec<u8>) {
    let status = status_of(Map::CallResponseHeaders);
    let body = if body_size > vault::MAX_RESPONSE_BYTES {
        // Too large to be a grant record: let the parser refuse it by size.
        vec![b' '; vault::MAX_RESPONSE_BYTES + 1]
    } else {
        hostcalls::get_buffer(Buffer::CallResponseBody, body_size).unwrap_or_default()
    };
    (status, body)
}

fn vault_error(cfg: &Config, e: &VaultError) -> LocalError {
    match e {
        VaultError::NotFound => LocalError::grant_not_found(),
        // Behind a proxy, the reply names it: that is where the operator looks first.
        VaultError::Unavailable(why) if cfg.vault.auth == AuthMethod::Proxy => LocalError::new(
            ErrorCode::VaultUnavailable,
            format!(
                "the credential store could not be read through the Vault/OpenBao Proxy \
                     (cluster {}): {}",
                cfg.vault.cluster,
                why.replace("the filter's token", "the proxy's token")
            ),
        ),
        VaultError::Unavailable(why) => LocalError::vault_unavailable(why),
        VaultError::BadRecord(why) => LocalError::new(
            ErrorCode::GrantRecordInvalid,
            format!("the stored record for this grant is not usable: {why}"),
        ),
    }
}

/// The caller's identity and address, read from the stream now in effect.
fn current_caller() -> Caller {
    let principal = hostcalls::get_property(&["connection", "uri_san_peer_certificate"])
        .ok()
        .flatten()
        .and_then(|v| String::from_utf8(v).ok())
        .filter(|s| !s.is_empty());
    let source = hostcalls::get_property(&["source", "address"])
        .ok()
        .flatten()
        .and_then(|v| String::from_utf8(v).ok())
        .and_then(|s| policy::parse_socket_ip(&s));
    Caller { principal, source }
}

/// Answer the request now in effect locally with a JSON error.
fn reply(e: &LocalError) {
    debug!("local reply {} {}", e.status(), e.code);
    let body = e.body();
    if let Err(s) = hostcalls::send_local_response(
        e.status(),
        &[("content-type", b"application/json")],
        body.as_bytes(),
    ) {
        warn!("could not send local reply {} (status {s})", e.code);
    }
}

/// Apply signing edits to the request now in effect.
fn apply(edits: &request::Edits) -> Result<(), hostcalls::Status> {
    for name in &edits.remove {
        hostcalls::remove(Map::RequestHeaders, name)?;
    }
    for (name, value) in &edits.set {
        hostcalls::replace(Map::RequestHeaders, name, value.as_bytes())?;
    }
    Ok(())
}

impl Worker {
    /// Answer the request now in effect (context `ctx`), planned as `plan`, locally, and
    /// account for it.
    fn refuse_planned(&mut self, ctx: u32, e: &LocalError, plan: &Plan) {
        self.decided_from_plan(ctx, plan, e.code.as_str(), Some(e.status()));
        self.refuse(ctx, e);
    }

    /// The filter state of request `ctx` when it has no audit record (only the log line
    /// starts one with the request): its decision, written from its plan.
    fn decided_from_plan(&self, ctx: u32, plan: &Plan, outcome: &str, status: Option<u32>) {
        if !self.audits.contains_key(&ctx)
            && self.config.as_ref().is_some_and(|c| c.audit.filter_state)
        {
            let _ = hostcalls::set_property(
                AUDIT_FILTER_STATE,
                plan.decision(outcome, status).to_json().as_bytes(),
            );
        }
    }

    /// Answer the request now in effect (context `ctx`) locally, and account for it.
    fn refuse(&mut self, ctx: u32, e: &LocalError) {
        self.metrics.error(e.code);
        if e.code == ErrorCode::GrantPolicyDenied {
            self.metrics.inc(Counter::PolicyDenials);
        }
        if let Some(mut a) = self.audits.remove(&ctx) {
            a.record.outcome = e.code.to_string();
            a.record.status = Some(e.status());
            decided(&mut a);
            if a.log {
                log_audit(&mut a, None);
            }
        }
        reply(e);
    }

    /// Authorize and sign the request now in effect (context `ctx`) with `g`; on failure
    /// answer it locally. Returns whether the request may continue.
    fn sign_current(&mut self, ctx: u32, plan: &Plan, g: &CachedGrant, now: u64) -> bool {
        let caller = if g.policy.needs_caller() {
            current_caller()
        } else {
            Caller::default()
        };
        if let Err(e) = request::authorize(plan, &g.policy, &caller) {
            self.refuse_planned(ctx, &e, plan);
            return false;
        }
        match request::sign(plan, &g.creds, now, &mut self.keys) {
            Ok(edits) => match apply(&edits) {
                Ok(()) => {
                    self.signed_with
                        .insert(ctx, (plan.grant_id.clone(), g.fetched_at));
                    self.metrics.inc(Counter::Signed);
                    if let Some(a) = self.audits.get_mut(&ctx) {
                        a.record.outcome = String::from("signed");
                        decided(a);
                    }
                    self.decided_from_plan(ctx, plan, "signed", None);
                    debug!(
                        "signed {} {} as {}/{}",
                        plan.method,
                        plan.endpoint.host,
                        plan.endpoint.signing_name,
                        plan.endpoint.region
                    );
                    true
                }
                Err(s) => {
                    // Never forward a half-edited request.
                    warn!("could not write signed headers (status {s})");
                    self.refuse_planned(
                        ctx,
                        &LocalError::internal("the signed headers could not be written"),
                        plan,
                    );
                    false
                }
            },
            Err(e) => {
                self.refuse_planned(ctx, &e, plan);
                false
            }
        }
    }

    /// Digest one callout answer for `fetch`.
    fn step(
        &mut self,
        cfg: &Config,
        fetch: Fetch,
        status: Option<u32>,
        body: &[u8],
        now: u64,
    ) -> Step {
        if let Some(ms) = hostcalls::now_ms()
            .ok()
            .and_then(|t| t.checked_sub(fetch.started_ms?))
        {
            self.metrics.callout_latency(ms);
        }
        if !matches!(status, Some(200) | Some(404)) {
            self.metrics.inc(Counter::VaultFailures);
        }
        let fetched = match fetch.stage {
            Stage::Record => match vault::parse_grant_response(status, body) {
                Ok(rec) => match rec.source {
                    Source::Static(creds) => {
                        Ok(CachedGrant::new_static(creds, rec.policy, now, &cfg.cache))
                    }
                    Source::Dynamic(source) => {
                        return Step::Next(Fetch {
                            grant: fetch.grant,
                            stage: Stage::Dynamic {
                                source,
                                policy: rec.policy,
                            },
                            started_ms: None,
                        })
                    }
                },
                Err(e) => Err(e),
            },
            Stage::Dynamic { source, policy } => {
                vault::parse_dynamic_response(status, body).map(|(creds, lease)| {
                    CachedGrant::new_dynamic(creds, policy, source, lease, now, &cfg.cache)
                })
            }
        };
        let grant = fetch.grant;
        let mut fresh = true;
        let outcome = match fetched {
            Ok(g) => {
                shared_store(&grant, &g);
                Ok(self.cache.insert(&grant, g))
            }
            Err(VaultError::NotFound) => {
                self.cache
                    .remember_not_found(&grant, now.saturating_add(cfg.cache.negative_ttl_seconds));
                Err(vault_error(cfg, &VaultError::NotFound))
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
                    Err(vault_error(cfg, &e))
                }
            },
            Err(e) => {
                warn!("vault read for a grant failed: {e:?}");
                Err(vault_error(cfg, &e))
            }
        };
        Step::Done { outcome, fresh }
    }
}

/// Format log messages only at the level Envoy's `wasm` logger shows: a debug message that
/// Envoy drops would still cost formatting and a host call on every request.
fn follow_envoy_log_level() {
    let level = match hostcalls::log_level() {
        Ok(0) => log::LevelFilter::Trace,
        Ok(1) => log::LevelFilter::Debug,
        Ok(2) => log::LevelFilter::Info,
        Ok(3) => log::LevelFilter::Warn,
        Ok(_) => log::LevelFilter::Error,
        Err(_) => log::LevelFilter::Info,
    };
    if log::max_level() != level {
        log::set_max_level(level);
    }
}

#[derive(Default)]
pub struct Root {
    worker: Shared,
}

impl Root {
    /// The state shared with this root's requests.
    pub fn worker(&self) -> Shared {
        Rc::clone(&self.worker)
    }

    /// Answers of background refreshes.
    pub fn on_http_call_response(&mut self, token: u32, body_size: usize) {
        let mut w = self.worker.borrow_mut();
        let Some(fetch) = w.refreshes.remove(&token) else {
            return;
        };
        let Some(cfg) = w.config.clone() else {
            return;
        };
        let (status, body) = callout_answer(body_size);
        let grant = fetch.grant.clone();
        let Ok(now) = hostcalls::now_secs() else {
            warn!("background refresh dropped: Envoy did not give the current time");
            w.cache.refresh_failed(&grant);
            return;
        };
        match w.step(&cfg, fetch, status, &body, now) {
            Step::Next(mut next) => match start_fetch(&cfg, &mut next, &mut w.metrics) {
                Ok(t) => {
                    w.refreshes.insert(t, next);
                }
                Err(e) => {
                    warn!("background refresh could not start: {e}");
                    w.cache.refresh_failed(&grant);
                }
            },
            Step::Done {
                outcome: Ok(_),
                fresh: true,
            } => {
                w.metrics.inc(Counter::Refreshes);
                debug!("refreshed a grant in the background");
            }
            Step::Done { outcome, .. } => {
                debug!(
                    "background refresh failed: {:?}",
                    outcome.err().map(|e| e.code)
                );
                w.cache.refresh_failed(&grant);
            }
        }
    }

    pub fn on_configure(&mut self, size: usize) -> bool {
        follow_envoy_log_level();
        let bytes = if size == 0 {
            Vec::new()
        } else {
            hostcalls::get_buffer(Buffer::PluginConfiguration, size).unwrap_or_default()
        };
        match Config::parse(&bytes).and_then(|mut c| {
            c.resolve_token(|name| std::env::var(name).ok())?;
            Ok(c)
        }) {
            Ok(cfg) => {
                match cfg.mode {
                    Mode::Sign => {
                        info!(
                            "grant-sigv4 configured: grant header {}, vault cluster {}, vault auth {}, cache ttl {}s",
                            cfg.grant_header, cfg.vault.cluster, cfg.vault.auth.as_str(), cfg.cache.ttl_seconds
                        );
                    }
                    Mode::Precheck => info!(
                        "grant-sigv4 configured: precheck, grant header {}, max body {} bytes",
                        cfg.grant_header, cfg.max_body_bytes
                    ),
                }
                if let Err(s) = hostcalls::set_tick_period_ms(TICK_MS) {
                    warn!("no tick (status {s}): no background refresh, metrics not flushed");
                }
                let mut w = self.worker.borrow_mut();
                w.config = Some(Rc::new(cfg));
                w.cache = GrantCache::default();
                w.metrics = Metrics::define();
                true
            }
            Err(e) => {
                error!("grant-sigv4: {e}");
                false
            }
        }
    }

    /// Refresh used grants ahead of their expiry, from the root context, so that the
    /// answers come back here whatever happens to the requests.
    pub fn on_tick(&mut self) {
        follow_envoy_log_level();
        let mut w = self.worker.borrow_mut();
        w.metrics.flush();
        let Some(cfg) = w.config.clone() else {
            return;
        };
        let Ok(now) = hostcalls::now_secs() else {
            warn!("no background refresh: Envoy did not give the current time");
            return;
        };
        for grant in w.cache.due_for_refresh(now) {
            // Another worker may have refreshed it already.
            if let Some(g) = shared_lookup(&grant, now).filter(|g| now < g.refresh_at) {
                w.cache.insert(&grant, g);
                continue;
            }
            let mut fetch = Fetch {
                grant: grant.clone(),
                stage: Stage::Record,
                started_ms: None,
            };
            match start_fetch(&cfg, &mut fetch, &mut w.metrics) {
                Ok(token) => {
                    w.refreshes.insert(token, fetch);
                }
                Err(e) => {
                    warn!("background refresh could not start: {e}");
                    w.cache.refresh_failed(&grant);
                }
            }
        }
    }
}

/// One request, seen from the callbacks Envoy makes for it.
struct Signer {
    id: u32,
    worker: Shared,
}

impl Signer {
    /// Sign or answer every request that waited for `grant` (and this one, if it waits),
    /// then return to this context.
    fn release(&self, grant: &str, outcome: &Result<Rc<CachedGrant>, LocalError>, now: u64) {
        let mut w = self.worker.borrow_mut();
        let mut all = w.inflight.finish(grant);
        all.insert(0, self.id);
        for ctx in all {
            let Some(waiting) = w.waiting.remove(&ctx) else {
                continue;
            };
            if hostcalls::set_effective_context(ctx).is_err() {
                continue;
            }
            match outcome {
                Ok(g) => {
                    if w.sign_current(ctx, &waiting.plan, g, now) {
                        if let Err(s) = hostcalls::resume_request() {
                            debug!("request {ctx} could not resume (status {s})");
                        }
                    }
                }
                Err(e) => w.refuse_planned(ctx, e, &waiting.plan),
            }
        }
        let _ = hostcalls::set_effective_context(self.id);
    }

    /// Start this request's audit record (when audit is on and it has none yet).
    fn start_audit(&self, cfg: &Config, start_ms: u64) {
        if !(cfg.audit.log || cfg.audit.filter_state) {
            return;
        }
        self.worker
            .borrow_mut()
            .audits
            .entry(self.id)
            .or_insert_with(|| Audit {
                record: AuditRecord {
                    // Only the log line has a time (the access log has Envoy's).
                    time: if cfg.audit.log {
                        audit::rfc3339_ms(start_ms)
                    } else {
                        String::new()
                    },
                    ..AuditRecord::default()
                },
                start_ms,
                filter_state: cfg.audit.filter_state,
                log: cfg.audit.log,
            });
    }

    /// Answer this request locally, and account for it.
    fn refuse(&self, e: &LocalError) -> Action {
        self.worker.borrow_mut().refuse(self.id, e);
        Action::Pause
    }

    /// A vault answer for the fetch this request owns.
    fn on_http_call_response(&self, body_size: usize) {
        let Some(fetch) = self.worker.borrow_mut().fetching.remove(&self.id) else {
            return;
        };
        let Some(cfg) = self.worker.borrow().config.clone() else {
            return;
        };
        let (status, body) = callout_answer(body_size);
        let grant = fetch.grant.clone();
        let Ok(now) = hostcalls::now_secs() else {
            // Never sign with a made-up date: the waiting requests are refused.
            let e = LocalError::internal("Envoy did not give the current time");
            self.release(&grant, &Err(e), 0);
            return;
        };
        let step = self
            .worker
            .borrow_mut()
            .step(&cfg, fetch, status, &body, now);
        let outcome = match step {
            Step::Next(mut next) => {
                let started = {
                    let mut w = self.worker.borrow_mut();
                    start_fetch(&cfg, &mut next, &mut w.metrics)
                };
                match started {
                    Ok(token) => {
                        crate::abi::callout_started(token, self.id);
                        self.worker.borrow_mut().fetching.insert(self.id, next);
                        return;
                    }
                    Err(e) => {
                        warn!("vault callout failed to start: {e}");
                        Err(LocalError::vault_unavailable(
                            "the AWS secrets engine could not be called",
                        ))
                    }
                }
            }
            Step::Done { outcome, .. } => outcome,
        };
        self.release(&grant, &outcome, now);
    }

    /// The request is gone (answered, or the client went away).
    fn on_delete(&self) {
        let Ok(mut w) = self.worker.try_borrow_mut() else {
            return;
        };
        w.waiting.remove(&self.id);
        w.signed_with.remove(&self.id);
        w.fetching.remove(&self.id);
        if let Some(mut a) = w.audits.remove(&self.id) {
            if a.log {
                // Ended before an answer came back (the client or the upstream went away).
                log_audit(&mut a, None);
            }
        }
        if let Some((_grant, waiters)) = w.inflight.forget(self.id) {
            // This request owned a fetch and went away before the answer: nobody will
            // resume the requests that waited for it, so answer them now.
            let e = LocalError::vault_unavailable("the credential fetch was abandoned; retry");
            for ctx in waiters {
                if let Some(waiting) = w.waiting.remove(&ctx) {
                    if hostcalls::set_effective_context(ctx).is_ok() {
                        w.refuse_planned(ctx, &e, &waiting.plan);
                    }
                }
            }
            let _ = hostcalls::set_effective_context(self.id);
        }
    }

    fn on_http_request_headers(&self, end_of_stream: bool) -> Action {
        let Some(cfg) = self.worker.borrow().config.clone() else {
            reply(&LocalError::internal("the filter is not configured"));
            return Action::Pause;
        };
        // Never sign with a made-up date (a 1970 signature): no clock, no signature.
        let Ok(start_ms) = hostcalls::now_ms() else {
            return self.refuse(&LocalError::internal("Envoy did not give the current time"));
        };
        // A record is started with the request only for the log line (which needs its start
        // time); for the filter state alone, what is known is written when the outcome is
        // decided. The precheck instance passes most requests on, which the signing instance
        // then audits: its own record is started only when it refuses.
        if cfg.mode == Mode::Sign && cfg.audit.log {
            self.start_audit(&cfg, start_ms);
        }
        let raw = hostcalls::get_map(Map::RequestHeaders);
        let Some(mut headers) = raw.as_ref().ok().and_then(hostcalls::RawMap::pairs) else {
            warn!("could not read request headers");
            self.start_audit(&cfg, start_ms);
            return self.refuse(&LocalError::internal(
                "the request headers could not be read",
            ));
        };
        #[cfg(feature = "crash-test")]
        if headers
            .iter()
            .any(|(k, _)| *k == "x-grant-sigv4-crash-test")
        {
            std::process::abort();
        }
        let now = start_ms / 1000;
        let retry_grant = if cfg.upstream_filter {
            carry_grant_to_retries(&cfg, &headers, now)
        } else {
            None
        };
        if let Some(g) = &retry_grant {
            headers.push((cfg.grant_header.as_str(), g.as_bytes()));
        }
        if cfg.mode == Mode::Precheck {
            return match request::precheck_request(&cfg, &headers, end_of_stream) {
                Ok(None) => Action::Continue,
                // The grant is named by the client's own signature, which the body hasher
                // behind this instance replaces: hand its credential scope on.
                Ok(Some((name, value))) => {
                    match hostcalls::replace(Map::RequestHeaders, name, value.as_bytes()) {
                        Ok(()) => Action::Continue,
                        Err(_) => {
                            self.start_audit(&cfg, start_ms);
                            self.refuse(&LocalError::internal(
                                "the client's credential scope could not be handed on",
                            ))
                        }
                    }
                }
                Err(e) => {
                    self.start_audit(&cfg, start_ms);
                    self.refuse(&e)
                }
            };
        }
        let plan = match request::plan_request(&cfg, &headers, end_of_stream) {
            Ok(p) => p,
            Err(e) => {
                self.start_audit(&cfg, start_ms);
                if let Some(a) = self.worker.borrow_mut().audits.get_mut(&self.id) {
                    // What can be told of a refused request without trusting it.
                    a.record.grant_id = headers
                        .iter()
                        .find(|(k, _)| *k == cfg.grant_header)
                        .and_then(|(_, v)| vault::validate_grant_id(v).ok())
                        .map(str::to_string);
                }
                return self.refuse(&e);
            }
        };

        let mut w = self.worker.borrow_mut();
        if let Some(a) = w.audits.get_mut(&self.id) {
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
        match w.cache.lookup(&plan.grant_id, now) {
            Lookup::Fresh(g) => {
                w.metrics.inc(Counter::CacheHit);
                return if w.sign_current(self.id, &plan, &g, now) {
                    Action::Continue
                } else {
                    Action::Pause
                };
            }
            Lookup::NotFound => {
                w.metrics.inc(Counter::CacheHit);
                w.refuse_planned(self.id, &LocalError::grant_not_found(), &plan);
                return Action::Pause;
            }
            Lookup::Stale(_) | Lookup::Miss => {}
        }
        if let Some(g) = shared_lookup(&plan.grant_id, now) {
            w.metrics.inc(Counter::SharedHit);
            let g = w.cache.insert(&plan.grant_id, g);
            return if w.sign_current(self.id, &plan, &g, now) {
                Action::Continue
            } else {
                Action::Pause
            };
        }
        w.metrics.inc(Counter::CacheMiss);
        let grant = plan.grant_id.clone();
        let begin = w.inflight.begin(&grant, self.id);
        w.waiting.insert(self.id, Waiting { plan });
        if begin == Begin::Fetch {
            let mut fetch = Fetch {
                grant: grant.clone(),
                stage: Stage::Record,
                started_ms: None,
            };
            let started = start_fetch(&cfg, &mut fetch, &mut w.metrics);
            match started {
                Ok(token) => {
                    w.fetching.insert(self.id, fetch);
                    drop(w);
                    crate::abi::callout_started(token, self.id);
                }
                Err(e) => {
                    drop(w);
                    warn!(
                        "vault callout to cluster {} failed to start: {e}",
                        cfg.vault.cluster
                    );
                    let e = LocalError::vault_unavailable(
                        "the vault callout could not be started (is the vault cluster defined?)",
                    );
                    self.release(&grant, &Err(e), now);
                }
            }
        }
        Action::Pause
    }

    fn on_http_response_headers(&self) {
        let Ok(mut w) = self.worker.try_borrow_mut() else {
            return;
        };
        if let Some(mut a) = w.audits.remove(&self.id) {
            if a.log {
                log_audit(&mut a, Some(Map::ResponseHeaders));
            }
        }
        let Some((grant, fetched_at)) = w.signed_with.remove(&self.id) else {
            // Not signed by this filter (a local reply, or not handled): nothing to learn.
            return;
        };
        let status = status_of(Map::ResponseHeaders).unwrap_or(0);
        if status != 400 && status != 403 {
            return;
        }
        let error_type = hostcalls::get_value(Map::ResponseHeaders, "x-amzn-errortype")
            .ok()
            .flatten()
            .and_then(|v| String::from_utf8(v).ok());
        let verdict = aws_response::key_verdict(status, error_type.as_deref());
        if verdict != KeyVerdict::Accepted {
            let Some(cfg) = w.config.clone() else {
                return;
            };
            let Ok(now) = hostcalls::now_secs() else {
                warn!("AWS refused a grant's key, but Envoy did not give the current time: it stays cached");
                return;
            };
            if w.cache
                .invalidate(&grant, fetched_at, now, cfg.cache.min_refetch_seconds)
            {
                w.metrics.inc(Counter::KeyRefusals);
                shared_forget(&grant, fetched_at);
                warn!("AWS refused a grant's key ({verdict:?}, status {status}); it will be fetched again");
            }
        }
    }
}

/// The outcome is known (signed, or refused): put what only the filter knows into the
/// filter state, once, with no work on the response path. The access log adds what Envoy
/// knows itself (status, duration, caller address and identity, AWS request id).
fn decided(a: &mut Audit) {
    if a.filter_state {
        let _ = hostcalls::set_property(AUDIT_FILTER_STATE, a.record.decision_json().as_bytes());
    }
}

/// The audit log line `grant_sigv4.audit {json}`, once the answer's headers are known
/// (`answer`: AWS's response headers; `None` for a local reply, whose status is already in
/// the record, or for a request that ended without an answer).
fn log_audit(a: &mut Audit, answer: Option<Map>) {
    if let Some(map) = answer {
        if a.record.status.is_none() {
            a.record.status = status_of(map);
            a.record.aws_request_id = ["x-amzn-requestid", "x-amz-request-id"]
                .iter()
                .find_map(|h| hostcalls::get_value(map, h).ok().flatten())
                .and_then(|v| String::from_utf8(v).ok());
        }
    }
    if a.record.outcome.is_empty() {
        // Ended before the filter decided (the client went away).
        a.record.outcome = String::from("incomplete");
    }
    let caller = current_caller();
    a.record.principal = caller.principal;
    a.record.source = caller.source.map(|ip| ip.to_string());
    a.record.duration_ms = hostcalls::now_ms()
        .unwrap_or(a.start_ms)
        .saturating_sub(a.start_ms);
    info!("grant_sigv4.audit {}", a.record.to_json());
}

fn signer(worker: &Shared, id: u32) -> Signer {
    Signer {
        id,
        worker: Rc::clone(worker),
    }
}

/// `proxy_on_request_headers` of request `id`.
pub fn request_headers(worker: &Shared, id: u32, end_of_stream: bool) -> Action {
    signer(worker, id).on_http_request_headers(end_of_stream)
}

/// `proxy_on_response_headers` of request `id`.
pub fn response_headers(worker: &Shared, id: u32) {
    signer(worker, id).on_http_response_headers();
}

/// A vault answer for request `id` (now the effective context).
pub fn request_callout_answer(worker: &Shared, id: u32, body_size: usize) {
    signer(worker, id).on_http_call_response(body_size);
}

/// `proxy_on_delete` of request `id`.
pub fn request_done(worker: &Shared, id: u32) {
    signer(worker, id).on_delete();
}
