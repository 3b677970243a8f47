//! Panic-free host calls. The SDK's wrappers panic on any status they do not expect (for
//! example a header write on a stream that has already ended), and a panic kills the wasm VM
//! for every request on that worker. These return `Err(status)` instead.

/// Proxy-wasm status codes (ABI 0.2.1).
pub type Status = u32;
pub const OK: Status = 0;

/// Header maps of the ABI.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u32)]
pub enum HeaderMap {
    Request = 0,
    Response = 2,
    CallResponse = 6,
}

/// Buffers of the ABI.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u32)]
pub enum Buffer {
    CallResponseBody = 4,
    PluginConfiguration = 7,
}

mod ffi {
    #[link(wasm_import_module = "env")]
    extern "C" {
        pub fn proxy_get_header_map_pairs(map: u32, data: *mut *mut u8, size: *mut usize) -> u32;
        pub fn proxy_replace_header_map_value(
            map: u32,
            key: *const u8,
            key_size: usize,
            value: *const u8,
            value_size: usize,
        ) -> u32;
        pub fn proxy_remove_header_map_value(map: u32, key: *const u8, key_size: usize) -> u32;
        pub fn proxy_get_header_map_value(
            map: u32,
            key: *const u8,
            key_size: usize,
            value: *mut *mut u8,
            value_size: *mut usize,
        ) -> u32;
        pub fn proxy_set_tick_period_milliseconds(period: u32) -> u32;
        pub fn proxy_get_log_level(level: *mut u32) -> u32;
        pub fn proxy_set_property(
            path: *const u8,
            path_size: usize,
            value: *const u8,
            value_size: usize,
        ) -> u32;
        pub fn proxy_define_metric(
            metric_type: u32,
            name: *const u8,
            name_size: usize,
            return_id: *mut u32,
        ) -> u32;
        pub fn proxy_increment_metric(metric_id: u32, offset: i64) -> u32;
        pub fn proxy_record_metric(metric_id: u32, value: u64) -> u32;
        pub fn proxy_get_buffer_bytes(
            buffer: u32,
            start: usize,
            max: usize,
            data: *mut *mut u8,
            size: *mut usize,
        ) -> u32;
        pub fn proxy_continue_stream(stream: u32) -> u32;
        pub fn proxy_send_local_response(
            status: u32,
            details: *const u8,
            details_size: usize,
            body: *const u8,
            body_size: usize,
            headers: *const u8,
            headers_size: usize,
            grpc_status: i32,
        ) -> u32;
        pub fn proxy_set_effective_context(context_id: u32) -> u32;
        pub fn proxy_get_shared_data(
            key: *const u8,
            key_size: usize,
            value: *mut *mut u8,
            value_size: *mut usize,
            cas: *mut u32,
        ) -> u32;
        pub fn proxy_set_shared_data(
            key: *const u8,
            key_size: usize,
            value: *const u8,
            value_size: usize,
            cas: u32,
        ) -> u32;
        pub fn proxy_get_property(
            path: *const u8,
            path_size: usize,
            value: *mut *mut u8,
            value_size: *mut usize,
        ) -> u32;
        pub fn proxy_get_current_time_nanoseconds(time: *mut u64) -> u32;
        pub fn proxy_log(level: u32, message: *const u8, message_size: usize) -> u32;
        pub fn proxy_http_call(
            upstream: *const u8,
            upstream_size: usize,
            headers: *const u8,
            headers_size: usize,
            body: *const u8,
            body_size: usize,
            trailers: *const u8,
            trailers_size: usize,
            timeout_ms: u32,
            token: *mut u32,
        ) -> u32;
    }
}

/// Take ownership of a buffer the host allocated through this module's allocator.
///
/// # Safety
/// `data` is null or was allocated by `proxy_on_memory_allocate` for `size` bytes, all
/// written by the host, and is not used again by the caller.
unsafe fn take(data: *mut u8, size: usize) -> Vec<u8> {
    if data.is_null() {
        Vec::new()
    } else {
        Vec::from_raw_parts(data, size, size)
    }
}

fn check(status: Status) -> Result<(), Status> {
    if status == OK {
        Ok(())
    } else {
        Err(status)
    }
}

/// A header map as the host serialized it.
pub struct RawMap(pub Vec<u8>);

impl RawMap {
    /// Names and values, as views of the one buffer (no copy per header).
    pub fn pairs(&self) -> Option<Vec<(&str, &[u8])>> {
        crate::pairs::deserialize_pairs(&self.0)
    }
}

