//! The event hooks Envoy calls, translated into the events of the request state machine
//! (`interim_engine`) and its effects applied through the safe wrappers of `envoy`.
//!
//! Every hook Envoy 1.40 requires of an HTTP-filter module is defined, the unused ones as
//! no-ops. Every hook runs its body under `catch_unwind` (the crate is built with
//! `panic = "unwind"`): a panic is logged and, on the request path, answered with 500
//! `InternalError`; it never unwinds into Envoy nor aborts it.

use crate::envoy::{self, Attribute, Body, EnvoyBuffer, EnvoyHeader, HeaderMap, LogLevel, Stream};
use crate::interim_engine::{Next, Request, Step};
use grant_sigv4_core::config::{AuthMethod, Config};
use grant_sigv4_core::errors::LocalError;
use grant_sigv4_core::policy::{self, Caller};
use grant_sigv4_core::vault;
use sha2::{Digest, Sha256};
use std::ffi::c_void;
use std::panic::{catch_unwind, AssertUnwindSafe};
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

/// One filter configuration (one `DynamicModuleFilter` in Envoy's config).
struct FilterConfig {
    cfg: Arc<Config>,
}

/// One HTTP stream.
struct Filter {
    request: Request,
    /// A local reply was sent: nothing else is done for this stream.
    replied: bool,
    /// The vault callout under way.
    callout: Option<u64>,
}

fn log(level: LogLevel, message: impl FnOnce() -> String) {
    if envoy::log_enabled(level) {
        envoy::log(level, &message());
    }
}

fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

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

/// # Safety
/// `ptr` must be a pointer returned by `on_http_filter_new` and not yet destroyed; Envoy
/// calls a stream's hooks one at a time on its worker, so no other reference to it exists.
unsafe fn filter<'a>(ptr: *const c_void) -> Option<&'a mut Filter> {
    // SAFETY: per the function's contract.
    unsafe { (ptr as *mut Filter).as_mut() }
}

fn reply(stream: Stream, f: &mut Filter, e: &LocalError) {
    if f.replied {
        return;
    }
    f.replied = true;
    log(LogLevel::Debug, || {
        format!("grant-sigv4: local reply {} {}", e.status(), e.code)
    });
    stream.send_response(
        e.status(),
        &[("content-type", b"application/json")],
        e.body().as_bytes(),
        "grant_sigv4_local_reply",
    );
}

/// The 500 answer of a request whose hook panicked.
fn reply_after_panic(stream: Stream, ptr: *const c_void) {
    // SAFETY: the hook's own filter pointer (see `filter`); the panicking borrow has ended.
    if let Some(f) = unsafe { filter(ptr) } {
        reply(
            stream,
            f,
            &LocalError::internal("the filter failed unexpectedly"),
        );
    }
}

fn caller(stream: Stream) -> Caller {
    Caller {
        principal: stream
            .attribute(Attribute::ConnectionUriSanPeerCertificate)
            .filter(|s| !s.is_empty()),
        source: stream
            .attribute(Attribute::SourceAddress)
            .and_then(|s| policy::parse_socket_ip(&s)),
    }
}

/// Apply a step's edits and start its vault read. Returns what the stream does next.
fn apply(stream: Stream, cfg: &Config, f: &mut Filter, step: Step) -> Next {
    if let Some(edits) = &step.edits {
        let mut ok = true;
        for name in &edits.remove {
            ok &= stream.remove_request_header(name);
        }
        for (name, value) in &edits.set {
            ok &= stream.set_request_header(name, value.as_bytes());
        }
        if !ok {
            // Never forward a half-edited request.
            return Next::Reply(LocalError::internal(
                "the signed headers could not be written",
            ));
        }
    }
    if let Some(read) = &step.read {
        let all: [(&str, &[u8]); 5] = [
            (":method", b"GET"),
            (":path", read.path.as_bytes()),
            (":authority", cfg.vault.authority.as_bytes()),
            ("accept", b"application/json"),
            ("x-vault-token", cfg.vault.token.as_bytes()),
        ];
        // Behind a Vault or OpenBao Proxy the module holds no token and sends none.
        let headers = match cfg.vault.auth {
            AuthMethod::Token => &all[..],
            // Refused at configuration (the module has no AppRole login).
            AuthMethod::Proxy | AuthMethod::AppRole => &all[..4],
        };
        match stream.http_callout(&cfg.vault.cluster, headers, cfg.vault.timeout_ms) {
            Ok(id) => f.callout = Some(id),
            Err(code) => {
                log(LogLevel::Warn, || {
                    format!(
                        "grant-sigv4: vault callout to cluster {} failed to start (result {code})",
                        cfg.vault.cluster
                    )
                });
                let again = f.request.read_not_started();
                return again.next;
            }
        }
    }
    step.next
}

