//! Tests only: Envoy's side of the dynamic-module ABI, in Rust. Every callback `envoy`
//! declares is defined here with the same signature, `#[no_mangle]`, so that the test binary
//! links and the exported hooks (`hooks`) can be driven as Envoy drives them. State is per
//! thread (each test thread is one Envoy worker and its main thread at once).
//!
//! Pointers handed to the module (streams, configurations, schedulers) are plain numbers:
//! the module never dereferences them, it only passes them back. A call on a stream that was
//! destroyed, a commit on a deleted scheduler, a second local reply, a local reply after the
//! request was let through, or a request let through without a SigV4 `authorization` header
//! is recorded as a violation, which the fuzz asserts never happens.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use crate::envoy::{
    Attribute, Body, ConfigEnvoyPtr, EnvoyBuffer, EnvoyHeader, FilterEnvoyPtr, HeaderMap, LogLevel,
    MetricsResult, ModuleBuffer, ModuleHeader,
};
use std::cell::RefCell;
use std::collections::HashMap;
use std::ffi::c_void;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

/// Scheduler pointers, unique in the process.
static NEXT_SCHEDULER: AtomicUsize = AtomicUsize::new(0);
/// Commits made from threads that do not own the scheduler (the module's ticker thread):
/// taken by the owner's thread ([`take_commits`]).
static FOREIGN_COMMITS: Mutex<Vec<(usize, u64)>> = Mutex::new(Vec::new());

pub type Pair = (Vec<u8>, Vec<u8>);

/// A callout the module started.
#[derive(Clone, Debug)]
pub struct Callout {
    pub id: u64,
    pub cluster: Vec<u8>,
    pub headers: Vec<Pair>,
}

impl Callout {
    pub fn header(&self, name: &[u8]) -> Option<&[u8]> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_slice())
    }
}

/// A local reply.
#[derive(Clone, Debug)]
pub struct Reply {
    pub status: u32,
    pub headers: Vec<Pair>,
    pub body: Vec<u8>,
}

#[derive(Default)]
pub struct Stream {
    pub alive: bool,
    /// The module's filter pointer for this stream (for re-entrant hooks).
    pub filter_ptr: usize,
    pub request_headers: Vec<Pair>,
    pub response_headers: Vec<Pair>,
    pub buffered: Vec<Vec<u8>>,
    pub received: Vec<u8>,
    pub source_address: Option<Vec<u8>>,
    pub uri_san: Option<Vec<u8>>,
    /// Callouts under way on this stream (cancelled, silently, when it is destroyed).
    pub callouts: Vec<Callout>,
    /// Starting a callout fails.
    pub callout_fails: bool,
    pub replies: Vec<Reply>,
    pub continues: usize,
    /// Let through to the next filter (headers hook Continue, continue_decoding...).
    pub forwarded: bool,
    pub filter_state: Vec<Pair>,
    /// Every (name, value) the module set in the request headers.
    pub written: Vec<Pair>,
}

#[derive(Default)]
pub struct Fake {
    pub streams: HashMap<usize, Stream>,
    /// Configuration callouts under way: the configuration's Envoy pointer and the callout.
    pub config_callouts: Vec<(usize, Callout)>,
    pub config_callout_fails: bool,
    /// Scheduler pointer -> (is a configuration's, owner pointer, not deleted).
    pub schedulers: HashMap<usize, (bool, usize, bool)>,
    /// Committed events: scheduler pointer, event id.
    pub scheduled: Vec<(usize, u64)>,
    pub logs: Vec<String>,
    pub metric_names: Vec<Vec<u8>>,
    pub metrics: HashMap<(usize, usize), u64>,
    next_callout: u64,
    pub violations: Vec<String>,
    /// A local reply runs the filter's response-headers hook at once, as Envoy's encoder
    /// path does.
    pub reentrant_reply: bool,
    /// Calls made into the fake (each callback once).
    pub calls: u64,
    /// Generic secrets Envoy has, by name (static or from SDS; updated by the tests).
    pub secrets: HashMap<String, Vec<u8>>,
    /// Subscribed secrets: handle - 1 -> name.
    pub subscriptions: Vec<String>,
}

thread_local! {
    static FAKE: RefCell<Fake> = RefCell::new(Fake::default());
}

/// Run `f` on this thread's fake Envoy (never while a hook runs inside `f`).
pub fn with<R>(f: impl FnOnce(&mut Fake) -> R) -> R {
    FAKE.with(|c| f(&mut c.borrow_mut()))
}

