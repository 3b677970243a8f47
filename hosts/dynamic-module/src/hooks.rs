//! The event hooks Envoy calls, translated into engine events
//! ([`grant_sigv4_core::engine`]) on this worker's engine for the filter's configuration
//! (`worker`), whose effects the host carries out (`native_host`). No filter logic lives here:
//! what a hook answers Envoy follows from the engine's [`Action`] and the request's phase.
//!
//! Every hook Envoy 1.40 requires of an HTTP-filter module is defined, the unused ones as
//! no-ops. Every hook runs its body under `catch_unwind` (the crate is built with
//! `panic = "unwind"`): a panic is logged and, on the request path, answered with 500
//! `InternalError`; it never unwinds into Envoy nor aborts it.
//!
//! A hook copies what it needs from its filter (`Filter`) first and never reads the filter
//! again: answering or resuming a request can make Envoy destroy it before the hook returns.

use crate::envoy::{self, Body, ConfigRef, EnvoyBuffer, EnvoyHeader, HeaderMap, LogLevel, Stream};
use crate::filter_config::FilterConfig;
use crate::native_host::{send_error, NativeHost};
use crate::worker::{self, Phase, WorkerEngine};
use grant_sigv4_core::engine::{Action, Engine, RequestId};
use grant_sigv4_core::errors::LocalError;
use grant_sigv4_core::vault;
use sha2::{Digest, Sha256};
use std::cell::Cell;
use std::ffi::c_void;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::rc::Rc;
use std::sync::Arc;

// Return values of the hooks (the `envoy_dynamic_module_type_on_http_filter_*_status` enums).
const HEADERS_CONTINUE: u32 = 0;
const HEADERS_STOP_ITERATION: u32 = 1;
const BODY_CONTINUE: u32 = 0;
const BODY_STOP_AND_BUFFER: u32 = 1;
const BODY_STOP_AND_WATERMARK: u32 = 2;
const BODY_STOP_NO_BUFFER: u32 = 3;
const TRAILERS_CONTINUE: u32 = 0;
const TRAILERS_STOP: u32 = 1;
/// `envoy_dynamic_module_type_http_callout_result_Success`.
const CALLOUT_SUCCESS: u32 = 0;

thread_local! {
    /// The request-headers hook's copy of the request headers, kept between the worker's
    /// requests so that a request's headers cost no allocation but the engine's own.
    static REQUEST_HEADERS: Cell<envoy::Headers> = Cell::new(envoy::Headers::default());
}

/// One HTTP stream's filter: its request id on this worker, and the engine it belongs to.
struct Filter {
    id: RequestId,
    engine: Rc<WorkerEngine>,
    config: Arc<FilterConfig>,
}

/// What a hook takes from its filter.
struct Ctx {
    id: RequestId,
    engine: Rc<WorkerEngine>,
    config: Arc<FilterConfig>,
    stream: Stream,
}

/// The log lines of the engine and of this crate go to Envoy's log (`dynamic_modules`).
struct EnvoyLogger;

fn envoy_level(l: log::Level) -> LogLevel {
    match l {
        log::Level::Error => LogLevel::Error,
        log::Level::Warn => LogLevel::Warn,
        log::Level::Info => LogLevel::Info,
        log::Level::Debug => LogLevel::Debug,
        log::Level::Trace => LogLevel::Trace,
    }
}

impl log::Log for EnvoyLogger {
    fn enabled(&self, m: &log::Metadata) -> bool {
        envoy::log_enabled(envoy_level(m.level()))
    }

    fn log(&self, r: &log::Record) {
        let level = envoy_level(r.level());
        if envoy::log_enabled(level) {
            envoy::log(level, &r.args().to_string());
        }
    }

    fn flush(&self) {}
}

static LOGGER: EnvoyLogger = EnvoyLogger;

/// Run a hook's body; a panic is contained here.
fn guard<R>(hook: &str, on_panic: impl FnOnce() -> R, body: impl FnOnce() -> R) -> R {
    match catch_unwind(AssertUnwindSafe(body)) {
        Ok(r) => r,
        Err(_) => {
            envoy::log(
                LogLevel::Error,
                &format!("grant-sigv4: a panic was caught in {hook}; the request is answered 500"),
            );
            on_panic()
        }
    }
}

