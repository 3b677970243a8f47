//! Envoy's dynamic-module ABI: the raw declarations of the callbacks this module calls (and
//! only those), with a safe wrapper around each. Nothing else in the crate touches a raw
//! pointer of Envoy's.
//!
//! The declarations follow `source/extensions/dynamic_modules/abi/abi.h` of Envoy 1.40. Every
//! callback declared here is exported by Envoy 1.40.0 (and 1.39.3): the module is linked with
//! `BIND_NOW`, so one that the running Envoy does not export fails the load with "undefined
//! symbol", never a request.

use std::ffi::c_void;

/// The ABI version this module is built against (Envoy 1.40 expects "v0.2.0"; a mismatch is
/// only a warning in Envoy's log).
pub const ABI_VERSION: &[u8] = b"v0.2.0\0";

/// A view into memory owned by Envoy (`envoy_dynamic_module_type_envoy_buffer`).
#[repr(C)]
#[derive(Clone, Copy)]
pub struct EnvoyBuffer {
    pub ptr: *const u8,
    pub len: usize,
}

impl EnvoyBuffer {
    pub(crate) const NULL: EnvoyBuffer = EnvoyBuffer {
        ptr: std::ptr::null(),
        len: 0,
    };

    /// The bytes viewed.
    ///
    /// # Safety
    /// `ptr` must point to `len` readable bytes that stay valid and unchanged for `'a` (Envoy
    /// guarantees it until the end of the current hook, unless a setter is called).
    pub unsafe fn bytes<'a>(&self) -> &'a [u8] {
        if self.ptr.is_null() || self.len == 0 {
            &[]
        } else {
            // SAFETY: non-null, and the caller guarantees `len` readable bytes for 'a.
            unsafe { std::slice::from_raw_parts(self.ptr, self.len) }
        }
    }
}

/// Memory owned by the module, lent to Envoy for one call (`..._module_buffer`).
#[repr(C)]
#[derive(Clone, Copy)]
pub(crate) struct ModuleBuffer {
    pub(crate) ptr: *const u8,
    pub(crate) len: usize,
}

impl ModuleBuffer {
    pub(crate) fn of(b: &[u8]) -> Self {
        ModuleBuffer {
            ptr: b.as_ptr(),
            len: b.len(),
        }
    }
}

/// A header owned by Envoy (`envoy_dynamic_module_type_envoy_http_header`).
#[repr(C)]
#[derive(Clone, Copy)]
pub struct EnvoyHeader {
    pub(crate) key: EnvoyBuffer,
    pub(crate) value: EnvoyBuffer,
}

impl EnvoyHeader {
    /// Name and value.
    ///
    /// # Safety
    /// As [`EnvoyBuffer::bytes`], for both buffers.
    pub unsafe fn pair<'a>(&self) -> (&'a [u8], &'a [u8]) {
        // SAFETY: forwarded to the caller's guarantee.
        unsafe { (self.key.bytes(), self.value.bytes()) }
    }
}

/// A header owned by the module (`envoy_dynamic_module_type_module_http_header`).
#[repr(C)]
pub(crate) struct ModuleHeader {
    pub(crate) key: ModuleBuffer,
    pub(crate) value: ModuleBuffer,
}

pub(crate) type FilterEnvoyPtr = *mut c_void;
pub(crate) type ConfigEnvoyPtr = *mut c_void;

/// `envoy_dynamic_module_type_http_header_type`.
#[repr(C)]
#[derive(Clone, Copy)]
#[allow(dead_code)]
pub enum HeaderMap {
    RequestHeaders = 0,
    RequestTrailers = 1,
    ResponseHeaders = 2,
    ResponseTrailers = 3,
}

/// `envoy_dynamic_module_type_http_body_type`.
#[repr(C)]
#[derive(Clone, Copy)]
#[allow(dead_code)]
pub enum Body {
    ReceivedRequest = 0,
    BufferedRequest = 1,
    ReceivedResponse = 2,
    BufferedResponse = 3,
}

/// `envoy_dynamic_module_type_log_level`.
#[repr(C)]
#[derive(Clone, Copy)]
#[allow(dead_code)]
pub enum LogLevel {
    Trace = 0,
    Debug = 1,
    Info = 2,
    Warn = 3,
    Error = 4,
    Critical = 5,
}