/// All pairs of a header map in one call.
pub fn get_map(map: HeaderMap) -> Result<RawMap, Status> {
    let mut data: *mut u8 = std::ptr::null_mut();
    let mut size = 0usize;
    let status = unsafe { ffi::proxy_get_header_map_pairs(map as u32, &mut data, &mut size) };
    let bytes = unsafe { take(data, size) };
    check(status)?;
    Ok(RawMap(bytes))
}

/// One header's value; `None` when absent.
pub fn get_value(map: HeaderMap, key: &str) -> Result<Option<Vec<u8>>, Status> {
    let mut data: *mut u8 = std::ptr::null_mut();
    let mut size = 0usize;
    let status = unsafe {
        ffi::proxy_get_header_map_value(map as u32, key.as_ptr(), key.len(), &mut data, &mut size)
    };
    let bytes = unsafe { take(data, size) };
    match status {
        OK => Ok(Some(bytes)),
        1 => Ok(None),
        s => Err(s),
    }
}

/// The level of Envoy's `wasm` logger: 0 trace, 1 debug, 2 info, 3 warn, 4 error, 5 critical.
pub fn log_level() -> Result<u32, Status> {
    let mut level = 0u32;
    unsafe { check(ffi::proxy_get_log_level(&mut level))? };
    Ok(level)
}

/// Ask for `on_tick` every `ms` milliseconds on this root context.
pub fn set_tick_period_ms(ms: u32) -> Result<(), Status> {
    unsafe { check(ffi::proxy_set_tick_period_milliseconds(ms)) }
}

/// Set (replace or add) one header.
pub fn replace(map: HeaderMap, key: &str, value: &[u8]) -> Result<(), Status> {
    unsafe {
        check(ffi::proxy_replace_header_map_value(
            map as u32,
            key.as_ptr(),
            key.len(),
            value.as_ptr(),
            value.len(),
        ))
    }
}

/// Remove every value of one header.
pub fn remove(map: HeaderMap, key: &str) -> Result<(), Status> {
    unsafe {
        check(ffi::proxy_remove_header_map_value(
            map as u32,
            key.as_ptr(),
            key.len(),
        ))
    }
}

/// Up to `max` bytes of a buffer.
pub fn get_buffer(buffer: Buffer, max: usize) -> Result<Vec<u8>, Status> {
    let mut data: *mut u8 = std::ptr::null_mut();
    let mut size = 0usize;
    let status =
        unsafe { ffi::proxy_get_buffer_bytes(buffer as u32, 0, max, &mut data, &mut size) };
    let bytes = unsafe { take(data, size) };
    match status {
        OK => Ok(bytes),
        // NotFound: no body.
        1 => Ok(Vec::new()),
        s => Err(s),
    }
}

/// Let a paused request go on.
pub fn resume_request() -> Result<(), Status> {
    unsafe { check(ffi::proxy_continue_stream(0)) }
}

/// Answer the current request locally.
pub fn send_local_response(
    status: u32,
    headers: &[(&str, &[u8])],
    body: &[u8],
) -> Result<(), Status> {
    let headers = crate::pairs::serialize_pairs(headers);
    unsafe {
        let details = b"grant_sigv4_local_reply";
        check(ffi::proxy_send_local_response(
            status,
            details.as_ptr(),
            details.len(),
            body.as_ptr(),
            body.len(),
            headers.as_ptr(),
            headers.len(),
            -1,
        ))
    }
}

/// Make later host calls act on another context of this VM (a request paused elsewhere).
pub fn set_effective_context(context_id: u32) -> Result<(), Status> {
    unsafe { check(ffi::proxy_set_effective_context(context_id)) }
}

const NOT_FOUND: Status = 1;

/// A value of Envoy's shared data (shared by every worker VM of the plugin's vm_id) and
/// its CAS token; `None` when the key is absent.
pub fn get_shared(key: &str) -> Result<(Option<Vec<u8>>, u32), Status> {
    let mut data: *mut u8 = std::ptr::null_mut();
    let mut size = 0usize;
    let mut cas = 0u32;
    let status = unsafe {
        ffi::proxy_get_shared_data(key.as_ptr(), key.len(), &mut data, &mut size, &mut cas)
    };
    let bytes = unsafe { take(data, size) };
    match status {
        OK => Ok((Some(bytes), cas)),
        NOT_FOUND => Ok((None, 0)),
        s => Err(s),
    }
}