/// What the hook needs of its filter, copied.
///
/// # Safety
/// `filter_ptr` must be a pointer returned by `on_http_filter_new` and not yet destroyed, and
/// `envoy_ptr` the `filter_envoy_ptr` of the same hook.
unsafe fn ctx(envoy_ptr: *mut c_void, filter_ptr: *const c_void) -> Option<Ctx> {
    // SAFETY: per the function's contract; only read, and only here.
    let f = unsafe { (filter_ptr as *const Filter).as_ref() }?;
    Some(Ctx {
        id: f.id,
        engine: Rc::clone(&f.engine),
        config: Arc::clone(&f.config),
        // SAFETY: per the function's contract.
        stream: unsafe { Stream::new(envoy_ptr) },
    })
}

/// Run one engine event for the request of `c` (`in_response`: during its response-headers
/// hook), the tick first when it is due. The host's queued effects are returned to be carried
/// out once the hook has recorded the request's new phase. `None` when the engine is in use
/// (Envoy re-entered the module during one of its calls).
fn run<T>(
    c: &Ctx,
    in_response: bool,
    f: impl FnOnce(&mut Engine, &mut NativeHost) -> T,
) -> Option<(T, NativeHost<'_>)> {
    deliver_mailbox(Some((c.id, c.stream)));
    let mut host = NativeHost::new(&c.config, Some((c.id, c.stream)));
    host.in_response = in_response;
    let out = {
        let mut engine = c.engine.engine.try_borrow_mut().ok()?;
        c.config
            .refresh_token(Some(c.stream), &mut engine, &mut host);
        if crate::native_host::now_ms().is_some_and(|now| c.engine.tick_due(now)) {
            host.background = true;
            engine.on_tick(&mut host);
            host.background = false;
        }
        f(&mut engine, &mut host)
    };
    Some((out, host))
}

/// The phase a request goes to after an engine event answered `action` for it.
fn phase_after(action: Action) -> Phase {
    match action {
        Action::Continue => Phase::Passed,
        Action::Pause => Phase::Paused,
        Action::BufferBody => Phase::Buffering,
    }
}

/// The request of `c` paused: it may wait for an answer that comes through the main thread,
/// or for work that starts at a tick, so the worker wants ticks and needs a waker if it has
/// none.
fn waker_if_paused(c: &Ctx, action: Action) {
    if action != Action::Pause || worker::phase_of(c.id) != Some(Phase::Paused) {
        return;
    }
    let Some(mailbox) = worker::mailbox() else {
        return;
    };
    mailbox.want_ticks(true);
    if mailbox.needs_waker() {
        worker::make_waker(Some((c.id, c.stream)));
    }
}

/// Answer the request of `c` locally, unless it was already.
fn reply_now(c: &Ctx, e: &LocalError) {
    if worker::set_phase(c.id, Phase::Replied) == Some(Phase::Replied) {
        return;
    }
    send_error(c.stream, e);
}

/// The 500 answer of a request whose hook panicked (if it is still there and unanswered).
fn reply_after_panic(c: Option<&Ctx>) {
    if let Some(c) = c {
        if worker::phase_of(c.id).is_some() {
            reply_now(c, &LocalError::internal("the filter failed unexpectedly"));
        }
    }
}

/// Hand the answers that came through the main thread to their engines (`current`: the
/// request whose hook runs, if any). An answer for a configuration with no live request on
/// this worker waits for its next one (no request waits for it; its configuration may be
/// gone).
fn deliver_mailbox(current: Option<(RequestId, Stream)>) {
    let Some(mailbox) = worker::mailbox() else {
        return;
    };
    let mut later = Vec::new();
    for a in mailbox.take() {
        match worker::deliverable(a.token) {
            Some(true) => {}
            Some(false) => {
                later.push(a);
                continue;
            }
            None => continue,
        }
        let Some((engine, config)) = worker::callout_config(a.token).and_then(worker::engine_of)
        else {
            continue;
        };
        let Ok(mut e) = engine.engine.try_borrow_mut() else {
            later.push(a);
            continue;
        };
        worker::answered(a.token);
        let mut host = NativeHost::new(&config, current);
        host.background = true;
        let size = a.body.len();
        host.answer = Some((a.status, a.body));
        e.on_callout_answer(&mut host, a.token, size);
        drop(e);
        host.finish();
    }
    mailbox.put_back(later);
}

