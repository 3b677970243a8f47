//! What each worker thread keeps: one engine per filter configuration (Envoy runs a
//! stream's hooks, its callouts' answers included, on the worker that owns it), the live
//! requests by id with their Envoy stream, and the vault callouts under way.
//!
//! - **Requests**: the engine names requests by id. A request is in [`Worker::requests`]
//!   from `on_http_filter_new` to `on_http_filter_destroy`, and only there is its stream
//!   looked up: an effect for a request that is gone is dropped, never applied to a freed
//!   filter.
//! - **Callouts**: Envoy makes a callout on a stream and cancels it, silently, when that
//!   stream is destroyed; the engine's fetches belong to the plugin instance, not to a
//!   request. So a request's fetch is carried by that request, and when the carrier is
//!   destroyed first it is made again through the main thread ([`request_gone`]), as
//!   background refreshes are (`background`).
//! - **Ticks**: Envoy gives an HTTP filter no timer on its worker (the configuration's
//!   scheduler runs on the main thread, which has no access to the workers' engines). The
//!   engine's tick runs at the start of an event of its worker once a second has passed
//!   since the last one: a worker with traffic refreshes grants ahead of their expiry, in the
//!   background, as the wasm filter's does; an idle one has nothing to sign.

use crate::background::{Job, Mailbox};
use crate::envoy::Stream;
use crate::filter_config::FilterConfig;
use grant_sigv4_core::engine::{CalloutToken, Engine, IdMap, RequestId, TICK_MS};
use grant_sigv4_core::retry_stash::RetryStash;
use log::{debug, warn};
use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::sync::{Arc, Weak};

/// Where a request stands, as far as its hooks' answers to Envoy go.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    /// Its headers have not been handed to the engine yet.
    New,
    /// Let through: the rest of the request streams.
    Passed,
    /// Stopped until the engine resumes or answers it.
    Paused,
    /// Its body is being buffered for the engine, which needs its hash.
    Buffering,
    /// Answered locally: nothing more goes through.
    Replied,
}

/// A live request of this worker.
pub struct Slot {
    pub stream: Stream,
    pub config_id: u64,
    pub phase: Phase,
    /// The engine was told that it ended.
    pub done: bool,
}

/// A vault callout under way, as the engine numbers it (its token).
pub struct Callout {
    pub config_id: u64,
    /// The request whose stream carries it, and Envoy's id of it there.
    pub carrier: RequestId,
    pub envoy_id: u64,
    /// What to send again if its carrier goes away.
    pub cluster: String,
    pub headers: Vec<(String, Vec<u8>)>,
    pub body: Vec<u8>,
    pub timeout_ms: u32,
}

/// One filter configuration's engine on this worker.
pub struct WorkerEngine {
    pub config_id: u64,
    pub engine: RefCell<Engine>,
    next_tick_ms: Cell<u64>,
}

#[derive(Default)]
pub struct Worker {
    engines: Vec<(Weak<FilterConfig>, Rc<WorkerEngine>)>,
    pub requests: IdMap<Slot>,
    next_request: RequestId,
    pub callouts: IdMap<Callout>,
    next_token: CalloutToken,
    /// Answers of this worker's callouts made by the main thread.
    mailbox: Arc<Mailbox>,
    /// Grants of first attempts, for their retries (upstream filter mode); shared by the
    /// engines of the worker.
    retries: Rc<RefCell<RetryStash>>,
}

thread_local! {
    static WORKER: RefCell<Worker> = RefCell::new(Worker::default());
}

/// Run `f` on this worker's state; `None` if it is in use (a call re-entered) or gone (the
/// thread is exiting). Never call into Envoy from `f`.
pub fn with_worker<R>(f: impl FnOnce(&mut Worker) -> R) -> Option<R> {
    WORKER
        .try_with(|w| w.try_borrow_mut().ok().map(|mut w| f(&mut w)))
        .ok()
        .flatten()
}

/// The stream of live request `id`.
pub fn stream_of(id: RequestId) -> Option<Stream> {
    with_worker(|w| w.requests.get(&id).map(|s| s.stream)).flatten()
}

/// Set the phase of live request `id`; its previous phase.
pub fn set_phase(id: RequestId, phase: Phase) -> Option<Phase> {
    with_worker(|w| {
        w.requests
            .get_mut(&id)
            .map(|s| std::mem::replace(&mut s.phase, phase))
    })
    .flatten()
}

pub fn phase_of(id: RequestId) -> Option<Phase> {
    with_worker(|w| w.requests.get(&id).map(|s| s.phase)).flatten()
}

