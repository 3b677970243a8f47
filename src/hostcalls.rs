//! Panic-free host calls. The SDK's wrappers panic on any status they do not expect (for
//! example a header write on a stream that has already ended), and a panic kills the wasm VM
//! for every request on that worker. These return `Err(status)` instead.
//!
//! On targets other than wasm32 there is no host: every call returns `Err(NO_HOST)`, which
//! keeps the crate linkable for native tests of the pure core.

/// Proxy-wasm status codes (ABI 0.2.1).
pub type Status = u32;
pub const OK: Status = 0;
/// Returned off-wasm, where there is no host.
pub const NO_HOST: Status = 10;

/// Header maps of the ABI.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u32)]
pub enum Map {
    RequestHeaders = 0,
    ResponseHeaders = 2,
    CallResponseHeaders = 6,
}

/// Buffers of the ABI.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u32)]
pub enum Buffer {
    CallResponseBody = 4,
    PluginConfiguration = 7,
}

/// Serialize pairs the way the ABI wants a header map.
pub fn serialize_pairs(pairs: &[(&str, &[u8])]) -> Vec<u8> {
    let mut size = 4;
    for (k, v) in pairs {
        size += 8 + k.len() + v.len() + 2;
    }
    let mut out = Vec::with_capacity(size);
    out.extend_from_slice(&(pairs.len() as u32).to_le_bytes());
    for (k, v) in pairs {
        out.extend_from_slice(&(k.len() as u32).to_le_bytes());
        out.extend_from_slice(&(v.len() as u32).to_le_bytes());
    }
    for (k, v) in pairs {
        out.extend_from_slice(k.as_bytes());
        out.push(0);
        out.extend_from_slice(v);
        out.push(0);
    }
    out
}

/// Parse a serialized header map into views of `bytes`. Malformed input (or a name that is
/// not UTF-8, which Envoy's codecs never pass on) gives `None`, never a panic.
pub fn deserialize_pairs(bytes: &[u8]) -> Option<Vec<(&str, &[u8])>> {
    fn u32_at(b: &[u8], at: usize) -> Option<usize> {
        let s = b.get(at..at.checked_add(4)?)?;
        Some(u32::from_le_bytes([s[0], s[1], s[2], s[3]]) as usize)
    }
    if bytes.is_empty() {
        return Some(Vec::new());
    }
    let n = u32_at(bytes, 0)?;
    let mut sizes_at = 4usize;
    let mut data_at = 4usize.checked_add(n.checked_mul(8)?)?;
    if data_at > bytes.len() {
        return None;
    }
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        let klen = u32_at(bytes, sizes_at)?;
        let vlen = u32_at(bytes, sizes_at + 4)?;
        sizes_at += 8;
        let key = bytes.get(data_at..data_at.checked_add(klen)?)?;
        data_at = data_at.checked_add(klen)?.checked_add(1)?;
        let value = bytes.get(data_at..data_at.checked_add(vlen)?)?;
        data_at = data_at.checked_add(vlen)?.checked_add(1)?;
        out.push((std::str::from_utf8(key).ok()?, value));
    }
    Some(out)
}

#[cfg(target_arch = "wasm32")]
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

/// Take ownership of a buffer the host allocated through the SDK's allocator.
///
/// # Safety
/// `data` is null, or points to `size` initialized bytes of a `Vec<u8>` allocation of
/// capacity `size` made by [`crate::abi`]'s `proxy_on_memory_allocate`, which nothing else owns.
#[cfg(target_arch = "wasm32")]
unsafe fn take(data: *mut u8, size: usize) -> Vec<u8> {
    if data.is_null() {
        Vec::new()
    } else {
        Vec::from_raw_parts(data, size, size)
    }
}

#[cfg_attr(not(target_arch = "wasm32"), allow(dead_code))]
fn check(status: Status) -> Result<(), Status> {
    if status == OK {
        Ok(())
    } else {
        Err(status)
    }
}

/// A header map as the host serialized it: read its pairs with [`deserialize_pairs`].
pub struct RawMap(pub Vec<u8>);