/// `envoy_dynamic_module_type_attribute_id` (the two this module reads).
#[repr(C)]
#[derive(Clone, Copy)]
pub enum Attribute {
    SourceAddress = 24,
    ConnectionUriSanPeerCertificate = 37,
}

/// `envoy_dynamic_module_type_metrics_result`.
pub(crate) type MetricsResult = u32;
const METRICS_SUCCESS: MetricsResult = 0;

/// `envoy_dynamic_module_type_http_callout_init_result`.
pub type CalloutInit = u32;
pub const CALLOUT_INIT_SUCCESS: CalloutInit = 0;

extern "C" {
    fn envoy_dynamic_module_callback_log(level: LogLevel, message: ModuleBuffer);
    fn envoy_dynamic_module_callback_log_enabled(level: LogLevel) -> bool;
    fn envoy_dynamic_module_callback_http_get_headers_size(
        f: FilterEnvoyPtr,
        map: HeaderMap,
    ) -> usize;
    fn envoy_dynamic_module_callback_http_get_headers(
        f: FilterEnvoyPtr,
        map: HeaderMap,
        out: *mut EnvoyHeader,
    ) -> bool;
    fn envoy_dynamic_module_callback_http_get_header(
        f: FilterEnvoyPtr,
        map: HeaderMap,
        key: ModuleBuffer,
        out: *mut EnvoyBuffer,
        index: usize,
        count: *mut usize,
    ) -> bool;
    fn envoy_dynamic_module_callback_http_set_header(
        f: FilterEnvoyPtr,
        map: HeaderMap,
        key: ModuleBuffer,
        value: ModuleBuffer,
    ) -> bool;
    fn envoy_dynamic_module_callback_http_add_header(
        f: FilterEnvoyPtr,
        map: HeaderMap,
        key: ModuleBuffer,
        value: ModuleBuffer,
    ) -> bool;
    fn envoy_dynamic_module_callback_http_send_response(
        f: FilterEnvoyPtr,
        status: u32,
        headers: *mut ModuleHeader,
        headers_len: usize,
        body: ModuleBuffer,
        details: ModuleBuffer,
    );
    fn envoy_dynamic_module_callback_http_get_body_size(f: FilterEnvoyPtr, body: Body) -> usize;
    fn envoy_dynamic_module_callback_http_get_body_chunks_size(
        f: FilterEnvoyPtr,
        body: Body,
    ) -> usize;
    fn envoy_dynamic_module_callback_http_get_body_chunks(
        f: FilterEnvoyPtr,
        body: Body,
        out: *mut EnvoyBuffer,
    ) -> bool;
    fn envoy_dynamic_module_callback_http_received_buffered_request_body(f: FilterEnvoyPtr)
        -> bool;
    fn envoy_dynamic_module_callback_http_filter_get_attribute_string(
        f: FilterEnvoyPtr,
        id: Attribute,
        out: *mut EnvoyBuffer,
    ) -> bool;
    fn envoy_dynamic_module_callback_http_filter_http_callout(
        f: FilterEnvoyPtr,
        callout_id: *mut u64,
        cluster: ModuleBuffer,
        headers: *mut ModuleHeader,
        headers_len: usize,
        body: ModuleBuffer,
        timeout_ms: u64,
    ) -> CalloutInit;
    fn envoy_dynamic_module_callback_http_filter_continue_decoding(f: FilterEnvoyPtr);
    fn envoy_dynamic_module_callback_http_filter_config_http_callout(
        c: ConfigEnvoyPtr,
        callout_id: *mut u64,
        cluster: ModuleBuffer,
        headers: *mut ModuleHeader,
        headers_len: usize,
        body: ModuleBuffer,
        timeout_ms: u64,
    ) -> CalloutInit;
    fn envoy_dynamic_module_callback_http_filter_config_scheduler_new(
        c: ConfigEnvoyPtr,
    ) -> *mut c_void;
    fn envoy_dynamic_module_callback_http_filter_config_scheduler_commit(
        s: *mut c_void,
        event_id: u64,
    );
    fn envoy_dynamic_module_callback_http_filter_config_scheduler_delete(s: *mut c_void);
    fn envoy_dynamic_module_callback_http_filter_scheduler_new(f: FilterEnvoyPtr) -> *mut c_void;
    fn envoy_dynamic_module_callback_http_filter_scheduler_commit(s: *mut c_void, event_id: u64);
    fn envoy_dynamic_module_callback_http_filter_scheduler_delete(s: *mut c_void);
    fn envoy_dynamic_module_callback_http_set_filter_state_bytes(
        f: FilterEnvoyPtr,
        key: ModuleBuffer,
        value: ModuleBuffer,
    ) -> bool;
    fn envoy_dynamic_module_callback_http_filter_config_define_counter(
        c: ConfigEnvoyPtr,
        name: ModuleBuffer,
        label_names: *mut ModuleBuffer,
        label_names_len: usize,
        id: *mut usize,
    ) -> MetricsResult;
    fn envoy_dynamic_module_callback_http_filter_config_define_gauge(
        c: ConfigEnvoyPtr,
        name: ModuleBuffer,
        label_names: *mut ModuleBuffer,
        label_names_len: usize,
        id: *mut usize,
    ) -> MetricsResult;
    fn envoy_dynamic_module_callback_http_filter_config_set_gauge(
        c: ConfigEnvoyPtr,
        id: usize,
        label_values: *mut ModuleBuffer,
        label_values_len: usize,
        value: u64,
    ) -> MetricsResult;
    fn envoy_dynamic_module_callback_http_filter_config_define_histogram(
        c: ConfigEnvoyPtr,
        name: ModuleBuffer,
        label_names: *mut ModuleBuffer,
        label_names_len: usize,
        id: *mut usize,
    ) -> MetricsResult;
    fn envoy_dynamic_module_callback_http_filter_config_increment_counter(
        c: ConfigEnvoyPtr,
        id: usize,
        label_values: *mut ModuleBuffer,
        label_values_len: usize,
        value: u64,
    ) -> MetricsResult;
    fn envoy_dynamic_module_callback_http_filter_config_record_histogram_value(
        c: ConfigEnvoyPtr,
        id: usize,
        label_values: *mut ModuleBuffer,
        label_values_len: usize,
        value: u64,
    ) -> MetricsResult;
}