/// This worker's engine for `config`, made on first use and configured by `configure` (the
/// hooks configure it through their host).
pub fn engine_for(
    config: &Arc<FilterConfig>,
    configure: impl FnOnce(&mut Engine) -> bool,
) -> Option<Rc<WorkerEngine>> {
    let (found, retries) = with_worker(|w| {
        let found = w
            .engines
            .iter()
            .find(|(_, e)| e.config_id == config.id)
            .map(|(_, e)| Rc::clone(e));
        if found.is_none() {
            // A configuration is new here: drop the engines (and callouts) of those that
            // Envoy destroyed since.
            w.engines.retain(|(c, _)| c.strong_count() > 0);
            let live: Vec<u64> = w.engines.iter().map(|(_, e)| e.config_id).collect();
            w.callouts
                .retain(|_, c| live.contains(&c.config_id) || c.config_id == config.id);
        }
        (found, Rc::clone(&w.retries))
    })?;
    if found.is_some() {
        return found;
    }
    let mut engine = Engine::new(retries);
    engine.hash_bodies_in_host();
    engine.vault_token_from_host();
    if !configure(&mut engine) {
        return None;
    }
    if config
        .main_engine
        .load(std::sync::atomic::Ordering::Acquire)
    {
        engine.vault_token_kept_elsewhere();
    }
    let we = Rc::new(WorkerEngine {
        config_id: config.id,
        engine: RefCell::new(engine),
        // The worker's first event ticks at once: the engine's first tick takes the vault
        // token (or, with no main-thread engine, starts its lookup or login).
        next_tick_ms: Cell::new(0),
    });
    let mailbox = with_worker(|w| {
        w.engines.push((Arc::downgrade(config), Rc::clone(&we)));
        Arc::clone(&w.mailbox)
    })?;
    crate::ticker::register(&mailbox);
    Some(we)
}

/// Number a new request of configuration `config_id` with stream `stream`.
pub fn add_request(stream: Stream, config_id: u64) -> Option<RequestId> {
    with_worker(|w| {
        loop {
            w.next_request = w.next_request.wrapping_add(1);
            if w.next_request != 0 && !w.requests.contains_key(&w.next_request) {
                break;
            }
        }
        let id = w.next_request;
        w.requests.insert(
            id,
            Slot {
                stream,
                config_id,
                phase: Phase::New,
                done: false,
            },
        );
        id
    })
}

/// Number a new callout.
pub fn add_callout(c: Callout) -> Option<CalloutToken> {
    with_worker(|w| {
        loop {
            w.next_token = w.next_token.wrapping_add(1);
            if w.next_token != 0 && !w.callouts.contains_key(&w.next_token) {
                break;
            }
        }
        let t = w.next_token;
        w.callouts.insert(t, c);
        t
    })
}

/// The callout that Envoy's callout `envoy_id` on request `carrier` is; it is done.
pub fn take_callout(carrier: RequestId, envoy_id: u64) -> Option<CalloutToken> {
    with_worker(|w| {
        let t = w
            .callouts
            .iter()
            .find(|(_, c)| c.carrier == carrier && c.envoy_id == envoy_id)
            .map(|(t, _)| *t)?;
        w.callouts.remove(&t);
        Some(t)
    })
    .flatten()
}

/// Send callout `token` on request `carrier`'s stream; false if it could not be.
pub fn send_on(token: CalloutToken, carrier: RequestId, stream: Stream) -> bool {
    let Some((cluster, headers, body, timeout_ms)) = with_worker(|w| {
        w.callouts.get(&token).map(|c| {
            (
                c.cluster.clone(),
                c.headers.clone(),
                c.body.clone(),
                c.timeout_ms,
            )
        })
    })
    .flatten() else {
        return false;
    };
    let hs: Vec<(&str, &[u8])> = headers
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_slice()))
        .collect();
    match stream.http_callout(&cluster, &hs, &body, u64::from(timeout_ms)) {
        Ok(envoy_id) => with_worker(|w| match w.callouts.get_mut(&token) {
            Some(c) => {
                c.carrier = carrier;
                c.envoy_id = envoy_id;
                true
            }
            None => false,
        })
        .unwrap_or(false),
        Err(code) => {
            warn!("vault callout to cluster {cluster} failed to start (result {code})");
            false
        }
    }
}

/// Callout `token` could not be sent at all: the engine gets a failed answer (at this
/// worker's next event, or when its waker runs).
pub fn fail_callout(token: CalloutToken) {
    if let Some(m) = mailbox() {
        m.failed(token);
    }
}