impl RawMap {
    /// Names and values, as views of the one buffer (no copy per header).
    pub fn pairs(&self) -> Option<Vec<(&str, &[u8])>> {
        deserialize_pairs(&self.0)
    }
}

/// All pairs of a header map in one call.
pub fn get_map(map: Map) -> Result<RawMap, Status> {
    #[cfg(target_arch = "wasm32")]
    {
        let mut data: *mut u8 = std::ptr::null_mut();
        let mut size = 0usize;
        // SAFETY: the host writes through the out-pointers, which point to live locals of this
        // frame; no Rust reference aliases them.
        let status = unsafe { ffi::proxy_get_header_map_pairs(map as u32, &mut data, &mut size) };
        // SAFETY: `data`/`size` are what the host just returned: null, or a buffer it allocated
        // with this module's `proxy_on_memory_allocate` (a `Vec<u8>` of capacity `size`), owned by
        // nobody else.
        let bytes = unsafe { take(data, size) };
        check(status)?;
        Ok(RawMap(bytes))
    }
    #[cfg(not(target_arch = "wasm32"))]
    {
        let _ = map;
        Err(NO_HOST)
    }
}

/// One header's value; `None` when absent.
pub fn get_value(map: Map, key: &str) -> Result<Option<Vec<u8>>, Status> {
    #[cfg(target_arch = "wasm32")]
    {
        let mut data: *mut u8 = std::ptr::null_mut();
        let mut size = 0usize;
        // SAFETY: `key` is a live &str read by the host; the host writes through the out-pointers,
        // which point to live locals of this frame; no Rust reference aliases them.
        let status = unsafe {
            ffi::proxy_get_header_map_value(
                map as u32,
                key.as_ptr(),
                key.len(),
                &mut data,
                &mut size,
            )
        };
        // SAFETY: `data`/`size` are what the host just returned: null, or a buffer it allocated
        // with this module's `proxy_on_memory_allocate` (a `Vec<u8>` of capacity `size`), owned by
        // nobody else.
        let bytes = unsafe { take(data, size) };
        match status {
            OK => Ok(Some(bytes)),
            1 => Ok(None),
            s => Err(s),
        }
    }
    #[cfg(not(target_arch = "wasm32"))]
    {
        let _ = (map, key);
        Err(NO_HOST)
    }
}

/// The level of Envoy's `wasm` logger: 0 trace, 1 debug, 2 info, 3 warn, 4 error, 5 critical.
pub fn log_level() -> Result<u32, Status> {
    #[cfg(target_arch = "wasm32")]
    {
        let mut level = 0u32;
        // SAFETY: `level` is a live local; the host writes one u32 into it.
        unsafe { check(ffi::proxy_get_log_level(&mut level))? };
        Ok(level)
    }
    #[cfg(not(target_arch = "wasm32"))]
    Err(NO_HOST)
}

/// Ask for `on_tick` every `ms` milliseconds on this root context.
pub fn set_tick_period_ms(ms: u32) -> Result<(), Status> {
    #[cfg(target_arch = "wasm32")]
    // SAFETY: a plain value call with no pointers.
    unsafe {
        check(ffi::proxy_set_tick_period_milliseconds(ms))
    }
    #[cfg(not(target_arch = "wasm32"))]
    {
        let _ = ms;
        Err(NO_HOST)
    }
}

/// Set (replace or add) one header.
pub fn replace(map: Map, key: &str, value: &[u8]) -> Result<(), Status> {
    #[cfg(target_arch = "wasm32")]
    // SAFETY: pointers and lengths come from live borrowed slices/strs that outlive the call; the
    // host only reads them.
    unsafe {
        check(ffi::proxy_replace_header_map_value(
            map as u32,
            key.as_ptr(),
            key.len(),
            value.as_ptr(),
            value.len(),
        ))
    }
    #[cfg(not(target_arch = "wasm32"))]
    {
        let _ = (map, key, value);
        Err(NO_HOST)
    }
}