/// Kinds of metrics a filter configuration defines.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MetricType {
    Counter,
    Gauge,
    Histogram,
}

/// The Envoy side of one filter configuration (`DynamicModuleHttpFilterConfig`): valid from
/// `on_http_filter_config_new` until `on_http_filter_config_destroy`, which Envoy calls after
/// every filter made from it is destroyed. Its metrics are Envoy stats, safe to update from
/// any thread.
#[derive(Clone, Copy)]
pub struct ConfigRef(ConfigEnvoyPtr);

// SAFETY: the pointer is only used for metric updates, which Envoy's stats make thread-safe,
// while the configuration lives (see the type's comment).
unsafe impl Send for ConfigRef {}
// SAFETY: as for Send: no call through it mutates state that is not thread-safe.
unsafe impl Sync for ConfigRef {}

impl ConfigRef {
    /// # Safety
    /// `ptr` must be the `filter_config_envoy_ptr` of `on_http_filter_config_new`.
    pub unsafe fn new(ptr: *mut c_void) -> Self {
        ConfigRef(ptr)
    }

    /// The raw pointer, for the callbacks looked up at run time (`generic_secret`).
    pub(crate) fn ptr(self) -> ConfigEnvoyPtr {
        self.0
    }

    /// Define a metric (only while the configuration is created, on the main thread).
    pub fn define(self, kind: MetricType, name: &str) -> Option<usize> {
        let mut id = 0usize;
        let name = ModuleBuffer::of(name.as_bytes());
        let none = std::ptr::null_mut();
        // SAFETY: `self.0` is the configuration being created; `name` lives during the call
        // (Envoy copies it), no labels, `id` is valid for writes.
        let r = unsafe {
            match kind {
                MetricType::Counter => {
                    envoy_dynamic_module_callback_http_filter_config_define_counter(
                        self.0, name, none, 0, &mut id,
                    )
                }
                MetricType::Gauge => envoy_dynamic_module_callback_http_filter_config_define_gauge(
                    self.0, name, none, 0, &mut id,
                ),
                MetricType::Histogram => {
                    envoy_dynamic_module_callback_http_filter_config_define_histogram(
                        self.0, name, none, 0, &mut id,
                    )
                }
            }
        };
        (r == METRICS_SUCCESS).then_some(id)
    }