/// Set a shared-data value; `cas` 0 writes unconditionally, otherwise only if the value
/// has not changed since it was read with that token (else `Err(CAS_MISMATCH)`).
pub fn set_shared(key: &str, value: &[u8], cas: u32) -> Result<(), Status> {
    unsafe {
        check(ffi::proxy_set_shared_data(
            key.as_ptr(),
            key.len(),
            value.as_ptr(),
            value.len(),
            cas,
        ))
    }
}

/// A property of the current stream by its path (parts separated by NUL, e.g.
/// `b"source\0address"`); `None` when absent.
pub fn get_property(path: &[u8]) -> Result<Option<Vec<u8>>, Status> {
    let mut data: *mut u8 = std::ptr::null_mut();
    let mut size = 0usize;
    let status =
        unsafe { ffi::proxy_get_property(path.as_ptr(), path.len(), &mut data, &mut size) };
    let bytes = unsafe { take(data, size) };
    match status {
        OK => Ok(Some(bytes)),
        NOT_FOUND => Ok(None),
        s => Err(s),
    }
}

/// Set a property of the current stream; `path` is one name (Envoy stores it in the filter
/// state as `wasm.<path>`, which access logs print with `%FILTER_STATE(wasm.<path>:PLAIN)%`).
pub fn set_property(path: &str, value: &[u8]) -> Result<(), Status> {
    unsafe {
        check(ffi::proxy_set_property(
            path.as_ptr(),
            path.len(),
            value.as_ptr(),
            value.len(),
        ))
    }
}

/// Kinds of metrics of the ABI.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u32)]
pub enum MetricKind {
    Counter = 0,
    Histogram = 2,
}

/// Define (or find) a metric by name.
pub fn define_metric(kind: MetricKind, name: &str) -> Result<u32, Status> {
    let mut id = 0u32;
    unsafe {
        check(ffi::proxy_define_metric(
            kind as u32,
            name.as_ptr(),
            name.len(),
            &mut id,
        ))?
    };
    Ok(id)
}

pub fn increment_metric(id: u32, by: i64) -> Result<(), Status> {
    unsafe { check(ffi::proxy_increment_metric(id, by)) }
}

pub fn record_metric(id: u32, value: u64) -> Result<(), Status> {
    unsafe { check(ffi::proxy_record_metric(id, value)) }
}

/// Milliseconds since the Unix epoch, from the host's clock.
pub fn now_ms() -> Result<u64, Status> {
    let mut t = 0u64;
    unsafe { check(ffi::proxy_get_current_time_nanoseconds(&mut t))? };
    Ok(t / 1_000_000)
}

/// Start an HTTP call to `cluster` (headers only, no body); its answer arrives in
/// `proxy_on_http_call_response` with the returned token.
pub fn dispatch_http_call(
    cluster: &str,
    headers: &[(&str, &[u8])],
    timeout_ms: u32,
) -> Result<u32, Status> {
    let serialized = crate::pairs::serialize_pairs(headers);
    let mut token = 0u32;
    let status = unsafe {
        ffi::proxy_http_call(
            cluster.as_ptr(),
            cluster.len(),
            serialized.as_ptr(),
            serialized.len(),
            std::ptr::null(),
            0,
            std::ptr::null(),
            0,
            timeout_ms,
            &mut token,
        )
    };
    check(status).map(|()| token)
}

/// Write a line to Envoy's `wasm` logger (levels: 0 trace .. 4 error, 5 critical).
pub fn log(level: u32, message: &str) -> Result<(), Status> {
    check(unsafe { ffi::proxy_log(level, message.as_ptr(), message.len()) })
}

/// The `log` crate's backend: Envoy's logger. Messages are formatted only at the levels
/// enabled by `log::max_level`, which the filter keeps equal to Envoy's `wasm` logger level.
struct HostLogger;

impl log::Log for HostLogger {
    fn enabled(&self, metadata: &log::Metadata) -> bool {
        metadata.level() <= log::max_level()
    }

    fn log(&self, record: &log::Record) {
        if !self.enabled(record.metadata()) {
            return;
        }
        let level = match record.level() {
            log::Level::Trace => 0,
            log::Level::Debug => 1,
            log::Level::Info => 2,
            log::Level::Warn => 3,
            log::Level::Error => 4,
        };
        let _ = log(level, &record.args().to_string());
    }

    fn flush(&self) {}
}

static LOGGER: HostLogger = HostLogger;

/// Route the `log` macros to Envoy (once, at module start), at info until the filter reads
/// Envoy's level. A panic (a bug: the filter denies them) is reported with its location only,
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