#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_program_init() -> *const u8 {
    if log::set_logger(&LOGGER).is_ok() {
        log::set_max_level(log::LevelFilter::Trace);
    }
    envoy::ABI_VERSION.as_ptr()
}

#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_http_filter_config_new(
    config_envoy_ptr: *mut c_void,
    _name: EnvoyBuffer,
    config: EnvoyBuffer,
) -> *const c_void {
    guard("config_new", std::ptr::null, || {
        // SAFETY: Envoy passes the filter_config bytes, valid during this hook.
        let bytes = unsafe { config.bytes() };
        // SAFETY: the configuration Envoy is creating.
        let envoy_config = unsafe { ConfigRef::new(config_envoy_ptr) };
        match FilterConfig::new(envoy_config, bytes) {
            Some(fc) => {
                crate::main_engine::start(&fc);
                Box::into_raw(Box::new(Arc::new(fc))) as *const c_void
            }
            None => std::ptr::null(),
        }
    })
}

#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_http_filter_config_destroy(config_ptr: *const c_void) {
    guard(
        "config_destroy",
        || (),
        || {
            if !config_ptr.is_null() {
                // SAFETY: a pointer from Box::into_raw in config_new, destroyed once by Envoy
                // (after its filters). The workers' engines for it hold it weakly and are
                // dropped when a worker next sees a new configuration.
                let config = unsafe { Box::from_raw(config_ptr as *mut Arc<FilterConfig>) };
                crate::main_engine::stop(config.id);
                drop(config);
            }
        },
    )
}

#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_http_filter_new(
    config_ptr: *const c_void,
    filter_envoy_ptr: *mut c_void,
) -> *const c_void {
    guard("filter_new", std::ptr::null, || {
        // SAFETY: a live configuration from config_new (Envoy destroys it after its filters).
        let Some(config) = (unsafe { (config_ptr as *const Arc<FilterConfig>).as_ref() }) else {
            return std::ptr::null();
        };
        let Some(engine) = worker::engine_for(config, |engine| {
            let mut host = NativeHost::new(config, None);
            let ok = engine.on_configure(&mut host, &config.bytes, |name| std::env::var(name).ok());
            host.finish();
            ok
        }) else {
            return std::ptr::null();
        };
        // SAFETY: the filter_envoy_ptr of the filter being made, valid until its destroy.
        let stream = unsafe { Stream::new(filter_envoy_ptr) };
        let Some(id) = worker::add_request(stream, config.id) else {
            return std::ptr::null();
        };
        let f = Box::new(Filter {
            id,
            engine,
            config: Arc::clone(config),
        });
        Box::into_raw(f) as *const c_void
    })
}

/// Tell the engine that request `id` ended, and flush the metrics: Envoy's counters are
/// cheap to add to, so they are current after every request. `stream`: the request's, while
/// it can still be read.
fn tell_done(engine: &WorkerEngine, config: &FilterConfig, id: RequestId, stream: Option<Stream>) {
    let Ok(mut e) = engine.engine.try_borrow_mut() else {
        return;
    };
    let mut host = NativeHost::new(config, stream.map(|s| (id, s)));
    e.on_request_done(&mut host, id);
    e.flush_metrics(&mut host);
    drop(e);
    host.finish();
}