    /// A scheduler that runs `on_http_filter_config_scheduled` on the main thread (only
    /// while the configuration is created, on the main thread).
    pub fn scheduler(self) -> Option<ConfigScheduler> {
        // SAFETY: `self.0` is the configuration being created.
        let p = unsafe { envoy_dynamic_module_callback_http_filter_config_scheduler_new(self.0) };
        (!p.is_null()).then_some(ConfigScheduler(p))
    }

    /// Start an HTTP callout that belongs to the configuration, not to a stream (on the
    /// main thread only); its answer comes to `on_http_filter_config_http_callout_done`.
    pub fn http_callout(
        self,
        cluster: &str,
        headers: &[(&str, &[u8])],
        body: &[u8],
        timeout_ms: u64,
    ) -> Result<u64, CalloutInit> {
        let mut hs = module_headers(headers);
        let mut id = 0u64;
        // SAFETY: called on the main thread while the configuration lives; the buffers
        // live until the call returns (Envoy copies the request), `id` is valid for writes.
        let r = unsafe {
            envoy_dynamic_module_callback_http_filter_config_http_callout(
                self.0,
                &mut id,
                ModuleBuffer::of(cluster.as_bytes()),
                hs.as_mut_ptr(),
                hs.len(),
                ModuleBuffer::of(body),
                timeout_ms,
            )
        };
        if r == CALLOUT_INIT_SUCCESS {
            Ok(id)
        } else {
            Err(r)
        }
    }

    /// Add `by` to counter `id`.
    pub fn increment(self, id: usize, by: u64) {
        // SAFETY: the configuration lives while its filters run (see the type's comment); no
        // labels.
        unsafe {
            envoy_dynamic_module_callback_http_filter_config_increment_counter(
                self.0,
                id,
                std::ptr::null_mut(),
                0,
                by,
            )
        };
    }

    /// Set gauge `id` to `value`.
    pub fn set_gauge(self, id: usize, value: u64) {
        // SAFETY: as for `increment`.
        unsafe {
            envoy_dynamic_module_callback_http_filter_config_set_gauge(
                self.0,
                id,
                std::ptr::null_mut(),
                0,
                value,
            )
        };
    }

    /// Record `value` in histogram `id`.
    pub fn record(self, id: usize, value: u64) {
        // SAFETY: as for `increment`.
        unsafe {
            envoy_dynamic_module_callback_http_filter_config_record_histogram_value(
                self.0,
                id,
                std::ptr::null_mut(),
                0,
                value,
            )
        };
    }
}

/// `headers` as the ABI takes them (buffers borrowed from `headers`).
fn module_headers(headers: &[(&str, &[u8])]) -> Vec<ModuleHeader> {
    headers
        .iter()
        .map(|(k, v)| ModuleHeader {
            key: ModuleBuffer::of(k.as_bytes()),
            value: ModuleBuffer::of(v),
        })
        .collect()
}

/// Runs `on_http_filter_config_scheduled` on the main thread; deleted when dropped.
pub struct ConfigScheduler(*mut c_void);

// SAFETY: Envoy's configuration scheduler may be committed to from any thread.
unsafe impl Send for ConfigScheduler {}
// SAFETY: as for Send; commit takes no module memory.
unsafe impl Sync for ConfigScheduler {}

impl ConfigScheduler {
    pub fn commit(&self, event_id: u64) {
        // SAFETY: a live scheduler (deleted only in Drop); thread-safe per the ABI.
        unsafe {
            envoy_dynamic_module_callback_http_filter_config_scheduler_commit(self.0, event_id)
        }
    }
}

impl Drop for ConfigScheduler {
    fn drop(&mut self) {
        // SAFETY: made by config_scheduler_new, deleted once, here.
        unsafe { envoy_dynamic_module_callback_http_filter_config_scheduler_delete(self.0) }
    }
}

