//! Each filter configuration's own engine on Envoy's main thread, for the filter's Vault
//! token: its lookup, renewals and AppRole logins start when the configuration loads and go
//! on while no request comes, as in the wasm filter (whose VMs tick on their own).
//!
//! The workers' engines tick only at their own events (Envoy gives an HTTP filter no timer
//! on a worker), so without this an idle Envoy with AppRole would make its first request
//! wait for a login. This engine gets no requests: only ticks (the configuration scheduler's
//! [`TICK`] event, committed when the configuration is made and then every second by the
//! module's ticker thread, `ticker`) and the answers of the callouts it makes, which are
//! configuration callouts on the main thread. The token it gets is published in the shared
//! data, where the workers' engines take it from (`vault_token.rs`: one token per process,
//! the login claim by compare-and-set), so a worker's first request is signed with it
//! without a login of its own.

use crate::envoy::ConfigRef;
use crate::filter_config::FilterConfig;
use crate::native_host::{answer_body, answer_status, now_ms, CalloutAnswer};
use grant_sigv4_core::engine::{CalloutToken, Engine, Host, MetricKind, Property, RequestId};
use grant_sigv4_core::errors::LocalError;
use grant_sigv4_core::request::Edits;
use log::warn;
use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;
use std::sync::atomic::Ordering;

/// The configuration scheduler's event id of a tick of the main engine.
pub const TICK: u64 = 2;

struct MainEngine {
    config_id: u64,
    engine: Engine,
    /// Its callouts under way: Envoy's id -> the engine's token.
    callouts: HashMap<u64, CalloutToken>,
    next_token: CalloutToken,
}

/// A configuration callout's answer that came while the engines were in use (Envoy
/// answered within the call that started it): the configuration, Envoy's id, the answer.
type Late = (u64, u64, Option<u32>, Vec<u8>);

thread_local! {
    static MAIN: RefCell<Vec<MainEngine>> = const { RefCell::new(Vec::new()) };
    static LATE: RefCell<Vec<Late>> = const { RefCell::new(Vec::new()) };
}

/// The engine's host on the main thread: no requests; callouts are the configuration's.
struct MainHost<'a> {
    config: &'a FilterConfig,
    envoy: ConfigRef,
    answer: CalloutAnswer,
    next_token: &'a mut CalloutToken,
    /// Callouts started in this event: Envoy's id, the engine's token.
    started: Vec<(u64, CalloutToken)>,
}

impl Host for MainHost<'_> {
    fn now_ms(&mut self) -> Option<u64> {
        now_ms()
    }

    fn property(&mut self, _id: RequestId, _property: Property) -> Option<Vec<u8>> {
        None
    }

    fn edit_request_headers(&mut self, _id: RequestId, _edits: &Edits) -> Result<(), String> {
        Err(String::from("no request on the main thread"))
    }

    fn resume_request(&mut self, _id: RequestId) {}

    fn send_local_reply(&mut self, _id: RequestId, _error: &LocalError) {}

    fn set_filter_state(&mut self, _id: RequestId, _name: &str, _value: &[u8]) {}

    fn response_header(&mut self, _id: RequestId, _name: &str) -> Option<Vec<u8>> {
        None
    }

    fn start_callout_with_body(
        &mut self,
        cluster: &str,
        headers: &[(&str, &[u8])],
        body: &[u8],
        timeout_ms: u32,
    ) -> Result<CalloutToken, String> {
        let id = self
            .envoy
            .http_callout(cluster, headers, body, u64::from(timeout_ms))
            .map_err(|code| format!("the callout failed to start (result {code})"))?;
        *self.next_token = self.next_token.wrapping_add(1).max(1);
        self.started.push((id, *self.next_token));
        Ok(*self.next_token)
    }

    fn callout_status(&mut self) -> Option<u32> {
        answer_status(&self.answer)
    }

    fn callout_body(&mut self, size: usize) -> Vec<u8> {
        answer_body(&self.answer, size)
    }

    fn get_shared(&mut self, key: &str) -> Option<(Vec<u8>, u32)> {
        self.config.get_shared(key)
    }

    fn set_shared(&mut self, key: &str, value: &[u8], cas: u32) -> Result<(), String> {
        self.config.set_shared(key, value, cas)
    }

    fn set_tick_period_ms(&mut self, _ms: u32) -> Result<(), String> {
        // Ticks come from the ticker thread, every second.
        Ok(())
    }

    fn define_metric(&mut self, kind: MetricKind, name: &str) -> Option<u32> {
        self.config.metric_id(kind, name)
    }

    fn increment_metric(&mut self, id: u32, by: i64) {
        self.config.increment(id, by);
    }

    fn record_metric(&mut self, id: u32, value: u64) {
        self.config.record(id, value);
    }
}