/// Forget every stream, callout and record.
pub fn reset() {
    with(|f| {
        *f = Fake {
            next_callout: f.next_callout,
            ..Fake::default()
        };
    });
}

/// Mark `stream` let through: it must carry a SigV4 signature and no local reply.
pub fn forward(f: &mut Fake, stream: usize, how: &str) {
    let Some(s) = f.streams.get_mut(&stream) else {
        return;
    };
    if s.forwarded {
        return;
    }
    s.forwarded = true;
    let signed = s.request_headers.iter().any(|(k, v)| {
        k.as_slice() == b"authorization" && v.starts_with(b"AWS4-HMAC-SHA256 Credential=")
    });
    let dated = s
        .request_headers
        .iter()
        .any(|(k, _)| k.as_slice() == b"x-amz-date");
    let replied = !s.replies.is_empty();
    if !signed || !dated {
        f.violations
            .push(format!("stream {stream:#x} let through unsigned ({how})"));
    }
    if replied {
        f.violations.push(format!(
            "stream {stream:#x} let through after a local reply ({how})"
        ));
    }
}

/// # Safety
/// `b` must be a live buffer of the module's (or null).
unsafe fn bytes(b: ModuleBuffer) -> Vec<u8> {
    if b.ptr.is_null() || b.len == 0 {
        Vec::new()
    } else {
        // SAFETY: per the contract.
        unsafe { std::slice::from_raw_parts(b.ptr, b.len) }.to_vec()
    }
}

/// # Safety
/// `hs` must point to `n` live headers of the module's (or be null with n == 0).
unsafe fn headers(hs: *mut ModuleHeader, n: usize) -> Vec<Pair> {
    if hs.is_null() || n == 0 {
        return Vec::new();
    }
    // SAFETY: per the contract.
    let hs = unsafe { std::slice::from_raw_parts(hs, n) };
    // SAFETY: each header's buffers are live.
    hs.iter()
        .map(|h| unsafe { (bytes(h.key), bytes(h.value)) })
        .collect()
}

fn view(b: &[u8]) -> EnvoyBuffer {
    EnvoyBuffer {
        ptr: b.as_ptr(),
        len: b.len(),
    }
}

/// Headers as Envoy passes them to a hook (views into `pairs`).
pub fn envoy_headers(pairs: &[Pair]) -> Vec<EnvoyHeader> {
    pairs
        .iter()
        .map(|(k, v)| EnvoyHeader {
            key: view(k),
            value: view(v),
        })
        .collect()
}

/// Chunks as Envoy passes them to a hook.
pub fn envoy_chunks(chunks: &[Vec<u8>]) -> Vec<EnvoyBuffer> {
    chunks.iter().map(|c| view(c)).collect()
}

/// The live stream `p`, or a violation.
fn stream<'a>(f: &'a mut Fake, p: FilterEnvoyPtr, what: &str) -> Option<&'a mut Stream> {
    f.calls += 1;
    let key = p as usize;
    if f.streams.get(&key).is_some_and(|s| s.alive) {
        return f.streams.get_mut(&key);
    }
    f.violations
        .push(format!("{what} on a stream that is not live ({key:#x})"));
    None
}

fn map(s: &mut Stream, m: HeaderMap) -> Option<&mut Vec<Pair>> {
    match m {
        HeaderMap::RequestHeaders => Some(&mut s.request_headers),
        HeaderMap::ResponseHeaders => Some(&mut s.response_headers),
        _ => None,
    }
}

#[no_mangle]
extern "C" fn envoy_dynamic_module_callback_log(_level: LogLevel, message: ModuleBuffer) {
    // SAFETY: the module's buffer, live during the call.
    let m = unsafe { bytes(message) };
    with(|f| f.logs.push(String::from_utf8_lossy(&m).into_owned()));
}

#[no_mangle]
extern "C" fn envoy_dynamic_module_callback_log_enabled(_level: LogLevel) -> bool {
    true
}

#[no_mangle]
extern "C" fn envoy_dynamic_module_callback_http_get_headers_size(
    p: FilterEnvoyPtr,
    m: HeaderMap,
) -> usize {
    with(|f| {
        stream(f, p, "get_headers_size")
            .and_then(|s| map(s, m).map(|h| h.len()))
            .unwrap_or(0)
    })
}