/// Runs `on_http_filter_scheduled` of one stream on its worker; deleted when dropped. A
/// commit after the stream is destroyed does nothing.
pub struct FilterScheduler(*mut c_void);

// SAFETY: Envoy's filter scheduler may be committed to from any thread (a no-op once the
// filter is destroyed); it is deleted on the stream's worker.
unsafe impl Send for FilterScheduler {}

impl FilterScheduler {
    pub fn commit(&self, event_id: u64) {
        // SAFETY: a live scheduler (deleted only in Drop); thread-safe per the ABI.
        unsafe { envoy_dynamic_module_callback_http_filter_scheduler_commit(self.0, event_id) }
    }
}

impl Drop for FilterScheduler {
    fn drop(&mut self) {
        // SAFETY: made by http_filter_scheduler_new, deleted once, here.
        unsafe { envoy_dynamic_module_callback_http_filter_scheduler_delete(self.0) }
    }
}

/// Write a line to Envoy's log (component `dynamic_modules`).
pub fn log(level: LogLevel, message: &str) {
    // SAFETY: the message buffer is valid for the duration of the call; Envoy copies it.
    unsafe { envoy_dynamic_module_callback_log(level, ModuleBuffer::of(message.as_bytes())) }
}

/// Whether Envoy's `dynamic_modules` logger shows `level` (to skip formatting otherwise).
pub fn log_enabled(level: LogLevel) -> bool {
    // SAFETY: takes a plain enum value, no memory.
    unsafe { envoy_dynamic_module_callback_log_enabled(level) }
}

/// The Envoy side of one HTTP stream's filter. Valid from `on_http_filter_new` until
/// `on_http_filter_destroy`; used only on the stream's worker thread.
#[derive(Clone, Copy)]
pub struct Stream(FilterEnvoyPtr);

/// Headers copied out of Envoy's map in one block (Envoy's views are only valid until the
/// next setter): two allocations, whatever the number of headers, and none when a `Headers`
/// is filled again ([`Stream::read_headers`]) with no more headers than it held before.
#[derive(Default)]
pub struct Headers {
    bytes: Vec<u8>,
    /// Name end, then value end, per header, as offsets into `bytes`.
    ends: Vec<(usize, usize)>,
    /// The views Envoy fills, kept for their capacity (empty between reads).
    raw: Vec<EnvoyHeader>,
}

/// A `Headers` kept for reuse gives its buffers back above this size (a request with very
/// large headers does not hold its memory for the worker's later requests).
const HEADERS_KEEP_BYTES: usize = 16 * 1024;

impl Headers {
    /// Names and values, in order. Names that are not UTF-8 are left out (Envoy validates
    /// them; none is expected).
    pub fn pairs(&self) -> Vec<(&str, &[u8])> {
        let mut out = Vec::with_capacity(self.ends.len());
        let mut at = 0;
        for &(name_end, value_end) in &self.ends {
            let (Some(name), Some(value)) = (
                self.bytes.get(at..name_end),
                self.bytes.get(name_end..value_end),
            ) else {
                break;
            };
            if let Ok(name) = std::str::from_utf8(name) {
                out.push((name, value));
            }
            at = value_end;
        }
        out
    }
}

impl Stream {
    /// # Safety
    /// `ptr` must be a `filter_envoy_ptr` Envoy passed to a hook of a filter that is not
    /// destroyed yet (`on_http_filter_destroy` not called), used on that filter's worker.
    pub unsafe fn new(ptr: *mut c_void) -> Self {
        Stream(ptr)
    }

    /// The raw pointer, for the callbacks looked up at run time (`generic_secret`).
    pub(crate) fn ptr(self) -> FilterEnvoyPtr {
        self.0
    }