/// Run one event of `config`'s main engine (with `answer`, the callout answer delivered);
/// `None` when it has none or the engines are in use.
fn with_engine<R>(
    config: &FilterConfig,
    answer: CalloutAnswer,
    f: impl FnOnce(&mut Engine, &mut MainHost<'_>, &mut HashMap<u64, CalloutToken>) -> R,
) -> Option<R> {
    let out = MAIN
        .try_with(|m| {
            let mut m = m.try_borrow_mut().ok()?;
            let me = m.iter_mut().find(|e| e.config_id == config.id)?;
            let mut host = MainHost {
                config,
                envoy: config.envoy,
                answer,
                next_token: &mut me.next_token,
                started: Vec::new(),
            };
            let r = f(&mut me.engine, &mut host, &mut me.callouts);
            let started = std::mem::take(&mut host.started);
            me.callouts.extend(started);
            Some(r)
        })
        .ok()
        .flatten();
    take_late(config);
    out
}

/// Hand the answers that came while the engines were in use to their engine (or worker).
fn take_late(config: &FilterConfig) {
    let late: Vec<Late> = LATE
        .try_with(|l| std::mem::take(&mut *l.borrow_mut()))
        .unwrap_or_default();
    for (config_id, id, status, body) in late {
        if config_id != config.id {
            continue;
        }
        let mine = MAIN
            .try_with(|m| {
                m.try_borrow().is_ok_and(|m| {
                    m.iter()
                        .any(|e| e.config_id == config.id && e.callouts.contains_key(&id))
                })
            })
            .unwrap_or(false);
        if mine {
            let _ = answered(config, id, status, body);
        } else {
            config.main.answered(id, status, body);
        }
    }
}

/// On the main thread, as configuration `config` is made: its main engine, and its first
/// tick as soon as the main thread is free.
pub fn start(config: &FilterConfig) {
    let mut engine = Engine::new(Rc::default());
    engine.hash_bodies_in_host();
    engine.vault_token_from_host();
    let mut next_token = 0;
    let mut host = MainHost {
        config,
        envoy: config.envoy,
        answer: None,
        next_token: &mut next_token,
        started: Vec::new(),
    };
    if !engine.on_configure(&mut host, &config.bytes, |name| std::env::var(name).ok()) {
        warn!("no main-thread engine: the vault token is kept by the workers' requests");
        return;
    }
    let callouts = host.started.into_iter().collect();
    let me = MainEngine {
        config_id: config.id,
        engine,
        callouts,
        next_token,
    };
    let _ = MAIN.try_with(|m| m.borrow_mut().push(me));
    if config.main.tick_soon() {
        config.main_engine.store(true, Ordering::Release);
    }
}

/// On the main thread, as configuration `config_id` is destroyed: its main engine goes
/// (Envoy cancels the configuration's callouts).
pub fn stop(config_id: u64) {
    let _ = MAIN.try_with(|m| {
        if let Ok(mut m) = m.try_borrow_mut() {
            m.retain(|e| e.config_id != config_id);
        }
    });
}

/// The configuration scheduler's [`TICK`]: the main engine's tick (the vault token from SDS
/// read first).
pub fn tick(config: &FilterConfig) {
    with_engine(config, None, |engine, host, _| {
        config.refresh_token(None, engine, host);
        engine.on_tick(host);
    });
}

/// The answer of configuration callout `id`: handed to the main engine if the callout is
/// its own, else given back (a worker's, `background`).
pub fn answered(
    config: &FilterConfig,
    id: u64,
    status: Option<u32>,
    body: Vec<u8>,
) -> Option<Vec<u8>> {
    let ours = MAIN
        .try_with(|m| {
            m.try_borrow().ok().map(|m| {
                m.iter()
                    .any(|e| e.config_id == config.id && e.callouts.contains_key(&id))
            })
        })
        .ok()
        .flatten();
    match ours {
        // In use: Envoy answered within the call that started a callout (whose id is not
        // recorded yet). Taken at the end of that event.
        None => {
            let _ = LATE.try_with(|l| l.borrow_mut().push((config.id, id, status, body)));
            None
        }
        Some(false) => Some(body),
        Some(true) => {
            let size = body.len();
            with_engine(config, Some((status, body)), |engine, host, callouts| {
                if let Some(token) = callouts.remove(&id) {
                    engine.on_callout_answer(host, token, size);
                }
            });
            None
        }
    }
}