/// Send callout `token` (of `config`) through the main thread: it no longer depends on any
/// request's life. False if it could not be.
pub fn to_background(config: &FilterConfig, token: CalloutToken) -> bool {
    let Some((job, mailbox)) = with_worker(|w| {
        let c = w.callouts.get_mut(&token)?;
        c.carrier = 0;
        let job = Job {
            mailbox: Arc::clone(&w.mailbox),
            token,
            cluster: c.cluster.clone(),
            headers: c.headers.clone(),
            body: c.body.clone(),
            timeout_ms: c.timeout_ms,
        };
        Some((job, Arc::clone(&w.mailbox)))
    })
    .flatten() else {
        return false;
    };
    if !config.main.submit(job) {
        return false;
    }
    if mailbox.needs_waker() {
        make_waker(None);
    }
    true
}

/// Give the worker a waker: the scheduler of `preferred`, or else of a live request (paused
/// ones first).
pub fn make_waker(preferred: Option<(RequestId, Stream)>) {
    let pick = preferred.or_else(|| {
        with_worker(|w| {
            w.requests
                .iter()
                .max_by_key(|(id, s)| (s.phase == Phase::Paused, **id))
                .map(|(id, s)| (*id, s.stream))
        })
        .flatten()
    });
    let Some((id, stream)) = pick else {
        return;
    };
    let Some(mailbox) = with_worker(|w| Arc::clone(&w.mailbox)) else {
        return;
    };
    if let Some(s) = stream.scheduler() {
        mailbox.set_waker(id, s);
    }
}

/// Whether a request of this worker is paused (it may wait for a tick).
pub fn any_paused() -> bool {
    with_worker(|w| w.requests.values().any(|s| s.phase == Phase::Paused)).unwrap_or(false)
}

/// This worker's mailbox.
pub fn mailbox() -> Option<Arc<Mailbox>> {
    with_worker(|w| Arc::clone(&w.mailbox))
}

/// Request `id` is destroyed: the callouts it carried, which Envoy cancelled, are made again
/// through the main thread; if it was the worker's waker, another request becomes it.
pub fn request_gone(config: &FilterConfig, id: RequestId) {
    let carried: Vec<CalloutToken> = with_worker(|w| {
        w.callouts
            .iter()
            .filter(|(_, c)| c.carrier == id)
            .map(|(t, _)| *t)
            .collect()
    })
    .unwrap_or_default();
    for token in carried {
        if to_background(config, token) {
            debug!("vault callout {token} goes on without the request that carried it");
        } else {
            warn!("vault callout {token} was cancelled with the request that carried it");
        }
    }
    if mailbox().is_some_and(|m| m.request_gone(id)) {
        make_waker(None);
    }
}

/// Whether an answer to callout `token` may be handed to its engine now: `None` when the
/// worker forgot the callout (its configuration is gone); false while the worker has no live
/// request of its configuration. With one, Envoy's side of the configuration is alive too
/// (each of its filters holds it), through which its engine counts.
pub fn deliverable(token: CalloutToken) -> Option<bool> {
    with_worker(|w| {
        let config_id = w.callouts.get(&token)?.config_id;
        Some(w.requests.values().any(|s| s.config_id == config_id))
    })
    .flatten()
}

/// The configuration of callout `token`.
pub fn callout_config(token: CalloutToken) -> Option<u64> {
    with_worker(|w| w.callouts.get(&token).map(|c| c.config_id)).flatten()
}

/// The callout that answer `token` is for, removed: its configuration.
pub fn answered(token: CalloutToken) -> Option<u64> {
    with_worker(|w| w.callouts.remove(&token).map(|c| c.config_id)).flatten()
}

/// This worker's engine for configuration `config_id`, and the configuration.
pub fn engine_of(config_id: u64) -> Option<(Rc<WorkerEngine>, Arc<FilterConfig>)> {
    with_worker(|w| {
        w.engines
            .iter()
            .find(|(_, e)| e.config_id == config_id)
            .and_then(|(c, e)| Some((Rc::clone(e), c.upgrade()?)))
    })
    .flatten()
}

impl WorkerEngine {
    /// Whether the tick is due at `now_ms` (then the next one is a second later).
    pub fn tick_due(&self, now_ms: u64) -> bool {
        if now_ms < self.next_tick_ms.get() {
            return false;
        }
        self.next_tick_ms
            .set(now_ms.saturating_add(u64::from(TICK_MS)));
        true
    }
}
