//! The proxy-wasm glue: moves bytes between Envoy and the core, nothing else.
//!
//! Per worker VM there is one [`Worker`] state shared by the root context and every request
//! context: the plugin configuration, the credential cache, the signing-key cache and the
//! vault fetches under way. A request whose grant is cached is signed in its headers
//! callback without pausing. Otherwise the first request for a grant pauses and fetches it
//! from the vault with one callout; further requests for the same grant pause and wait for
//! that answer (single flight), and are signed and resumed from the callout's callback.

use crate::cache::{Begin, GrantCache, Inflight};
use crate::config::{Config, Mode};
use crate::errors::LocalError;
use crate::hostcalls::{self, Buffer, Map};
use crate::request::{self, Plan};
use crate::sigv4::SigningKeyCache;
use crate::vault::{self, Credentials, VaultError};
use log::{debug, error, info, warn};
use proxy_wasm::traits::{Context, HttpContext, RootContext};
#[cfg(target_arch = "wasm32")]
use proxy_wasm::types::LogLevel;
use proxy_wasm::types::{Action, ContextType};
use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;
use std::time::Duration;

#[cfg(target_arch = "wasm32")]
proxy_wasm::main! {{
    proxy_wasm::set_log_level(LogLevel::Trace);
    proxy_wasm::set_root_context(|_| -> Box<dyn RootContext> { Box::new(Root::default()) });
}}

/// State shared by all contexts of one worker VM.
#[derive(Default)]
pub struct Worker {
    config: Option<Rc<Config>>,
    cache: GrantCache,
    keys: SigningKeyCache,
    inflight: Inflight,
    /// Plans of requests paused while their grant is fetched, by context id.
    waiting: HashMap<u32, Plan>,
}

type Shared = Rc<RefCell<Worker>>;

#[derive(Default)]
pub struct Root {
    worker: Shared,
}

impl Context for Root {}

impl RootContext for Root {
    fn on_configure(&mut self, size: usize) -> bool {
        let bytes = if size == 0 {
            Vec::new()
        } else {
            self.get_plugin_configuration().unwrap_or_default()
        };
        match Config::parse(&bytes) {
            Ok(cfg) => {
                match cfg.mode {
                    Mode::Sign => info!(
                        "grant-sigv4 configured: grant header {}, vault cluster {}, cache ttl {}s",
                        cfg.grant_header, cfg.vault.cluster, cfg.cache.ttl_seconds
                    ),
                    Mode::Precheck => info!(
                        "grant-sigv4 configured: precheck, grant header {}, max body {} bytes",
                        cfg.grant_header, cfg.max_body_bytes
                    ),
                }
                let mut w = self.worker.borrow_mut();
                w.config = Some(Rc::new(cfg));
                w.cache = GrantCache::default();
                true
            }
            Err(e) => {
                error!("grant-sigv4: {e}");
                false
            }
        }
    }

    fn create_http_context(&self, context_id: u32) -> Option<Box<dyn HttpContext>> {
        Some(Box::new(Signer {
            id: context_id,
            worker: Rc::clone(&self.worker),
            fetching: None,
        }))
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }
}

pub struct Signer {
    id: u32,
    worker: Shared,
    /// The grant this request is fetching from the vault (it owns that fetch).
    fetching: Option<String>,
}

/// Answer the current (effective) request locally with a JSON error.
fn reply(e: &LocalError) {
    debug!("local reply {} {}", e.status, e.code);
    let body = e.body();
    if let Err(s) = hostcalls::send_local_response(
        e.status,
        &[("content-type", b"application/json")],
        body.as_bytes(),
    ) {
        warn!("could not send local reply {} (status {s})", e.code);
    }
}

/// Apply signing edits to the current (effective) request.
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
    /// Sign the current (effective) request with `creds`; on failure answer it locally.
    /// Returns whether the request may continue.
    fn sign_and_apply(&mut self, plan: &Plan, creds: &Credentials, now: u64) -> bool {
        match request::sign(plan, creds, now, &mut self.keys) {
            Ok(edits) => match apply(&edits) {
                Ok(()) => {
                    debug!(
                        "signed {} {} for {}/{}",
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
                    reply(&LocalError::internal(
                        "the signed headers could not be written",
                    ));
                    false
                }
            },
            Err(e) => {
                reply(&e);
                false
            }
        }
    }
}

fn vault_error(e: &VaultError) -> LocalError {
    match e {
        VaultError::NotFound => LocalError::grant_not_found(),
        VaultError::Unavailable(why) => LocalError::vault_unavailable(why),
        VaultError::BadRecord(why) => LocalError::new(
            502,
            "GrantRecordInvalid",
            format!("the stored record for this grant is not usable: {why}"),
        ),
    }
}

impl Signer {
    fn config(&self) -> Option<Rc<Config>> {
        self.worker.borrow().config.clone()
    }

    fn start_fetch(&mut self, cfg: &Config, grant: &str) -> bool {
        let path = vault::grant_path(&cfg.vault, grant);
        let headers = vec![
            (":method", "GET"),
            (":path", path.as_str()),
            (":authority", cfg.vault.authority.as_str()),
            ("x-vault-token", cfg.vault.token.as_str()),
            ("accept", "application/json"),
        ];
        match self.dispatch_http_call(
            &cfg.vault.cluster,
            headers,
            None,
            vec![],
            Duration::from_millis(cfg.vault.timeout_ms),
        ) {
            Ok(_) => {
                self.fetching = Some(grant.to_string());
                true
            }
            Err(s) => {
                warn!(
                    "vault callout to cluster {} failed to start: {s:?}",
                    cfg.vault.cluster
                );
                false
            }
        }
    }