#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_http_filter_destroy(filter_ptr: *const c_void) {
    guard(
        "filter_destroy",
        || (),
        || {
            if filter_ptr.is_null() {
                return;
            }
            // SAFETY: a pointer from Box::into_raw in filter_new, destroyed once by Envoy.
            let f = unsafe { Box::from_raw(filter_ptr as *mut Filter) };
            // Gone from the live requests first: nothing reads its stream from here on.
            let told = worker::with_worker(|w| w.requests.remove(&f.id).map(|s| s.done)).flatten();
            if told == Some(false) {
                // Destroyed without stream_complete.
                tell_done(&f.engine, &f.config, f.id, None);
            }
            worker::request_gone(&f.config, f.id);
        },
    )
}

#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_http_filter_stream_complete(
    envoy_ptr: *mut c_void,
    filter_ptr: *const c_void,
) {
    // SAFETY: this hook's own pointers.
    let c = unsafe { ctx(envoy_ptr, filter_ptr) };
    guard(
        "stream_complete",
        || (),
        || {
            let Some(c) = &c else {
                return;
            };
            let first = worker::with_worker(|w| match w.requests.get_mut(&c.id) {
                Some(s) if !s.done => {
                    s.done = true;
                    true
                }
                _ => false,
            });
            if first == Some(true) {
                tell_done(&c.engine, &c.config, c.id, Some(c.stream));
            }
        },
    )
}

#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_http_filter_request_headers(
    envoy_ptr: *mut c_void,
    filter_ptr: *const c_void,
    end_of_stream: bool,
) -> u32 {
    // SAFETY: this hook's own pointers.
    let c = unsafe { ctx(envoy_ptr, filter_ptr) };
    guard(
        "request_headers",
        || {
            reply_after_panic(c.as_ref());
            HEADERS_STOP_ITERATION
        },
        || {
            let Some(c) = &c else {
                // No filter state: never forward a request unsigned.
                // SAFETY: this hook's filter_envoy_ptr.
                let stream = unsafe { Stream::new(envoy_ptr) };
                let e = LocalError::internal("the filter was not created");
                send_error(stream, &e);
                return HEADERS_STOP_ITERATION;
            };
            // The worker's header buffers, taken for this hook (a hook that runs within it
            // finds none and allocates its own) and put back after the engine's event.
            let mut headers = REQUEST_HEADERS.take();
            let readable = c
                .stream
                .read_headers(HeaderMap::RequestHeaders, &mut headers);
            #[cfg(feature = "panic-test")]
            panic_test(Some(&headers));
            let pairs = readable.then(|| headers.pairs());
            let ran = run(c, false, |e, host| match &pairs {
                Some(h) => e.on_request_headers(host, c.id, h, end_of_stream),
                None => e.on_request_headers_unreadable(host, c.id),
            });
            drop(pairs);
            REQUEST_HEADERS.set(headers);
            let Some((action, host)) = ran else {
                reply_now(c, &LocalError::internal("the filter is busy"));
                return HEADERS_STOP_ITERATION;
            };
            worker::set_phase(c.id, phase_after(action));
            host.finish();
            waker_if_paused(c, action);
            match action {
                Action::Continue => HEADERS_CONTINUE,
                Action::Pause | Action::BufferBody => HEADERS_STOP_ITERATION,
            }
        },
    )
}

/// Test-only (feature `panic-test`): panic on a marked request.
#[cfg(feature = "panic-test")]
#[allow(clippy::panic)]
fn panic_test(headers: Option<&envoy::Headers>) {
    if headers.is_some_and(|h| {
        h.pairs()
            .iter()
            .any(|(k, _)| *k == "x-grant-sigv4-panic-test")
    }) {
        panic!("panic-test: the request headers hook panics on purpose");
    }
}

/// SHA-256 of the request body as Envoy holds it now: what was buffered, then, from the body
/// hook (`in_body_hook`), what just arrived (unless it is the buffered body itself, handed on
/// by a filter in front).
fn hash_request_body(stream: Stream, in_body_hook: bool) -> Option<String> {
    let mut h = Sha256::new();
    let with_received = in_body_hook && !stream.received_is_buffered_request_body();
    if !stream.for_each_body_chunk(Body::BufferedRequest, |c| h.update(c)) {
        return None;
    }
    if with_received && !stream.for_each_body_chunk(Body::ReceivedRequest, |c| h.update(c)) {
        return None;
    }
    let digest = h.finalize();
    // Lowercase hex, written as bytes and appended once (a `char` pushed per digit costs
    // about 15 instructions each).
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut hex = [0u8; 64];
    for (pair, b) in hex.chunks_exact_mut(2).zip(digest) {
        if let [hi, lo] = pair {
            *hi = DIGITS[usize::from(b >> 4)];
            *lo = DIGITS[usize::from(b & 15)];
        }
    }
    std::str::from_utf8(&hex).ok().map(String::from)
}