#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_program_init() -> *const u8 {
    envoy::ABI_VERSION.as_ptr()
}

#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_http_filter_config_new(
    _config_envoy_ptr: *mut c_void,
    _name: EnvoyBuffer,
    config: EnvoyBuffer,
) -> *const c_void {
    guard("config_new", std::ptr::null, || {
        // SAFETY: Envoy passes the filter_config bytes, valid during this hook.
        let bytes = unsafe { config.bytes() };
        let parsed = Config::parse(bytes).and_then(|mut c| {
            c.resolve_token(|name| std::env::var(name).ok())?;
            if c.vault.auth == AuthMethod::AppRole {
                return Err(grant_sigv4_core::config::ConfigError {
                    key: "vault.auth.method".into(),
                    problem: "\"approle\" is not supported by the dynamic module: use \"proxy\" \
                              (a local OpenBao or Vault Proxy logs in) or \"token\""
                        .into(),
                });
            }
            Ok(c)
        });
        match parsed {
            Ok(cfg) => {
                envoy::log(
                    LogLevel::Info,
                    &format!(
                        "grant-sigv4 configured (dynamic module): grant header {}, vault cluster {}, \
                         vault auth {}, cache ttl {}s, max body {} bytes",
                        cfg.grant_header,
                        cfg.vault.cluster,
                        cfg.vault.auth.as_str(),
                        cfg.cache.ttl_seconds,
                        cfg.max_body_bytes
                    ),
                );
                let boxed = Box::new(FilterConfig { cfg: Arc::new(cfg) });
                Box::into_raw(boxed) as *const c_void
            }
            Err(e) => {
                envoy::log(LogLevel::Error, &format!("grant-sigv4: {e}"));
                std::ptr::null()
            }
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
                // SAFETY: a pointer from Box::into_raw in config_new, destroyed once by Envoy.
                drop(unsafe { Box::from_raw(config_ptr as *mut FilterConfig) });
            }
        },
    )
}

#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_http_filter_new(
    config_ptr: *const c_void,
    _filter_envoy_ptr: *mut c_void,
) -> *const c_void {
    guard("filter_new", std::ptr::null, || {
        // SAFETY: a live FilterConfig from config_new (Envoy destroys it after its filters).
        let Some(fc) = (unsafe { (config_ptr as *const FilterConfig).as_ref() }) else {
            return std::ptr::null();
        };
        let f = Box::new(Filter {
            request: Request::new(Arc::clone(&fc.cfg)),
            replied: false,
            callout: None,
        });
        Box::into_raw(f) as *const c_void
    })
}

#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_http_filter_destroy(filter_ptr: *const c_void) {
    guard(
        "filter_destroy",
        || (),
        || {
            if !filter_ptr.is_null() {
                // SAFETY: a pointer from Box::into_raw in filter_new, destroyed once by Envoy.
                drop(unsafe { Box::from_raw(filter_ptr as *mut Filter) });
            }
        },
    )
}

/// The configuration of a stream's filter.
fn config_of(f: &Filter) -> Arc<Config> {
    f.request.config()
}

