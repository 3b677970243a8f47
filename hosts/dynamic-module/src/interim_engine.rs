//! TEMPORARY: a minimal stand-in for the core's engine (the issue "One engine, thin hosts"),
//! to be deleted when the engine lands; the hooks (`hooks.rs`) then feed the engine's events
//! and interpret its effects instead of this file's.
//!
//! It has the engine's shape on purpose — events in (request headers, body complete, callout
//! answer, response headers), one [`Step`] out (header edits, a vault read to start, and what
//! the stream does next) — and holds all of this host's policy, kept minimal:
//! - one process-wide grant cache shared by all workers (a module is loaded once per process),
//!   a static key fresh for `cache.ttl_seconds`, served stale up to `cache.max_stale_seconds`
//!   while the vault fails; a dynamic key until its lease ends;
//! - no single flight (each request that misses starts its own read), no negative cache, no
//!   background refresh, no audit record, no metrics;
//! - a key that AWS refuses is dropped from the cache.
//!
//! Everything it decides with comes from the core: `request` (planning, policy check,
//! signing), `vault` (paths and answer parsing), `cache::CachedGrant` (time limits), `errors`.

use grant_sigv4_core::aws_response::{self, KeyVerdict};
use grant_sigv4_core::config::{Config, VaultConfig};
use grant_sigv4_core::errors::{ErrorCode, LocalError};
use grant_sigv4_core::grant_cache::CachedGrant;
use grant_sigv4_core::policy::{Caller, Policy};
use grant_sigv4_core::request::{self, Edits, Plan};
use grant_sigv4_core::sigv4::SigningKeyCache;
use grant_sigv4_core::vault::{self, DynamicSource, Source, VaultError};
use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

/// Most grants kept; past this, expired entries are dropped, then all.
const MAX_GRANTS: usize = 4096;

type Grants = HashMap<String, Arc<CachedGrant>>;

/// The process-wide grant cache, keyed by [`cache_key`].
fn grants() -> &'static Mutex<Grants> {
    static GRANTS: OnceLock<Mutex<Grants>> = OnceLock::new();
    GRANTS.get_or_init(|| Mutex::new(HashMap::new()))
}

fn with_grants<R>(f: impl FnOnce(&mut Grants) -> R) -> R {
    // A panic while the lock was held leaves a map that is still consistent (every update is
    // one insert or remove), so a poisoned lock is used as it is.
    let mut g = grants().lock().unwrap_or_else(|e| e.into_inner());
    f(&mut g)
}

thread_local! {
    /// Signing keys per worker (derived once per secret, day, region and service).
    static KEYS: RefCell<SigningKeyCache> = RefCell::new(SigningKeyCache::default());
}

/// Two filter configurations that read different vaults or paths never share entries.
fn cache_key(v: &VaultConfig, grant: &str) -> String {
    format!(
        "{}\n{}\n{}\n{}\n{}",
        v.cluster, v.authority, v.kv_mount, v.path_prefix, grant
    )
}

/// A vault read to start: GET `path` on the configured vault cluster.
#[derive(Debug)]
pub struct VaultRead {
    pub path: String,
}

/// What the stream does after an event.
#[derive(Debug)]
pub enum Next {
    /// Go on (from a hook: return Continue; from a callout answer: resume the request).
    Continue,
    /// Stay paused: a vault answer or the rest of the body is awaited.
    Wait,
    /// Answer locally, forward nothing.
    Reply(LocalError),
}

/// The effects of one event, applied by the host in this order: edits, vault read, next.
#[derive(Debug)]
pub struct Step {
    pub edits: Option<Edits>,
    pub read: Option<VaultRead>,
    pub next: Next,
}

impl Step {
    fn next(next: Next) -> Self {
        Step {
            edits: None,
            read: None,
            next,
        }
    }

    fn reply(e: LocalError) -> Self {
        Step::next(Next::Reply(e))
    }
}

/// Which vault read is under way.
enum Fetch {
    Record,
    Dynamic {
        source: DynamicSource,
        policy: Policy,
    },
}