/// The body of the request of `c` is complete: hand its hash to the engine. Returns the
/// action, or `None` when the request was answered instead.
fn body_complete(c: &Ctx, in_body_hook: bool) -> Option<Action> {
    let Some(hex) = hash_request_body(c.stream, in_body_hook) else {
        reply_now(
            c,
            &LocalError::internal("the request body could not be read"),
        );
        return None;
    };
    let Some((action, host)) = run(c, false, |e, host| e.on_request_body(host, c.id, &hex)) else {
        reply_now(c, &LocalError::internal("the filter is busy"));
        return None;
    };
    worker::set_phase(c.id, phase_after(action));
    host.finish();
    waker_if_paused(c, action);
    (worker::phase_of(c.id) != Some(Phase::Replied)).then_some(action)
}

#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_http_filter_request_body(
    envoy_ptr: *mut c_void,
    filter_ptr: *const c_void,
    end_of_stream: bool,
) -> u32 {
    // SAFETY: this hook's own pointers.
    let c = unsafe { ctx(envoy_ptr, filter_ptr) };
    guard(
        "request_body",
        || {
            reply_after_panic(c.as_ref());
            BODY_STOP_NO_BUFFER
        },
        || {
            let Some(c) = &c else {
                return BODY_STOP_NO_BUFFER;
            };
            match worker::phase_of(c.id) {
                Some(Phase::Passed) => return BODY_CONTINUE,
                // Waiting for the engine: Envoy holds the body, with flow control.
                Some(Phase::Paused) | Some(Phase::New) => return BODY_STOP_AND_WATERMARK,
                Some(Phase::Buffering) => {}
                Some(Phase::Replied) | None => return BODY_STOP_NO_BUFFER,
            }
            let buffered = c.stream.body_size(Body::BufferedRequest);
            let received = if c.stream.received_is_buffered_request_body() {
                0
            } else {
                c.stream.body_size(Body::ReceivedRequest)
            };
            let total = u64::try_from(buffered.saturating_add(received)).unwrap_or(u64::MAX);
            let limit = c
                .engine
                .engine
                .try_borrow()
                .map_or(0, |e| e.max_body_bytes());
            if total > limit {
                if let Some(((), host)) =
                    run(c, false, |e, host| e.on_request_body_too_large(host, c.id))
                {
                    host.finish();
                }
                // Answered (or, if the engine was busy, answered here): nothing goes on.
                reply_now(c, &LocalError::internal("the body is over max_body_bytes"));
                return BODY_STOP_NO_BUFFER;
            }
            if !end_of_stream {
                return BODY_STOP_AND_BUFFER;
            }
            match body_complete(c, true) {
                Some(Action::Continue) => BODY_CONTINUE,
                Some(_) => BODY_STOP_AND_BUFFER,
                None => BODY_STOP_NO_BUFFER,
            }
        },
    )
}

#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_http_filter_request_trailers(
    envoy_ptr: *mut c_void,
    filter_ptr: *const c_void,
) -> u32 {
    // SAFETY: this hook's own pointers.
    let c = unsafe { ctx(envoy_ptr, filter_ptr) };
    guard(
        "request_trailers",
        || {
            reply_after_panic(c.as_ref());
            TRAILERS_STOP
        },
        || {
            let Some(c) = &c else {
                return TRAILERS_STOP;
            };
            match worker::phase_of(c.id) {
                Some(Phase::Passed) => TRAILERS_CONTINUE,
                // Trailers end the body: all of it is buffered now (trailers are not signed).
                Some(Phase::Buffering) => match body_complete(c, false) {
                    Some(Action::Continue) => TRAILERS_CONTINUE,
                    _ => TRAILERS_STOP,
                },
                _ => TRAILERS_STOP,
            }
        },
    )
}