/// Remove every value of one header.
pub fn remove(map: Map, key: &str) -> Result<(), Status> {
    #[cfg(target_arch = "wasm32")]
    // SAFETY: pointers and lengths come from live borrowed slices/strs that outlive the call; the
    // host only reads them.
    unsafe {
        check(ffi::proxy_remove_header_map_value(
            map as u32,
            key.as_ptr(),
            key.len(),
        ))
    }
    #[cfg(not(target_arch = "wasm32"))]
    {
        let _ = (map, key);
        Err(NO_HOST)
    }
}

/// Up to `max` bytes of a buffer.
pub fn get_buffer(buffer: Buffer, max: usize) -> Result<Vec<u8>, Status> {
    #[cfg(target_arch = "wasm32")]
    {
        let mut data: *mut u8 = std::ptr::null_mut();
        let mut size = 0usize;
        let status =
            // SAFETY: the host writes through the out-pointers, which point to live locals of this
            // frame; no Rust reference aliases them.
            unsafe { ffi::proxy_get_buffer_bytes(buffer as u32, 0, max, &mut data, &mut size) };
        // SAFETY: `data`/`size` are what the host just returned: null, or a buffer it allocated
        // with this module's `proxy_on_memory_allocate` (a `Vec<u8>` of capacity `size`), owned by
        // nobody else.
        let bytes = unsafe { take(data, size) };
        match status {
            OK => Ok(bytes),
            // NotFound: no body.
            1 => Ok(Vec::new()),
            s => Err(s),
        }
    }
    #[cfg(not(target_arch = "wasm32"))]
    {
        let _ = (buffer, max);
        Err(NO_HOST)
    }
}

/// Let a paused request go on.
pub fn resume_request() -> Result<(), Status> {
    #[cfg(target_arch = "wasm32")]
    // SAFETY: a plain value call with no pointers.
    unsafe {
        check(ffi::proxy_continue_stream(0))
    }
    #[cfg(not(target_arch = "wasm32"))]
    Err(NO_HOST)
}

/// Answer the current request locally.
pub fn send_local_response(
    status: u32,
    headers: &[(&str, &[u8])],
    body: &[u8],
) -> Result<(), Status> {
    let headers = serialize_pairs(headers);
    #[cfg(target_arch = "wasm32")]
    // SAFETY: pointers and lengths come from live borrowed slices/strs that outlive the call; the
    // host only reads them.
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
    #[cfg(not(target_arch = "wasm32"))]
    {
        let _ = (status, headers, body);
        Err(NO_HOST)
    }
}

/// Make later host calls act on another context of this VM (a request paused elsewhere).
pub fn set_effective_context(context_id: u32) -> Result<(), Status> {
    #[cfg(target_arch = "wasm32")]
    // SAFETY: a plain value call with no pointers.
    unsafe {
        check(ffi::proxy_set_effective_context(context_id))
    }
    #[cfg(not(target_arch = "wasm32"))]
    {
        let _ = context_id;
        Err(NO_HOST)
    }
}

/// Status of a compare-and-swap that lost.
pub const CAS_MISMATCH: Status = 8;
const NOT_FOUND: Status = 1;

/// A value of Envoy's shared data (shared by every worker VM of the plugin's vm_id) and
/// its CAS token; `None` when the key is absent.
pub fn get_shared(key: &str) -> Result<(Option<Vec<u8>>, u32), Status> {
    #[cfg(target_arch = "wasm32")]
    {
        let mut data: *mut u8 = std::ptr::null_mut();
        let mut size = 0usize;
        let mut cas = 0u32;
        // SAFETY: `key` is a live &str read by the host; the host writes through the out-pointers,
        // which point to live locals of this frame; no Rust reference aliases them.
        let status = unsafe {
            ffi::proxy_get_shared_data(key.as_ptr(), key.len(), &mut data, &mut size, &mut cas)
        };
        // SAFETY: `data`/`size` are what the host just returned: null, or a buffer it allocated
        // with this module's `proxy_on_memory_allocate` (a `Vec<u8>` of capacity `size`), owned by
        // nobody else.
        let bytes = unsafe { take(data, size) };
        match status {
            OK => Ok((Some(bytes), cas)),
            NOT_FOUND => Ok((None, 0)),
            s => Err(s),
        }
    }
    #[cfg(not(target_arch = "wasm32"))]
    {
        let _ = (key, NOT_FOUND);
        Err(NO_HOST)
    }
}