#[no_mangle]
extern "C" fn envoy_dynamic_module_callback_http_get_headers(
    p: FilterEnvoyPtr,
    m: HeaderMap,
    out: *mut EnvoyHeader,
) -> bool {
    with(|f| {
        let Some(hs) = stream(f, p, "get_headers").and_then(|s| map(s, m)) else {
            return false;
        };
        for (i, h) in envoy_headers(hs).into_iter().enumerate() {
            // SAFETY: the module sized `out` by get_headers_size just before.
            unsafe { out.add(i).write(h) };
        }
        true
    })
}

#[no_mangle]
extern "C" fn envoy_dynamic_module_callback_http_get_header(
    p: FilterEnvoyPtr,
    m: HeaderMap,
    key: ModuleBuffer,
    out: *mut EnvoyBuffer,
    index: usize,
    count: *mut usize,
) -> bool {
    // SAFETY: the module's buffer.
    let key = unsafe { bytes(key) };
    with(|f| {
        let Some(hs) = stream(f, p, "get_header").and_then(|s| map(s, m)) else {
            return false;
        };
        let values: Vec<&Vec<u8>> = hs
            .iter()
            .filter(|(k, _)| *k == key)
            .map(|(_, v)| v)
            .collect();
        // SAFETY: valid for writes (the module's locals).
        unsafe { count.write(values.len()) };
        match values.get(index) {
            Some(v) => {
                // SAFETY: as above.
                unsafe { out.write(view(v)) };
                true
            }
            None => false,
        }
    })
}

#[no_mangle]
extern "C" fn envoy_dynamic_module_callback_http_set_header(
    p: FilterEnvoyPtr,
    m: HeaderMap,
    key: ModuleBuffer,
    value: ModuleBuffer,
) -> bool {
    // SAFETY: the module's buffers.
    let (k, v) = unsafe { (bytes(key), bytes(value)) };
    let remove = value.ptr.is_null();
    with(|f| {
        let Some(s) = stream(f, p, "set_header") else {
            return false;
        };
        if !remove {
            s.written.push((k.clone(), v.clone()));
        }
        let Some(hs) = map(s, m) else {
            return false;
        };
        let at = hs.iter().position(|(n, _)| *n == k);
        hs.retain(|(n, _)| *n != k);
        if !remove {
            hs.insert(at.unwrap_or(hs.len()).min(hs.len()), (k, v));
        }
        true
    })
}

/// Envoy appends the value. The module adds only headers the request does not have: here,
/// adding one it has fails, so a test that makes the module do so sees the request refused.
#[no_mangle]
extern "C" fn envoy_dynamic_module_callback_http_add_header(
    p: FilterEnvoyPtr,
    m: HeaderMap,
    key: ModuleBuffer,
    value: ModuleBuffer,
) -> bool {
    // SAFETY: the module's buffers.
    let (k, v) = unsafe { (bytes(key), bytes(value)) };
    with(|f| {
        let Some(s) = stream(f, p, "add_header") else {
            return false;
        };
        s.written.push((k.clone(), v.clone()));
        let Some(hs) = map(s, m) else {
            return false;
        };
        if hs.iter().any(|(n, _)| *n == k) {
            return false;
        }
        hs.push((k, v));
        true
    })
}

#[no_mangle]
extern "C" fn envoy_dynamic_module_callback_http_send_response(
    p: FilterEnvoyPtr,
    status: u32,
    hs: *mut ModuleHeader,
    n: usize,
    body: ModuleBuffer,
    _details: ModuleBuffer,
) {
    // SAFETY: the module's buffers, live during the call.
    let (headers, body) = unsafe { (headers(hs, n), bytes(body)) };
    let reenter = with(|f| {
        let reentrant = f.reentrant_reply;
        let key = p as usize;
        let mut v = Vec::new();
        let s = stream(f, p, "send_response")?;
        if !s.replies.is_empty() {
            v.push(format!("stream {key:#x} answered twice"));
        }
        if s.forwarded {
            v.push(format!("stream {key:#x} answered after it was let through"));
        }
        let mut resp = vec![(b":status".to_vec(), status.to_string().into_bytes())];
        resp.extend(headers.iter().cloned());
        s.response_headers = resp;
        s.replies.push(Reply {
            status,
            headers,
            body,
        });
        let fp = s.filter_ptr;
        f.violations.extend(v);
        (reentrant && fp != 0).then_some(fp)
    });
    if let Some(fp) = reenter {
        crate::hooks::envoy_dynamic_module_on_http_filter_response_headers(
            p,
            fp as *const c_void,
            true,
        );
    }
}