/// `:status` and body of a callout answer.
///
/// # Safety
/// The pointers and sizes must be those Envoy passed to the callout-done hook being run.
unsafe fn callout_answer(
    result: u32,
    headers: *const EnvoyHeader,
    headers_size: usize,
    body_chunks: *const EnvoyBuffer,
    body_chunks_size: usize,
) -> (Option<u32>, Vec<u8>) {
    let mut status = None;
    if result == CALLOUT_SUCCESS && !headers.is_null() {
        // SAFETY: Envoy passes `headers_size` headers, valid during this hook.
        let hs = unsafe { std::slice::from_raw_parts(headers, headers_size) };
        for h in hs {
            // SAFETY: views valid during this hook.
            let (k, v) = unsafe { h.pair() };
            if k == b":status" {
                status = std::str::from_utf8(v).ok().and_then(|s| s.parse().ok());
            }
        }
    }
    let mut body = Vec::new();
    if status.is_some() && !body_chunks.is_null() {
        // SAFETY: Envoy passes `body_chunks_size` chunks, valid during this hook.
        let chunks = unsafe { std::slice::from_raw_parts(body_chunks, body_chunks_size) };
        for ch in chunks {
            // SAFETY: views valid during this hook.
            let bytes = unsafe { ch.bytes() };
            if body.len() + bytes.len() > vault::MAX_RESPONSE_BYTES {
                // Too large to be a grant record: the engine refuses it by its size.
                body = vec![b' '; vault::MAX_RESPONSE_BYTES + 1];
                break;
            }
            body.extend_from_slice(bytes);
        }
    }
    (status, body)
}

#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_http_filter_http_callout_done(
    envoy_ptr: *mut c_void,
    filter_ptr: *const c_void,
    callout_id: u64,
    result: u32,
    headers: *const EnvoyHeader,
    headers_size: usize,
    body_chunks: *const EnvoyBuffer,
    body_chunks_size: usize,
) {
    // SAFETY: this hook's own pointers.
    let c = unsafe { ctx(envoy_ptr, filter_ptr) };
    guard(
        "http_callout_done",
        || (),
        || {
            let Some(c) = &c else {
                return;
            };
            let Some(token) = worker::take_callout(c.id, callout_id) else {
                return;
            };
            // SAFETY: Envoy's arrays for this hook.
            let (status, body) = unsafe {
                callout_answer(result, headers, headers_size, body_chunks, body_chunks_size)
            };
            let size = body.len();
            if let Some(((), host)) = run(c, false, |e, h| {
                h.answer = Some((status, body));
                e.on_callout_answer(h, token, size);
            }) {
                host.finish();
            }
        },
    )
}

#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_http_filter_response_headers(
    envoy_ptr: *mut c_void,
    filter_ptr: *const c_void,
    _end_of_stream: bool,
) -> u32 {
    // SAFETY: this hook's own pointers.
    let c = unsafe { ctx(envoy_ptr, filter_ptr) };
    guard(
        "response_headers",
        || HEADERS_CONTINUE,
        || {
            let Some(c) = &c else {
                return HEADERS_CONTINUE;
            };
            if worker::phase_of(c.id) == Some(Phase::Replied) {
                return HEADERS_CONTINUE;
            }
            if let Some(((), host)) = run(c, true, |e, h| e.on_response_headers(h, c.id)) {
                host.finish();
            }
            HEADERS_CONTINUE
        },
    )
}

// The hooks below are required by Envoy 1.40 and have nothing to do here.

#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_http_filter_response_body(
    _envoy_ptr: *mut c_void,
    _filter_ptr: *const c_void,
    _end_of_stream: bool,
) -> u32 {
    BODY_CONTINUE
}

#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_http_filter_response_trailers(
    _envoy_ptr: *mut c_void,
    _filter_ptr: *const c_void,
) -> u32 {
    TRAILERS_CONTINUE
}