/// Set a shared-data value; `cas` 0 writes unconditionally, otherwise only if the value
/// has not changed since it was read with that token (else `Err(CAS_MISMATCH)`).
pub fn set_shared(key: &str, value: &[u8], cas: u32) -> Result<(), Status> {
    #[cfg(target_arch = "wasm32")]
    // SAFETY: pointers and lengths come from live borrowed slices/strs that outlive the call; the
    // host only reads them.
    unsafe {
        check(ffi::proxy_set_shared_data(
            key.as_ptr(),
            key.len(),
            value.as_ptr(),
            value.len(),
            cas,
        ))
    }
    #[cfg(not(target_arch = "wasm32"))]
    {
        let _ = (key, value, cas);
        Err(NO_HOST)
    }
}

/// A property of the current stream (`["source", "address"]`, ...); `None` when absent.
pub fn get_property(path: &[&str]) -> Result<Option<Vec<u8>>, Status> {
    let mut p = Vec::with_capacity(path.iter().map(|s| s.len() + 1).sum());
    for (i, part) in path.iter().enumerate() {
        if i > 0 {
            p.push(0);
        }
        p.extend_from_slice(part.as_bytes());
    }
    #[cfg(target_arch = "wasm32")]
    {
        let mut data: *mut u8 = std::ptr::null_mut();
        let mut size = 0usize;
        // SAFETY: `p` is a live buffer read by the host; the host writes through the out-pointers,
        // which point to live locals of this frame; no Rust reference aliases them.
        let status = unsafe { ffi::proxy_get_property(p.as_ptr(), p.len(), &mut data, &mut size) };
        // SAFETY: `data`/`size` are what the host just returned: null, or a buffer it allocated
        // with this module's `proxy_on_memory_allocate` (a `Vec<u8>` of capacity `size`), owned by
        // nobody else.
        let bytes = unsafe { take(data, size) };
        match status {
            OK => Ok(Some(bytes)),
            NOT_FOUND => Ok(None),
            s => Err(s),
        }
    }
    #[cfg(not(target_arch = "wasm32"))]
    {
        let _ = p;
        Err(NO_HOST)
    }
}