    /// Every header of `map`, in order, copied into `out` (its buffers reused); false if
    /// Envoy gave none back (then `out` holds no header).
    pub fn read_headers(self, map: HeaderMap, out: &mut Headers) -> bool {
        out.bytes.clear();
        out.ends.clear();
        if out.bytes.capacity() > HEADERS_KEEP_BYTES {
            *out = Headers::default();
        }
        // SAFETY: `self.0` is valid (see `Stream::new`).
        let n = unsafe { envoy_dynamic_module_callback_http_get_headers_size(self.0, map) };
        let mut raw = std::mem::take(&mut out.raw);
        raw.clear();
        raw.resize(
            n,
            EnvoyHeader {
                key: EnvoyBuffer::NULL,
                value: EnvoyBuffer::NULL,
            },
        );
        let filled = n == 0 || {
            // SAFETY: `raw` has room for the `n` headers Envoy just counted.
            unsafe { envoy_dynamic_module_callback_http_get_headers(self.0, map, raw.as_mut_ptr()) }
        };
        if filled {
            let size: usize = raw.iter().map(|h| h.key.len + h.value.len).sum();
            out.bytes.reserve(size);
            out.ends.reserve(n);
            for h in &raw {
                // SAFETY: Envoy filled the views; they are valid until a setter is called, and
                // they are copied here before any is.
                let (k, v) = unsafe { h.pair() };
                out.bytes.extend_from_slice(k);
                let name_end = out.bytes.len();
                out.bytes.extend_from_slice(v);
                out.ends.push((name_end, out.bytes.len()));
            }
        }
        // No view outlives this call.
        raw.clear();
        out.raw = raw;
        filled
    }

    /// The first value of header `name` in `map`, copied.
    pub fn header(self, map: HeaderMap, name: &str) -> Option<Vec<u8>> {
        let mut out = EnvoyBuffer::NULL;
        let mut count = 0usize;
        // SAFETY: `self.0` is valid while the filter lives; `out` and `count` are valid for writes.
        let ok = unsafe {
            envoy_dynamic_module_callback_http_get_header(
                self.0,
                map,
                ModuleBuffer::of(name.as_bytes()),
                &mut out,
                0,
                &mut count,
            )
        };
        if !ok || count == 0 {
            return None;
        }
        // SAFETY: Envoy's view is valid until the end of the hook; copied at once.
        Some(unsafe { out.bytes() }.to_vec())
    }

    /// Replace every value of request header `name` with `value`.
    pub fn set_request_header(self, name: &str, value: &[u8]) -> bool {
        // SAFETY: `self.0` is valid while the filter lives; Envoy copies both buffers.
        unsafe {
            envoy_dynamic_module_callback_http_set_header(
                self.0,
                HeaderMap::RequestHeaders,
                ModuleBuffer::of(name.as_bytes()),
                ModuleBuffer::of(value),
            )
        }
    }

    /// Add a value of request header `name`, which the request does not have (Envoy appends
    /// it without looking for others of the name, as `set_request_header` does).
    pub fn add_request_header(self, name: &str, value: &[u8]) -> bool {
        // SAFETY: `self.0` is valid while the filter lives; Envoy copies both buffers.
        unsafe {
            envoy_dynamic_module_callback_http_add_header(
                self.0,
                HeaderMap::RequestHeaders,
                ModuleBuffer::of(name.as_bytes()),
                ModuleBuffer::of(value),
            )
        }
    }

    /// Remove request header `name` (a null value removes it).
    pub fn remove_request_header(self, name: &str) -> bool {
        let null = ModuleBuffer {
            ptr: std::ptr::null(),
            len: 0,
        };
        // SAFETY: `self.0` is valid while the filter lives; a null value is the documented removal.
        unsafe {
            envoy_dynamic_module_callback_http_set_header(
                self.0,
                HeaderMap::RequestHeaders,
                ModuleBuffer::of(name.as_bytes()),
                null,
            )
        }
    }

    /// Answer the stream locally (nothing is forwarded upstream).
    pub fn send_response(self, status: u32, headers: &[(&str, &[u8])], body: &[u8], details: &str) {
        let mut hs = module_headers(headers);
        // SAFETY: `self.0` is valid while the filter lives; every buffer lives until the call returns
        // and Envoy copies them.
        unsafe {
            envoy_dynamic_module_callback_http_send_response(
                self.0,
                status,
                hs.as_mut_ptr(),
                hs.len(),
                ModuleBuffer::of(body),
                ModuleBuffer::of(details.as_bytes()),
            )
        }
    }

    /// Bytes in `body`.
    pub fn body_size(self, body: Body) -> usize {
        // SAFETY: `self.0` is valid while the filter lives.
        unsafe { envoy_dynamic_module_callback_http_get_body_size(self.0, body) }
    }