/// Where the body's hash stands.
#[derive(Clone, Copy, PartialEq, Eq)]
enum BodyHash {
    /// Known at headers time (or no body).
    Known,
    /// To be computed by the host when the body is complete.
    Pending,
}

/// One request, from its headers to its end.
pub struct Request {
    cfg: Arc<Config>,
    plan: Option<Plan>,
    grant: Option<Arc<CachedGrant>>,
    fetch: Option<Fetch>,
    body: BodyHash,
    /// The grant and when its key was fetched, once signed: an AWS refusal drops that key.
    signed_with: Option<(String, u64)>,
    finished: bool,
}

impl Request {
    pub fn new(cfg: Arc<Config>) -> Self {
        Request {
            cfg,
            plan: None,
            grant: None,
            fetch: None,
            body: BodyHash::Known,
            signed_with: None,
            finished: false,
        }
    }

    /// The filter configuration this request runs under.
    pub fn config(&self) -> Arc<Config> {
        Arc::clone(&self.cfg)
    }

    /// Whether the host must buffer the body and hand in its SHA-256 ([`Request::body_complete`]).
    pub fn needs_body_hash(&self) -> bool {
        self.body == BodyHash::Pending && !self.finished
    }

    /// The most body bytes the host buffers for hashing.
    pub fn max_body_bytes(&self) -> u64 {
        self.cfg.max_body_bytes
    }

    /// Whether the request was answered locally or let through (no further event matters
    /// but the response's).
    pub fn finished(&self) -> bool {
        self.finished
    }

    /// Event: the request headers.
    pub fn request_headers(
        &mut self,
        headers: &[(String, Vec<u8>)],
        end_of_stream: bool,
        now: u64,
        caller: &mut dyn FnMut() -> Caller,
    ) -> Step {
        let plan = match request::plan_request_hashing_body(&self.cfg, headers, end_of_stream) {
            Ok(p) => p,
            Err(e) => return self.refuse(e),
        };
        if plan.payload_hash.is_empty() {
            self.body = BodyHash::Pending;
        }
        let key = cache_key(&self.cfg.vault, &plan.grant_id);
        let cached = with_grants(|g| g.get(&key).filter(|g| now < g.fresh_until).cloned());
        self.plan = Some(plan);
        match cached {
            Some(g) => {
                self.grant = Some(g);
                self.sign_if_ready(now, caller)
            }
            None => self.start(Fetch::Record),
        }
    }

    /// Event: the body is complete and hashed (`sha256_hex`: lowercase hex of its SHA-256).
    pub fn body_complete(
        &mut self,
        sha256_hex: String,
        now: u64,
        caller: &mut dyn FnMut() -> Caller,
    ) -> Step {
        if let Some(p) = self.plan.as_mut() {
            p.payload_hash = sha256_hex;
        }
        self.body = BodyHash::Known;
        self.sign_if_ready(now, caller)
    }

    /// Event: the body passed `max_body_bytes` while it was being buffered.
    pub fn body_too_large(&mut self) -> Step {
        self.refuse(LocalError::new(
            ErrorCode::BodyTooLarge,
            format!(
                "the body is more than max_body_bytes ({})",
                self.cfg.max_body_bytes
            ),
        ))
    }

    /// Event: a vault read could not be started.
    pub fn read_not_started(&mut self) -> Step {
        self.fetch = None;
        self.refuse(LocalError::vault_unavailable(
            "the vault callout could not be started (is the vault cluster defined?)",
        ))
    }