#[no_mangle]
extern "C" fn envoy_dynamic_module_callback_http_get_body_size(
    p: FilterEnvoyPtr,
    b: Body,
) -> usize {
    with(|f| match (stream(f, p, "get_body_size"), b) {
        (Some(s), Body::BufferedRequest) => s.buffered.iter().map(Vec::len).sum(),
        (Some(s), Body::ReceivedRequest) => s.received.len(),
        _ => 0,
    })
}

fn chunks(s: &Stream, b: Body) -> Vec<&[u8]> {
    match b {
        Body::BufferedRequest => s.buffered.iter().map(Vec::as_slice).collect(),
        Body::ReceivedRequest if !s.received.is_empty() => vec![s.received.as_slice()],
        _ => Vec::new(),
    }
}

#[no_mangle]
extern "C" fn envoy_dynamic_module_callback_http_get_body_chunks_size(
    p: FilterEnvoyPtr,
    b: Body,
) -> usize {
    with(|f| {
        stream(f, p, "get_body_chunks_size")
            .map(|s| chunks(s, b).len())
            .unwrap_or(0)
    })
}

#[no_mangle]
extern "C" fn envoy_dynamic_module_callback_http_get_body_chunks(
    p: FilterEnvoyPtr,
    b: Body,
    out: *mut EnvoyBuffer,
) -> bool {
    with(|f| {
        let Some(s) = stream(f, p, "get_body_chunks") else {
            return false;
        };
        for (i, c) in chunks(s, b).into_iter().enumerate() {
            // SAFETY: the module sized `out` by get_body_chunks_size just before.
            unsafe { out.add(i).write(view(c)) };
        }
        true
    })
}

#[no_mangle]
extern "C" fn envoy_dynamic_module_callback_http_received_buffered_request_body(
    p: FilterEnvoyPtr,
) -> bool {
    with(|f| {
        stream(f, p, "received_buffered_request_body");
    });
    false
}

#[no_mangle]
extern "C" fn envoy_dynamic_module_callback_http_filter_get_attribute_string(
    p: FilterEnvoyPtr,
    id: Attribute,
    out: *mut EnvoyBuffer,
) -> bool {
    with(|f| {
        let Some(s) = stream(f, p, "get_attribute_string") else {
            return false;
        };
        let v = match id {
            Attribute::SourceAddress => s.source_address.as_ref(),
            Attribute::ConnectionUriSanPeerCertificate => s.uri_san.as_ref(),
        };
        match v {
            Some(v) => {
                // SAFETY: valid for writes (the module's local).
                unsafe { out.write(view(v)) };
                true
            }
            None => false,
        }
    })
}

#[no_mangle]
extern "C" fn envoy_dynamic_module_callback_http_filter_http_callout(
    p: FilterEnvoyPtr,
    callout_id: *mut u64,
    cluster: ModuleBuffer,
    hs: *mut ModuleHeader,
    n: usize,
    _body: ModuleBuffer,
    _timeout_ms: u64,
) -> u32 {
    // SAFETY: the module's buffers, live during the call.
    let (cluster, headers) = unsafe { (bytes(cluster), headers(hs, n)) };
    with(|f| {
        f.next_callout += 1;
        let id = f.next_callout;
        let Some(s) = stream(f, p, "http_callout") else {
            return 1;
        };
        if s.callout_fails {
            return 1;
        }
        s.callouts.push(Callout {
            id,
            cluster,
            headers,
        });
        // SAFETY: valid for writes (the module's local).
        unsafe { callout_id.write(id) };
        0
    })
}

#[no_mangle]
extern "C" fn envoy_dynamic_module_callback_http_filter_continue_decoding(p: FilterEnvoyPtr) {
    with(|f| {
        let key = p as usize;
        if let Some(s) = stream(f, p, "continue_decoding") {
            s.continues += 1;
            forward(f, key, "continue_decoding");
        }
    })
}