#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_http_filter_request_headers(
    envoy_ptr: *mut c_void,
    filter_ptr: *const c_void,
    end_of_stream: bool,
) -> u32 {
    // SAFETY: the filter_envoy_ptr of this hook.
    let stream = unsafe { Stream::new(envoy_ptr) };
    guard(
        "request_headers",
        || {
            reply_after_panic(stream, filter_ptr);
            HEADERS_STOP_ITERATION
        },
        || {
            // SAFETY: this stream's filter, used by this hook only.
            let Some(f) = (unsafe { filter(filter_ptr) }) else {
                return HEADERS_CONTINUE;
            };
            let cfg = config_of(f);
            let Some(headers) = stream.headers(HeaderMap::RequestHeaders) else {
                reply(
                    stream,
                    f,
                    &LocalError::internal("the request headers could not be read"),
                );
                return HEADERS_STOP_ITERATION;
            };
            #[cfg(feature = "panic-test")]
            panic_test(&headers);
            let step = f
                .request
                .request_headers(&headers, end_of_stream, now_secs(), &mut || caller(stream));
            match apply(stream, &cfg, f, step) {
                Next::Continue => HEADERS_CONTINUE,
                Next::Wait => HEADERS_STOP_ITERATION,
                Next::Reply(e) => {
                    reply(stream, f, &e);
                    HEADERS_STOP_ITERATION
                }
            }
        },
    )
}

/// Test-only (feature `panic-test`): panic on a marked request.
#[cfg(feature = "panic-test")]
#[allow(clippy::panic)]
fn panic_test(headers: &[(String, Vec<u8>)]) {
    if headers.iter().any(|(k, _)| k == "x-grant-sigv4-panic-test") {
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
    let mut out = String::with_capacity(64);
    for b in digest {
        out.push(char::from(b"0123456789abcdef"[usize::from(b >> 4)]));
        out.push(char::from(b"0123456789abcdef"[usize::from(b & 15)]));
    }
    Some(out)
}

#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_http_filter_request_body(
    envoy_ptr: *mut c_void,
    filter_ptr: *const c_void,
    end_of_stream: bool,
) -> u32 {
    // SAFETY: the filter_envoy_ptr of this hook.
    let stream = unsafe { Stream::new(envoy_ptr) };
    guard(
        "request_body",
        || {
            reply_after_panic(stream, filter_ptr);
            BODY_STOP_NO_BUFFER
        },
        || {
            // SAFETY: this stream's filter, used by this hook only.
            let Some(f) = (unsafe { filter(filter_ptr) }) else {
                return BODY_CONTINUE;
            };
            if f.replied {
                return BODY_STOP_NO_BUFFER;
            }
            if !f.request.needs_body_hash() {
                // Signed already (or waiting for the vault with a known hash): the body
                // streams; while paused, Envoy holds it with flow control.
                return if f.request.finished() {
                    BODY_CONTINUE
                } else {
                    BODY_STOP_AND_WATERMARK
                };
            }
            let buffered = stream.body_size(Body::BufferedRequest);
            let received = if stream.received_is_buffered_request_body() {
                0
            } else {
                stream.body_size(Body::ReceivedRequest)
            };
            let total = u64::try_from(buffered.saturating_add(received)).unwrap_or(u64::MAX);
            if total > f.request.max_body_bytes() {
                let step = f.request.body_too_large();
                if let Next::Reply(e) = step.next {
                    reply(stream, f, &e);
                }
                return BODY_STOP_NO_BUFFER;
            }
            if !end_of_stream {
                return BODY_STOP_AND_BUFFER;
            }
            let cfg = config_of(f);
            let step = match hash_request_body(stream, true) {
                Some(hex) => f
                    .request
                    .body_complete(hex, now_secs(), &mut || caller(stream)),
                None => {
                    reply(
                        stream,
                        f,
                        &LocalError::internal("the request body could not be read"),
                    );
                    return BODY_STOP_NO_BUFFER;
                }
            };
            match apply(stream, &cfg, f, step) {
                Next::Continue => BODY_CONTINUE,
                Next::Wait => BODY_STOP_AND_BUFFER,
                Next::Reply(e) => {
                    reply(stream, f, &e);
                    BODY_STOP_NO_BUFFER
                }
            }
        },
    )
}