/// Set a property of the current stream; `path` is one name (Envoy stores it in the filter
/// state as `wasm.<path>`, which access logs print with `%FILTER_STATE(wasm.<path>:PLAIN)%`).
pub fn set_property(path: &str, value: &[u8]) -> Result<(), Status> {
    #[cfg(target_arch = "wasm32")]
    // SAFETY: pointers and lengths come from live borrowed slices/strs that outlive the call; the
    // host only reads them.
    unsafe {
        check(ffi::proxy_set_property(
            path.as_ptr(),
            path.len(),
            value.as_ptr(),
            value.len(),
        ))
    }
    #[cfg(not(target_arch = "wasm32"))]
    {
        let _ = (path, value);
        Err(NO_HOST)
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
    #[cfg(target_arch = "wasm32")]
    {
        let mut id = 0u32;
        // SAFETY: `name` is a live &str read by the host; the host writes the id into a live local.
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
    #[cfg(not(target_arch = "wasm32"))]
    {
        let _ = (kind, name);
        Err(NO_HOST)
    }
}

pub fn increment_metric(id: u32, by: i64) -> Result<(), Status> {
    #[cfg(target_arch = "wasm32")]
    // SAFETY: a plain value call with no pointers.
    unsafe {
        check(ffi::proxy_increment_metric(id, by))
    }
    #[cfg(not(target_arch = "wasm32"))]
    {
        let _ = (id, by);
        Err(NO_HOST)
    }
}

pub fn record_metric(id: u32, value: u64) -> Result<(), Status> {
    #[cfg(target_arch = "wasm32")]
    // SAFETY: a plain value call with no pointers.
    unsafe {
        check(ffi::proxy_record_metric(id, value))
    }
    #[cfg(not(target_arch = "wasm32"))]
    {
        let _ = (id, value);
        Err(NO_HOST)
    }
}

/// Milliseconds since the Unix epoch, from the host's clock.
pub fn now_ms() -> Result<u64, Status> {
    #[cfg(target_arch = "wasm32")]
    {
        let mut t = 0u64;
        // SAFETY: `t` is a live local; the host writes one u64 into it.
        unsafe { check(ffi::proxy_get_current_time_nanoseconds(&mut t))? };
        Ok(t / 1_000_000)
    }
    #[cfg(not(target_arch = "wasm32"))]
    {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .map_err(|_| NO_HOST)
    }
}

/// Seconds since the Unix epoch, from the host's clock.
pub fn now_secs() -> Result<u64, Status> {
    #[cfg(target_arch = "wasm32")]
    {
        let mut t = 0u64;
        // SAFETY: `t` is a live local; the host writes one u64 into it.
        unsafe { check(ffi::proxy_get_current_time_nanoseconds(&mut t))? };
        Ok(t / 1_000_000_000)
    }
    #[cfg(not(target_arch = "wasm32"))]
    {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .map_err(|_| NO_HOST)
    }
}

/// Start an HTTP call to `cluster` (headers only, no body); its answer arrives in
/// `proxy_on_http_call_response` with the returned token.
pub fn dispatch_http_call(
    cluster: &str,
    headers: &[(&str, &[u8])],
    timeout_ms: u32,
) -> Result<u32, Status> {
    #[cfg(target_arch = "wasm32")]
    {
        let serialized = serialize_pairs(headers);
        let mut token = 0u32;
        // SAFETY: pointers and lengths come from live borrowed slices/strs that outlive the call;
        // the host only reads them. The token out-pointer is a live local.
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
    #[cfg(not(target_arch = "wasm32"))]
    {
        let _ = (cluster, headers, timeout_ms);
        Err(NO_HOST)
    }
}

/// Write a line to Envoy's `wasm` logger (levels: 0 trace .. 4 error, 5 critical).
pub fn log(level: u32, message: &str) -> Result<(), Status> {
    #[cfg(target_arch = "wasm32")]
    {
        // SAFETY: `message` is a live &str the host only reads during the call.
        check(unsafe { ffi::proxy_log(level, message.as_ptr(), message.len()) })
    }
    #[cfg(not(target_arch = "wasm32"))]
    {
        let _ = (level, message);
        Err(NO_HOST)
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pairs_round_trip() {
        let pairs: [(&str, &[u8]); 3] = [(":method", b"GET"), ("x-a", b""), ("x-b", b"\xff\x00v")];
        let bytes = serialize_pairs(&pairs);
        let back = deserialize_pairs(&bytes).unwrap();
        assert_eq!(back.len(), 3);
        assert_eq!(back[0], (":method", &b"GET"[..]));
        assert_eq!(back[2].1, b"\xff\x00v");
        // A name that is not UTF-8 is refused, not replaced.
        assert_eq!(
            deserialize_pairs(
                &serialize_pairs(&[("a", b"v")])
                    .iter()
                    .map(|&b| if b == b'a' { 0xff } else { b })
                    .collect::<Vec<_>>()
            ),
            None
        );
    }

    #[test]
    fn malformed_maps_do_not_panic() {
        assert_eq!(deserialize_pairs(&[]), Some(vec![]));
        assert_eq!(deserialize_pairs(&[1, 0, 0]), None);
        assert_eq!(deserialize_pairs(&[255, 255, 255, 255]), None);
        let mut b = serialize_pairs(&[("k", b"v")]);
        b.truncate(b.len() - 2);
        assert_eq!(deserialize_pairs(&b), None);
    }
}