    /// Feed each chunk of `body` to `f`, in order. False if Envoy has no such body.
    pub fn for_each_body_chunk(self, body: Body, mut f: impl FnMut(&[u8])) -> bool {
        // SAFETY: `self.0` is valid while the filter lives.
        let n = unsafe { envoy_dynamic_module_callback_http_get_body_chunks_size(self.0, body) };
        if n == 0 {
            return true;
        }
        let mut chunks = vec![EnvoyBuffer::NULL; n];
        // SAFETY: `chunks` has room for the `n` chunks Envoy just counted.
        let ok = unsafe {
            envoy_dynamic_module_callback_http_get_body_chunks(self.0, body, chunks.as_mut_ptr())
        };
        if !ok {
            return false;
        }
        for c in &chunks {
            // SAFETY: views into Envoy's buffer, valid until the end of the hook; nothing
            // changes the body while they are read.
            f(unsafe { c.bytes() });
        }
        true
    }

    /// Whether the request body just received is the one buffered before (a filter in front
    /// buffered it and resumed): then it must not be counted twice.
    pub fn received_is_buffered_request_body(self) -> bool {
        // SAFETY: `self.0` is valid while the filter lives.
        unsafe { envoy_dynamic_module_callback_http_received_buffered_request_body(self.0) }
    }

    /// A string attribute of the stream (peer address, peer certificate URI SAN), copied.
    pub fn attribute(self, id: Attribute) -> Option<String> {
        let mut out = EnvoyBuffer::NULL;
        // SAFETY: `self.0` is valid while the filter lives; `out` is valid for writes.
        let ok = unsafe {
            envoy_dynamic_module_callback_http_filter_get_attribute_string(self.0, id, &mut out)
        };
        if !ok {
            return None;
        }
        // SAFETY: Envoy's view is valid until the end of the hook; copied at once.
        let b = unsafe { out.bytes() };
        std::str::from_utf8(b).ok().map(str::to_string)
    }

    /// Start an HTTP callout to `cluster`; its answer comes to `on_http_filter_http_callout_done`
    /// with the id returned here.
    pub fn http_callout(
        self,
        cluster: &str,
        headers: &[(&str, &[u8])],
        body: &[u8],
        timeout_ms: u64,
    ) -> Result<u64, CalloutInit> {
        let mut hs = module_headers(headers);
        let mut id = 0u64;
        // SAFETY: `self.0` is valid while the filter lives; the buffers live until the call returns
        // (Envoy copies the request), `id` is valid for writes.
        let r = unsafe {
            envoy_dynamic_module_callback_http_filter_http_callout(
                self.0,
                &mut id,
                ModuleBuffer::of(cluster.as_bytes()),
                hs.as_mut_ptr(),
                hs.len(),
                ModuleBuffer::of(body),
                timeout_ms,
            )
        };
        if r == CALLOUT_INIT_SUCCESS {
            Ok(id)
        } else {
            Err(r)
        }
    }

    /// A scheduler that runs this stream's `on_http_filter_scheduled` on its worker.
    pub fn scheduler(self) -> Option<FilterScheduler> {
        // SAFETY: `self.0` is valid while the filter lives.
        let p = unsafe { envoy_dynamic_module_callback_http_filter_scheduler_new(self.0) };
        (!p.is_null()).then_some(FilterScheduler(p))
    }

    /// Put `value` into the stream's filter state under `key` (a string accessor, readable
    /// by the access log as `%FILTER_STATE(key:PLAIN)%`).
    pub fn set_filter_state(self, key: &str, value: &[u8]) -> bool {
        // SAFETY: `self.0` is valid while the filter lives; Envoy copies both buffers.
        unsafe {
            envoy_dynamic_module_callback_http_set_filter_state_bytes(
                self.0,
                ModuleBuffer::of(key.as_bytes()),
                ModuleBuffer::of(value),
            )
        }
    }

    /// Resume a request paused in its headers or body hook.
    pub fn continue_decoding(self) {
        // SAFETY: `self.0` is valid while the filter lives (the hooks that call this run
        // before `on_http_filter_destroy`).
        unsafe { envoy_dynamic_module_callback_http_filter_continue_decoding(self.0) }
    }
}
