//! Panic-free proxy-wasm host calls (ABI 0.2.1). The SDK's wrappers panic on any status they
//! do not expect (for example a header write on a stream that has already ended), and a panic
//! kills the wasm VM for every request on that worker. These return `Err(status)` instead.

use std::ptr::null_mut;

/// Proxy-wasm status codes.
pub type Status = u32;
const OK: Status = 0;
const NOT_FOUND: Status = 1;

/// Header maps of the ABI.
#[derive(Clone, Copy)]
#[repr(u32)]
pub enum HeaderMap {
    Request = 0,
    Response = 2,
    CallResponse = 6,
}

/// Buffers of the ABI.
#[derive(Clone, Copy)]
#[repr(u32)]
pub enum Buffer {
    CallResponseBody = 4,
    PluginConfiguration = 7,
}

/// The ABI's imports, one per line.
#[rustfmt::skip]
pub mod ffi {
    #[link(wasm_import_module = "env")]
    extern "C" {
        pub fn proxy_get_header_map_pairs(map: u32, data: *mut *mut u8, size: *mut usize) -> u32;
        pub fn proxy_replace_header_map_value(map: u32, key: *const u8, key_size: usize, value: *const u8, value_size: usize) -> u32;
        pub fn proxy_add_header_map_value(map: u32, key: *const u8, key_size: usize, value: *const u8, value_size: usize) -> u32;
        pub fn proxy_remove_header_map_value(map: u32, key: *const u8, key_size: usize) -> u32;
        pub fn proxy_get_header_map_value(map: u32, key: *const u8, key_size: usize, value: *mut *mut u8, value_size: *mut usize) -> u32;
        pub fn proxy_set_tick_period_milliseconds(period: u32) -> u32;
        pub fn proxy_get_log_level(level: *mut u32) -> u32;
        pub fn proxy_set_property(path: *const u8, size: usize, v: *const u8, vs: usize) -> u32;
        pub fn proxy_get_property(path: *const u8, path_size: usize, value: *mut *mut u8, value_size: *mut usize) -> u32;
        pub fn proxy_define_metric(kind: u32, name: *const u8, size: usize, id: *mut u32) -> u32;
        pub fn proxy_increment_metric(metric_id: u32, offset: i64) -> u32;
        pub fn proxy_record_metric(metric_id: u32, value: u64) -> u32;
        pub fn proxy_get_buffer_bytes(buffer: u32, start: usize, max: usize, data: *mut *mut u8, size: *mut usize) -> u32;
        pub fn proxy_continue_stream(stream: u32) -> u32;
        pub fn proxy_send_local_response(status: u32, details: *const u8, details_size: usize, body: *const u8, body_size: usize, headers: *const u8, headers_size: usize, grpc_status: i32) -> u32;
        pub fn proxy_set_effective_context(context_id: u32) -> u32;
        pub fn proxy_get_shared_data(key: *const u8, key_size: usize, value: *mut *mut u8, value_size: *mut usize, cas: *mut u32) -> u32;
        pub fn proxy_set_shared_data(key: *const u8, key_size: usize, value: *const u8, value_size: usize, cas: u32) -> u32;
        pub fn proxy_get_current_time_nanoseconds(time: *mut u64) -> u32;
        pub fn proxy_log(level: u32, message: *const u8, message_size: usize) -> u32;
        pub fn proxy_http_call(upstream: *const u8, upstream_size: usize, headers: *const u8, headers_size: usize, body: *const u8, body_size: usize, trailers: *const u8, trailers_size: usize, timeout_ms: u32, token: *mut u32) -> u32;
    }
}

pub fn check(status: Status) -> Result<(), Status> {
    if status == OK {
        Ok(())
    } else {
        Err(status)
    }
}

/// Make a call that returns a host-allocated buffer through two out-pointers; returns the
/// call's status and the buffer (empty when the host returned none).
pub fn with_buffer(call: impl FnOnce(*mut *mut u8, *mut usize) -> Status) -> (Status, Vec<u8>) {
    let mut data: *mut u8 = null_mut();
    let mut size = 0usize;
    let status = call(&mut data, &mut size);
    if data.is_null() {
        return (status, Vec::new());
    }
    // SAFETY: `data`/`size` are what the host just returned: a buffer it allocated with this
    // module's `proxy_on_memory_allocate` (a `Vec<u8>` of capacity `size`, all written),
    // owned by nobody else.
    (status, unsafe { Vec::from_raw_parts(data, size, size) })
}