#[no_mangle]
extern "C" fn envoy_dynamic_module_callback_http_filter_config_http_callout(
    c: ConfigEnvoyPtr,
    callout_id: *mut u64,
    cluster: ModuleBuffer,
    hs: *mut ModuleHeader,
    n: usize,
    _body: ModuleBuffer,
    _timeout_ms: u64,
) -> u32 {
    // SAFETY: the module's buffers, live during the call.
    let (cluster, headers) = unsafe { (bytes(cluster), headers(hs, n)) };
    with(|f| {
        f.calls += 1;
        if f.config_callout_fails {
            return 1;
        }
        f.next_callout += 1;
        let id = f.next_callout;
        f.config_callouts.push((
            c as usize,
            Callout {
                id,
                cluster,
                headers,
            },
        ));
        // SAFETY: valid for writes (the module's local).
        unsafe { callout_id.write(id) };
        0
    })
}

/// The committed events of this thread's schedulers, those from other threads included.
pub fn take_commits() -> Vec<(usize, u64)> {
    let mut foreign = FOREIGN_COMMITS.lock().unwrap_or_else(|e| e.into_inner());
    with(|f| {
        let mut ev = std::mem::take(&mut f.scheduled);
        foreign.retain(|c| {
            let mine = f.schedulers.contains_key(&c.0);
            if mine {
                ev.push(*c);
            }
            !mine
        });
        ev
    })
}

fn new_scheduler(f: &mut Fake, config: bool, owner: usize) -> *mut c_void {
    let n = NEXT_SCHEDULER.fetch_add(1, Ordering::Relaxed) + 1;
    let p = 0x5c00_0000 + n * 16;
    f.schedulers.insert(p, (config, owner, true));
    p as *mut c_void
}

fn commit(f: &mut Fake, s: *mut c_void, event_id: u64) {
    f.calls += 1;
    let key = s as usize;
    match f.schedulers.get(&key) {
        Some((_, _, true)) => f.scheduled.push((key, event_id)),
        Some(_) => f
            .violations
            .push(format!("commit on a deleted scheduler {key:#x}")),
        None => FOREIGN_COMMITS
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push((key, event_id)),
    }
}

fn delete(f: &mut Fake, s: *mut c_void) {
    f.calls += 1;
    let key = s as usize;
    match f.schedulers.get_mut(&key) {
        Some(e) if e.2 => e.2 = false,
        _ => f
            .violations
            .push(format!("scheduler {key:#x} deleted twice or unknown")),
    }
}

#[no_mangle]
extern "C" fn envoy_dynamic_module_callback_http_filter_config_scheduler_new(
    c: ConfigEnvoyPtr,
) -> *mut c_void {
    with(|f| new_scheduler(f, true, c as usize))
}

#[no_mangle]
extern "C" fn envoy_dynamic_module_callback_http_filter_config_scheduler_commit(
    s: *mut c_void,
    event_id: u64,
) {
    with(|f| commit(f, s, event_id))
}

#[no_mangle]
extern "C" fn envoy_dynamic_module_callback_http_filter_config_scheduler_delete(s: *mut c_void) {
    with(|f| delete(f, s))
}

#[no_mangle]
extern "C" fn envoy_dynamic_module_callback_http_filter_scheduler_new(
    p: FilterEnvoyPtr,
) -> *mut c_void {
    with(|f| {
        if stream(f, p, "scheduler_new").is_none() {
            return std::ptr::null_mut();
        }
        new_scheduler(f, false, p as usize)
    })
}

#[no_mangle]
extern "C" fn envoy_dynamic_module_callback_http_filter_scheduler_commit(
    s: *mut c_void,
    event_id: u64,
) {
    with(|f| commit(f, s, event_id))
}

#[no_mangle]
extern "C" fn envoy_dynamic_module_callback_http_filter_scheduler_delete(s: *mut c_void) {
    with(|f| delete(f, s))
}

#[no_mangle]
extern "C" fn envoy_dynamic_module_callback_http_set_filter_state_bytes(
    p: FilterEnvoyPtr,
    key: ModuleBuffer,
    value: ModuleBuffer,
) -> bool {
    // SAFETY: the module's buffers.
    let (k, v) = unsafe { (bytes(key), bytes(value)) };
    with(|f| match stream(f, p, "set_filter_state_bytes") {
        Some(s) => {
            s.filter_state.push((k, v));
            true
        }
        None => false,
    })
}

fn define(name: ModuleBuffer, id: *mut usize) -> MetricsResult {
    // SAFETY: the module's buffer.
    let name = unsafe { bytes(name) };
    with(|f| {
        f.calls += 1;
        f.metric_names.push(name);
        // SAFETY: valid for writes (the module's local).
        unsafe { id.write(f.metric_names.len()) };
    });
    0
}