#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_http_filter_request_trailers(
    envoy_ptr: *mut c_void,
    filter_ptr: *const c_void,
) -> u32 {
    // SAFETY: the filter_envoy_ptr of this hook.
    let stream = unsafe { Stream::new(envoy_ptr) };
    guard(
        "request_trailers",
        || {
            reply_after_panic(stream, filter_ptr);
            TRAILERS_STOP
        },
        || {
            // SAFETY: this stream's filter, used by this hook only.
            let Some(f) = (unsafe { filter(filter_ptr) }) else {
                return TRAILERS_CONTINUE;
            };
            if f.replied {
                return TRAILERS_STOP;
            }
            if f.request.needs_body_hash() {
                // Trailers end the body: all of it is buffered now (trailers are not signed).
                let cfg = config_of(f);
                let Some(hex) = hash_request_body(stream, false) else {
                    reply(
                        stream,
                        f,
                        &LocalError::internal("the request body could not be read"),
                    );
                    return TRAILERS_STOP;
                };
                let step = f
                    .request
                    .body_complete(hex, now_secs(), &mut || caller(stream));
                return match apply(stream, &cfg, f, step) {
                    Next::Continue => TRAILERS_CONTINUE,
                    Next::Wait => TRAILERS_STOP,
                    Next::Reply(e) => {
                        reply(stream, f, &e);
                        TRAILERS_STOP
                    }
                };
            }
            if f.request.finished() {
                TRAILERS_CONTINUE
            } else {
                TRAILERS_STOP
            }
        },
    )
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
    // SAFETY: the filter_envoy_ptr of this hook.
    let stream = unsafe { Stream::new(envoy_ptr) };
    guard(
        "http_callout_done",
        || reply_after_panic(stream, filter_ptr),
        || {
            // SAFETY: this stream's filter, used by this hook only.
            let Some(f) = (unsafe { filter(filter_ptr) }) else {
                return;
            };
            if f.callout != Some(callout_id) || f.replied {
                return;
            }
            f.callout = None;
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
                for c in chunks {
                    // SAFETY: views valid during this hook.
                    let bytes = unsafe { c.bytes() };
                    if body.len() + bytes.len() > vault::MAX_RESPONSE_BYTES {
                        // Too large to be a grant record: let the parser refuse it by size.
                        body = vec![b' '; vault::MAX_RESPONSE_BYTES + 1];
                        break;
                    }
                    body.extend_from_slice(bytes);
                }
            }
            let cfg = config_of(f);
            let step = f
                .request
                .vault_answer(status, &body, now_secs(), &mut || caller(stream));
            match apply(stream, &cfg, f, step) {
                Next::Continue => stream.continue_decoding(),
                Next::Wait => {}
                Next::Reply(e) => reply(stream, f, &e),
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
    // SAFETY: the filter_envoy_ptr of this hook.
    let stream = unsafe { Stream::new(envoy_ptr) };
    guard(
        "response_headers",
        || HEADERS_CONTINUE,
        || {
            // SAFETY: this stream's filter, used by this hook only.
            let Some(f) = (unsafe { filter(filter_ptr) }) else {
                return HEADERS_CONTINUE;
            };
            if f.replied {
                return HEADERS_CONTINUE;
            }
            let status = stream
                .header(HeaderMap::ResponseHeaders, ":status")
                .and_then(|v| std::str::from_utf8(&v).ok()?.parse::<u32>().ok())
                .unwrap_or(0);
            if status == 400 || status == 403 {
                let error_type = stream
                    .header(HeaderMap::ResponseHeaders, "x-amzn-errortype")
                    .and_then(|v| String::from_utf8(v).ok());
                f.request.response_headers(status, error_type.as_deref());
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

#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_http_filter_stream_complete(
    _envoy_ptr: *mut c_void,
    _filter_ptr: *const c_void,
) {
}

#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_http_filter_scheduled(
    _envoy_ptr: *mut c_void,
    _filter_ptr: *const c_void,
    _event_id: u64,
) {
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