/// A status of found (`Some`) or not found (`None`), or an error.
pub fn found(status: Status, bytes: Vec<u8>) -> Result<Option<Vec<u8>>, Status> {
    match status {
        OK => Ok(Some(bytes)),
        NOT_FOUND => Ok(None),
        s => Err(s),
    }
}

/// A header map as the host serialized it.
pub struct RawMap(Vec<u8>);

impl RawMap {
    /// Names and values, as views of the one buffer (no copy per header).
    pub fn pairs(&self) -> Option<Vec<(&str, &[u8])>> {
        crate::pairs::deserialize_pairs(&self.0)
    }
}

/// All pairs of a header map in one call.
pub fn get_map(map: HeaderMap) -> Result<RawMap, Status> {
    // SAFETY: the host writes through out-pointers to live locals of `with_buffer`'s frame
    // and only reads the live borrowed slices it is given (so in the calls below too).
    let (status, bytes) =
        with_buffer(|d, s| unsafe { ffi::proxy_get_header_map_pairs(map as u32, d, s) });
    check(status).map(|()| RawMap(bytes))
}

/// Up to `max` bytes of a buffer (empty when there is none).
pub fn get_buffer(buffer: Buffer, max: usize) -> Result<Vec<u8>, Status> {
    // SAFETY: see `get_map`.
    let (status, bytes) =
        with_buffer(|d, s| unsafe { ffi::proxy_get_buffer_bytes(buffer as u32, 0, max, d, s) });
    found(status, bytes).map(Option::unwrap_or_default)
}

// For every call below: pointers and lengths come from live borrowed slices and strs that
// outlive the call, which the host only reads; out-pointers point to live locals.

/// The level of Envoy's `wasm` logger: 0 trace, 1 debug, 2 info, 3 warn, 4 error, 5 critical.
pub fn log_level() -> Result<u32, Status> {
    let mut level = 0u32;
    // SAFETY: see above.
    check(unsafe { ffi::proxy_get_log_level(&mut level) }).map(|()| level)
}

/// Make later host calls act on another context of this VM (a request paused elsewhere).
pub fn set_effective_context(context_id: u32) -> Result<(), Status> {
    // SAFETY: a plain value call with no pointers.
    check(unsafe { ffi::proxy_set_effective_context(context_id) })
}

/// Write a line to Envoy's `wasm` logger (levels: 0 trace .. 4 error, 5 critical).
pub fn log(level: u32, message: &str) -> Result<(), Status> {
    // SAFETY: see above.
    check(unsafe { ffi::proxy_log(level, message.as_ptr(), message.len()) })
}

/// The `log` crate's backend: Envoy's logger. Messages are formatted only at the levels
/// enabled by `log::max_level`, which the host keeps equal to Envoy's `wasm` logger level.
struct HostLogger;

impl log::Log for HostLogger {
    fn enabled(&self, metadata: &log::Metadata) -> bool {
        metadata.level() <= log::max_level()
    }

    fn log(&self, record: &log::Record) {
        if self.enabled(record.metadata()) {
            // log::Level is 1 (error) ..= 5 (trace); Envoy's levels run the other way.
            let level = 5 - record.level() as u32;
            let _ = log(level, &record.args().to_string());
        }
    }

    fn flush(&self) {}
}

static LOGGER: HostLogger = HostLogger;

/// Route the `log` macros to Envoy (once, at module start), at info until the module reads
/// Envoy's level. A panic (a bug: the crates deny them) is reported with its location only,
/// never its message, which could carry request data.
pub fn install_logger() {
    if log::set_logger(&LOGGER).is_ok() {
        log::set_max_level(log::LevelFilter::Info);
        std::panic::set_hook(Box::new(|info| {
            let at = info
                .location()
                .map(|l| format!("{}:{}", l.file(), l.line()))
                .unwrap_or_default();
            let _ = log(5, &format!("grant-sigv4 panicked at {at}"));
        }));
    }
}