fn add(c: ConfigEnvoyPtr, id: usize, value: u64, set: bool) -> MetricsResult {
    with(|f| {
        f.calls += 1;
        let e = f.metrics.entry((c as usize, id)).or_insert(0);
        *e = if set { value } else { e.saturating_add(value) };
    });
    0
}

#[no_mangle]
extern "C" fn envoy_dynamic_module_callback_http_filter_config_define_counter(
    _c: ConfigEnvoyPtr,
    name: ModuleBuffer,
    _label_names: *mut ModuleBuffer,
    _label_names_len: usize,
    id: *mut usize,
) -> MetricsResult {
    define(name, id)
}

#[no_mangle]
extern "C" fn envoy_dynamic_module_callback_http_filter_config_define_gauge(
    _c: ConfigEnvoyPtr,
    name: ModuleBuffer,
    _label_names: *mut ModuleBuffer,
    _label_names_len: usize,
    id: *mut usize,
) -> MetricsResult {
    define(name, id)
}

#[no_mangle]
extern "C" fn envoy_dynamic_module_callback_http_filter_config_define_histogram(
    _c: ConfigEnvoyPtr,
    name: ModuleBuffer,
    _label_names: *mut ModuleBuffer,
    _label_names_len: usize,
    id: *mut usize,
) -> MetricsResult {
    define(name, id)
}

#[no_mangle]
extern "C" fn envoy_dynamic_module_callback_http_filter_config_set_gauge(
    c: ConfigEnvoyPtr,
    id: usize,
    _label_values: *mut ModuleBuffer,
    _label_values_len: usize,
    value: u64,
) -> MetricsResult {
    add(c, id, value, true)
}

#[no_mangle]
extern "C" fn envoy_dynamic_module_callback_http_filter_config_increment_counter(
    c: ConfigEnvoyPtr,
    id: usize,
    _label_values: *mut ModuleBuffer,
    _label_values_len: usize,
    value: u64,
) -> MetricsResult {
    add(c, id, value, false)
}

#[no_mangle]
extern "C" fn envoy_dynamic_module_callback_http_filter_config_record_histogram_value(
    c: ConfigEnvoyPtr,
    id: usize,
    _label_values: *mut ModuleBuffer,
    _label_values_len: usize,
    value: u64,
) -> MetricsResult {
    add(c, id, value, false)
}

/// `generic_secret_subscribe`: a handle (1, 2, ...) for a secret Envoy has, else 0.
pub extern "C" fn envoy_dynamic_module_callback_http_filter_config_generic_secret_subscribe(
    _c: ConfigEnvoyPtr,
    name: ModuleBuffer,
    _config_source: ModuleBuffer,
) -> usize {
    // SAFETY: the module's buffer, live during the call.
    let name = String::from_utf8_lossy(&unsafe { bytes(name) }).into_owned();
    with(|f| {
        f.calls += 1;
        if !f.secrets.contains_key(&name) {
            return 0;
        }
        f.subscriptions.push(name);
        f.subscriptions.len()
    })
}

fn secret_value(handle: usize, out: *mut EnvoyBuffer) -> bool {
    // A view into the fake's map: valid until the test changes the secret (never during a
    // hook).
    with(|f| {
        f.calls += 1;
        let Some(v) = handle
            .checked_sub(1)
            .and_then(|i| f.subscriptions.get(i))
            .and_then(|n| f.secrets.get(n))
        else {
            return false;
        };
        // SAFETY: `out` is the module's, writable.
        unsafe {
            *out = EnvoyBuffer {
                ptr: v.as_ptr(),
                len: v.len(),
            }
        };
        true
    })
}

pub extern "C" fn envoy_dynamic_module_callback_http_filter_config_get_generic_secret(
    _c: ConfigEnvoyPtr,
    handle: usize,
    out: *mut EnvoyBuffer,
) -> bool {
    secret_value(handle, out)
}

pub extern "C" fn envoy_dynamic_module_callback_http_filter_get_generic_secret(
    s: FilterEnvoyPtr,
    handle: usize,
    out: *mut EnvoyBuffer,
) -> bool {
    if !with(|f| f.streams.get(&(s as usize)).is_some_and(|st| st.alive)) {
        with(|f| {
            f.violations
                .push(String::from("get_generic_secret on a destroyed stream"))
        });
        return false;
    }
    secret_value(handle, out)
}