    /// Event: the answer of the vault read under way (`status` `None`: no answer).
    pub fn vault_answer(
        &mut self,
        status: Option<u32>,
        body: &[u8],
        now: u64,
        caller: &mut dyn FnMut() -> Caller,
    ) -> Step {
        let Some(fetch) = self.fetch.take() else {
            return Step::next(Next::Wait);
        };
        let Some(grant_id) = self.plan.as_ref().map(|p| p.grant_id.clone()) else {
            return Step::next(Next::Wait);
        };
        let fetched = match fetch {
            Fetch::Record => match vault::parse_grant_response(status, body) {
                Ok(rec) => match rec.source {
                    Source::Static(creds) => Ok(CachedGrant::new_static(
                        creds,
                        rec.policy,
                        now,
                        &self.cfg.cache,
                    )),
                    Source::Dynamic(source) => {
                        return self.start(Fetch::Dynamic {
                            source,
                            policy: rec.policy,
                        })
                    }
                },
                Err(e) => Err(e),
            },
            Fetch::Dynamic { source, policy } => {
                vault::parse_dynamic_response(status, body).map(|(creds, lease)| {
                    CachedGrant::new_dynamic(creds, policy, source, lease, now, &self.cfg.cache)
                })
            }
        };
        let key = cache_key(&self.cfg.vault, &grant_id);
        let grant = match fetched {
            Ok(g) => {
                let g = Arc::new(g);
                with_grants(|m| {
                    if m.len() >= MAX_GRANTS {
                        m.retain(|_, g| now < g.usable_until);
                        if m.len() >= MAX_GRANTS {
                            m.clear();
                        }
                    }
                    m.insert(key, Arc::clone(&g));
                });
                g
            }
            Err(e @ VaultError::Unavailable(_)) => {
                // The vault is down: a key still usable is served.
                match with_grants(|m| m.get(&key).filter(|g| now < g.usable_until).cloned()) {
                    Some(g) => g,
                    None => return self.refuse(e.local_error(&self.cfg.vault)),
                }
            }
            Err(e) => return self.refuse(e.local_error(&self.cfg.vault)),
        };
        self.grant = Some(grant);
        self.sign_if_ready(now, caller)
    }

    /// Event: the response headers (`error_type`: `x-amzn-errortype`).
    pub fn response_headers(&mut self, status: u32, error_type: Option<&str>) {
        let Some((grant, fetched_at)) = self.signed_with.take() else {
            return;
        };
        if aws_response::key_verdict(status, error_type) == KeyVerdict::Accepted {
            return;
        }
        let key = cache_key(&self.cfg.vault, &grant);
        with_grants(|m| {
            if m.get(&key).is_some_and(|g| g.fetched_at == fetched_at) {
                m.remove(&key);
            }
        });
    }

    fn start(&mut self, fetch: Fetch) -> Step {
        let path = match (&fetch, &self.plan) {
            (Fetch::Record, Some(p)) => vault::grant_path(&self.cfg.vault, &p.grant_id),
            (Fetch::Dynamic { source, .. }, _) => vault::dynamic_path(source),
            (Fetch::Record, None) => {
                return self.refuse(LocalError::internal("no request plan"));
            }
        };
        self.fetch = Some(fetch);
        Step {
            edits: None,
            read: Some(VaultRead { path }),
            next: Next::Wait,
        }
    }

    fn refuse(&mut self, e: LocalError) -> Step {
        self.finished = true;
        self.fetch = None;
        Step::reply(e)
    }

    fn sign_if_ready(&mut self, now: u64, caller: &mut dyn FnMut() -> Caller) -> Step {
        if self.body == BodyHash::Pending || self.finished {
            return Step::next(Next::Wait);
        }
        let (Some(plan), Some(g)) = (self.plan.as_ref(), self.grant.as_ref()) else {
            return Step::next(Next::Wait);
        };
        let who = if g.policy.needs_caller() {
            caller()
        } else {
            Caller::default()
        };
        if let Err(e) = request::authorize(plan, &g.policy, &who) {
            return self.refuse(e);
        }
        let signed = KEYS.with(|k| match k.try_borrow_mut() {
            Ok(mut keys) => request::sign(plan, &g.creds, now, &mut keys),
            Err(_) => request::sign(plan, &g.creds, now, &mut SigningKeyCache::default()),
        });
        match signed {
            Ok(edits) => {
                self.signed_with = Some((plan.grant_id.clone(), g.fetched_at));
                self.finished = true;
                Step {
                    edits: Some(edits),
                    read: None,
                    next: Next::Continue,
                }
            }
            Err(e) => self.refuse(e),
        }
    }
}