/// The worker's waker: answers came through the main thread, or a tick may be due.
#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_http_filter_scheduled(
    envoy_ptr: *mut c_void,
    filter_ptr: *const c_void,
    _event_id: u64,
) {
    // SAFETY: this hook's own pointers.
    let c = unsafe { ctx(envoy_ptr, filter_ptr) };
    guard(
        "scheduled",
        || (),
        || {
            match &c {
                // The answers, and the tick of the waker's engine when it is due.
                Some(c) => {
                    if let Some(((), host)) = run(c, false, |_, _| ()) {
                        host.finish();
                    }
                }
                None => deliver_mailbox(None),
            }
            if !worker::any_paused() {
                if let Some(m) = worker::mailbox() {
                    m.want_ticks(false);
                }
            }
        },
    )
}

/// The main thread: start the callouts the workers queued; at a [`crate::main_engine::TICK`],
/// tick the configuration's main engine.
#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_http_filter_config_scheduled(
    config_envoy_ptr: *mut c_void,
    config_ptr: *const c_void,
    event_id: u64,
) {
    guard(
        "config_scheduled",
        || (),
        || {
            // SAFETY: a live configuration from config_new (this hook runs before its destroy).
            if let Some(config) = unsafe { (config_ptr as *const Arc<FilterConfig>).as_ref() } {
                // SAFETY: this configuration's own Envoy pointer, on the main thread.
                config
                    .main
                    .start_jobs(unsafe { ConfigRef::new(config_envoy_ptr) });
                if event_id == crate::main_engine::TICK {
                    crate::main_engine::tick(config);
                }
            }
        },
    )
}

/// The main thread: the answer of a configuration callout, handed to the main engine or to
/// its worker.
#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_http_filter_config_http_callout_done(
    _config_envoy_ptr: *mut c_void,
    config_ptr: *const c_void,
    callout_id: u64,
    result: u32,
    headers: *const EnvoyHeader,
    headers_size: usize,
    body_chunks: *const EnvoyBuffer,
    body_chunks_size: usize,
) {
    guard(
        "config_http_callout_done",
        || (),
        || {
            // SAFETY: a live configuration from config_new (this hook runs before its destroy).
            let Some(config) = (unsafe { (config_ptr as *const Arc<FilterConfig>).as_ref() })
            else {
                return;
            };
            // SAFETY: Envoy's arrays for this hook.
            let (status, body) = unsafe {
                callout_answer(result, headers, headers_size, body_chunks, body_chunks_size)
            };
            if let Some(body) = crate::main_engine::answered(config, callout_id, status, body) {
                config.main.answered(callout_id, status, body);
            }
        },
    )
}

#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_http_filter_http_stream_headers(
    _envoy_ptr: *mut c_void,
    _filter_ptr: *const c_void,
    _stream_id: u64,
    _headers: *const EnvoyHeader,
    _headers_size: usize,
    _end_stream: bool,
) {
}

#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_http_filter_http_stream_data(
    _envoy_ptr: *mut c_void,
    _filter_ptr: *const c_void,
    _stream_id: u64,
    _data: *const EnvoyBuffer,
    _data_count: usize,
    _end_stream: bool,
) {
}

#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_http_filter_http_stream_trailers(
    _envoy_ptr: *mut c_void,
    _filter_ptr: *const c_void,
    _stream_id: u64,
    _trailers: *const EnvoyHeader,
    _trailers_size: usize,
) {
}

#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_http_filter_http_stream_complete(
    _envoy_ptr: *mut c_void,
    _filter_ptr: *const c_void,
    _stream_id: u64,
) {
}

#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_http_filter_http_stream_reset(
    _envoy_ptr: *mut c_void,
    _filter_ptr: *const c_void,
    _stream_id: u64,
    _reason: u32,
) {
}

#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_http_filter_downstream_above_write_buffer_high_watermark(
    _envoy_ptr: *mut c_void,
    _filter_ptr: *const c_void,
) {
}

#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_http_filter_downstream_below_write_buffer_low_watermark(
    _envoy_ptr: *mut c_void,
    _filter_ptr: *const c_void,
) {
}