    /// Answer every request that waited for `grant`, then return to this context.
    fn release_waiters(
        &self,
        grant: &str,
        outcome: &Result<Rc<Credentials>, LocalError>,
        now: u64,
    ) {
        let mut w = self.worker.borrow_mut();
        let waiters = w.inflight.finish(grant);
        for ctx in waiters {
            let Some(plan) = w.waiting.remove(&ctx) else {
                continue;
            };
            if hostcalls::set_effective_context(ctx).is_err() {
                continue;
            }
            match outcome {
                Ok(creds) => {
                    if w.sign_and_apply(&plan, creds, now) {
                        if let Err(s) = hostcalls::resume_request() {
                            debug!("waiting request {ctx} could not resume (status {s})");
                        }
                    }
                }
                Err(e) => reply(e),
            }
        }
        let _ = hostcalls::set_effective_context(self.id);
    }
}

impl Context for Signer {
    fn on_http_call_response(
        &mut self,
        _token: u32,
        _headers: usize,
        body_size: usize,
        _trailers: usize,
    ) {
        let Some(grant) = self.fetching.take() else {
            return;
        };
        let Some(cfg) = self.config() else {
            return;
        };
        let status = hostcalls::get_map(Map::CallResponseHeaders)
            .ok()
            .and_then(|h| {
                h.into_iter()
                    .find(|(k, _)| k == ":status")
                    .and_then(|(_, v)| std::str::from_utf8(&v).ok()?.parse::<u32>().ok())
            });
        let body = if body_size > vault::MAX_RESPONSE_BYTES {
            // Too large to be a grant record: let the parser refuse it by size.
            vec![b' '; vault::MAX_RESPONSE_BYTES + 1]
        } else {
            hostcalls::get_buffer(Buffer::CallResponseBody, body_size).unwrap_or_default()
        };
        let now = hostcalls::now_secs().unwrap_or(0);
        let outcome = match vault::parse_grant_response(status, &body) {
            Ok(creds) => {
                Ok(self
                    .worker
                    .borrow_mut()
                    .cache
                    .insert(&grant, creds, now, cfg.cache.ttl_seconds))
            }
            Err(e) => {
                warn!("vault read for a grant failed: {e:?}");
                Err(vault_error(&e))
            }
        };
        // This request first.
        let plan = self.worker.borrow_mut().waiting.remove(&self.id);
        if let Some(plan) = plan {
            match &outcome {
                Ok(creds) => {
                    if self.worker.borrow_mut().sign_and_apply(&plan, creds, now) {
                        if let Err(s) = hostcalls::resume_request() {
                            debug!("request could not resume (status {s})");
                        }
                    }
                }
                Err(e) => reply(e),
            }
        }
        self.release_waiters(&grant, &outcome, now);
    }

    fn on_done(&mut self) -> bool {
        let mut w = self.worker.borrow_mut();
        w.waiting.remove(&self.id);
        if let Some((_grant, waiters)) = w.inflight.forget(self.id) {
            // This request owned a fetch and went away before the answer: nobody will
            // resume the requests that waited for it, so answer them now.
            let e = LocalError::vault_unavailable("the credential fetch was abandoned; retry");
            for ctx in waiters {
                if w.waiting.remove(&ctx).is_some() && hostcalls::set_effective_context(ctx).is_ok()
                {
                    reply(&e);
                }
            }
            let _ = hostcalls::set_effective_context(self.id);
        }
        true
    }
}

impl HttpContext for Signer {
    fn on_http_request_headers(&mut self, _num_headers: usize, end_of_stream: bool) -> Action {
        let Some(cfg) = self.config() else {
            reply(&LocalError::internal("the filter is not configured"));
            return Action::Pause;
        };
        let headers = match hostcalls::get_map(Map::RequestHeaders) {
            Ok(h) => h,
            Err(s) => {
                warn!("could not read request headers (status {s})");
                reply(&LocalError::internal(
                    "the request headers could not be read",
                ));
                return Action::Pause;
            }
        };
        if cfg.mode == Mode::Precheck {
            return match request::precheck_request(&cfg, &headers, end_of_stream) {
                Ok(()) => Action::Continue,
                Err(e) => {
                    reply(&e);
                    Action::Pause
                }
            };
        }
        let plan = match request::plan_request(&cfg, &headers, end_of_stream) {
            Ok(p) => p,
            Err(e) => {
                reply(&e);
                return Action::Pause;
            }
        };
        let now = match hostcalls::now_secs() {
            Ok(t) => t,
            Err(_) => {
                reply(&LocalError::internal("the host clock could not be read"));
                return Action::Pause;
            }
        };

        let mut w = self.worker.borrow_mut();
        if let Some(creds) = w.cache.get(&plan.grant_id, now) {
            return if w.sign_and_apply(&plan, &creds, now) {
                Action::Continue
            } else {
                Action::Pause
            };
        }
        let grant = plan.grant_id.clone();
        let begin = w.inflight.begin(&grant, self.id);
        w.waiting.insert(self.id, plan);
        drop(w);
        if begin == Begin::Fetch && !self.start_fetch(&cfg, &grant) {
            let e = LocalError::vault_unavailable(
                "the vault callout could not be started (is the vault cluster defined?)",
            );
            self.worker.borrow_mut().waiting.remove(&self.id);
            reply(&e);
            self.release_waiters(&grant, &Err(e.clone()), now);
            return Action::Pause;
        }
        Action::Pause
    }
}
