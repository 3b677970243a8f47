//! The engine's [`Host`] on the proxy-wasm ABI: each call of the engine becomes host calls.
//!
//! Proxy-wasm's request calls act on the "effective context": a call for a request other
//! than the one whose callback runs switches to it first, and [`WasmHost::finish`] switches
//! back at the end of the callback.
//!
//! SAFETY, for every `unsafe` block below: the pointers and lengths passed are those of live
//! borrowed strs, slices and locals that outlive the call; the host only reads them, and
//! writes only through the out-pointers (to live locals, or `with_buffer`'s).

use crate::hostcalls::{check, ffi, found, with_buffer, HeaderMap};
use crate::hostcalls::{set_effective_context, Buffer, Status};
use crate::pairs::serialize_pairs;
use grant_sigv4_core::engine::{CalloutToken, Host, MetricKind, Property, RequestId};
use grant_sigv4_core::errors::{LocalError, LOCAL_REPLY_DETAILS};
use grant_sigv4_core::request::Edits;
use log::{debug, warn};

/// One callback's view of the host: `current` is the context the callback is for.
pub struct WasmHost {
    current: u32,
    effective: u32,
}

fn reason(s: Status) -> String {
    format!("status {s}")
}

/// One header's value of `map`; `None` when absent.
fn header(map: HeaderMap, name: &str) -> Option<Vec<u8>> {
    let (k, kl) = (name.as_ptr(), name.len());
    // SAFETY: see the module comment.
    let (status, v) =
        with_buffer(|d, s| unsafe { ffi::proxy_get_header_map_value(map as u32, k, kl, d, s) });
    found(status, v).ok().flatten()
}

impl WasmHost {
    pub fn new(current: u32) -> WasmHost {
        WasmHost {
            current,
            effective: current,
        }
    }

    /// Make request `id` the effective context; false when it is gone.
    fn switch_to(&mut self, id: RequestId) -> bool {
        if self.effective != id {
            if let Err(s) = set_effective_context(id) {
                debug!("request {id} is gone (status {s})");
                return false;
            }
            self.effective = id;
        }
        true
    }

    /// The callback ends: back to its own context.
    pub fn finish(mut self) {
        let current = self.current;
        self.switch_to(current);
    }
}

impl Host for WasmHost {
    fn now_ms(&mut self) -> Option<u64> {
        let mut t = 0u64;
        // SAFETY: see the module comment.
        check(unsafe { ffi::proxy_get_current_time_nanoseconds(&mut t) }).ok()?;
        Some(t / 1_000_000)
    }

    fn property(&mut self, id: RequestId, property: Property) -> Option<Vec<u8>> {
        let path: &[u8] = match property {
            Property::SourceAddress => b"source\0address",
            Property::PeerUriSan => b"connection\0uri_san_peer_certificate",
        };
        if !self.switch_to(id) {
            return None;
        }
        let (p, pl) = (path.as_ptr(), path.len());
        // SAFETY: see the module comment.
        let (status, v) = with_buffer(|d, s| unsafe { ffi::proxy_get_property(p, pl, d, s) });
        found(status, v).ok().flatten()
    }

    fn edit_request_headers(&mut self, id: RequestId, edits: &Edits) -> Result<(), String> {
        if !self.switch_to(id) {
            return Err(String::from("the request is gone"));
        }
        let map = HeaderMap::Request as u32;
        for name in &edits.remove {
            // SAFETY: see the module comment.
            check(unsafe { ffi::proxy_remove_header_map_value(map, name.as_ptr(), name.len()) })
                .map_err(reason)?;
        }
        for (i, (name, value)) in edits.set.iter().enumerate() {
            let (k, kl, v, vl) = (name.as_ptr(), name.len(), value.as_ptr(), value.len());
            // SAFETY: see the module comment.
            let status = unsafe {
                if edits.adds(i) {
                    ffi::proxy_add_header_map_value(map, k, kl, v, vl)
                } else {
                    ffi::proxy_replace_header_map_value(map, k, kl, v, vl)
                }
            };
            check(status).map_err(reason)?;
        }
        Ok(())
    }

    fn resume_request(&mut self, id: RequestId) {
        // SAFETY: a plain value call with no pointers.
        if self.switch_to(id) && unsafe { ffi::proxy_continue_stream(0) } != 0 {
            debug!("request {id} could not resume");
        }
    }

    fn send_local_reply(&mut self, id: RequestId, error: &LocalError) {
        if !self.switch_to(id) {
            return;
        }
        let (body, headers) = (error.body(), serialize_pairs(&error.headers()));
        let details = LOCAL_REPLY_DETAILS;
        let (d, dl, b, bl) = (details.as_ptr(), details.len(), body.as_ptr(), body.len());
        let (h, hl) = (headers.as_ptr(), headers.len());
        // SAFETY: see the module comment.
        let status =
            unsafe { ffi::proxy_send_local_response(error.status(), d, dl, b, bl, h, hl, -1) };
        if status != 0 {
            warn!(
                "could not send local reply {} (status {status})",
                error.code
            );
        }
    }

    fn set_filter_state(&mut self, id: RequestId, name: &str, value: &[u8]) {
        if self.switch_to(id) {
            let (p, pl, v, vl) = (name.as_ptr(), name.len(), value.as_ptr(), value.len());
            // SAFETY: see the module comment.
            unsafe { ffi::proxy_set_property(p, pl, v, vl) };
        }
    }

    fn response_header(&mut self, id: RequestId, name: &str) -> Option<Vec<u8>> {
        if !self.switch_to(id) {
            return None;
        }
        header(HeaderMap::Response, name)
    }

    fn start_callout_with_body(
        &mut self,
        cluster: &str,
        headers: &[(&str, &[u8])],
        body: &[u8],
        timeout_ms: u32,
    ) -> Result<CalloutToken, String> {
        let h = serialize_pairs(headers);
        let mut token = 0u32;
        let (c, cl, n) = (cluster.as_ptr(), cluster.len(), std::ptr::null());
        // An empty body is passed as null with size 0, like the trailers.
        let (b, bl) = if body.is_empty() {
            (n, 0)
        } else {
            (body.as_ptr(), body.len())
        };
        // SAFETY: see the module comment (no trailers: null with size 0).
        check(unsafe {
            ffi::proxy_http_call(
                c,
                cl,
                h.as_ptr(),
                h.len(),
                b,
                bl,
                n,
                0,
                timeout_ms,
                &mut token,
            )
        })
        .map_err(reason)?;
        Ok(token)
    }

    fn callout_status(&mut self) -> Option<u32> {
        let v = header(HeaderMap::CallResponse, ":status")?;
        std::str::from_utf8(&v).ok()?.parse::<u32>().ok()
    }

    fn callout_body(&mut self, size: usize) -> Vec<u8> {
        crate::hostcalls::get_buffer(Buffer::CallResponseBody, size).unwrap_or_default()
    }

    fn get_shared(&mut self, key: &str) -> Option<(Vec<u8>, u32)> {
        let (k, kl) = (key.as_ptr(), key.len());
        let mut cas = 0u32;
        let c: *mut u32 = &mut cas;
        // SAFETY: see the module comment.
        let (status, v) = with_buffer(|d, s| unsafe { ffi::proxy_get_shared_data(k, kl, d, s, c) });
        found(status, v).ok().flatten().map(|v| (v, cas))
    }

    fn set_shared(&mut self, key: &str, value: &[u8], cas: u32) -> Result<(), String> {
        let (k, kl, v, vl) = (key.as_ptr(), key.len(), value.as_ptr(), value.len());
        // SAFETY: see the module comment.
        check(unsafe { ffi::proxy_set_shared_data(k, kl, v, vl, cas) }).map_err(reason)
    }

    fn set_tick_period_ms(&mut self, ms: u32) -> Result<(), String> {
        // SAFETY: a plain value call with no pointers.
        check(unsafe { ffi::proxy_set_tick_period_milliseconds(ms) }).map_err(reason)
    }

    fn define_metric(&mut self, kind: MetricKind, name: &str) -> Option<u32> {
        // The ABI's metric types: 0 counter, 1 gauge, 2 histogram.
        let kind = match kind {
            MetricKind::Counter => 0,
            MetricKind::Gauge => 1,
            MetricKind::Histogram => 2,
        };
        let mut id = 0u32;
        // SAFETY: see the module comment.
        check(unsafe { ffi::proxy_define_metric(kind, name.as_ptr(), name.len(), &mut id) })
            .ok()?;
        Some(id)
    }

    fn increment_metric(&mut self, id: u32, by: i64) {
        // SAFETY: a plain value call with no pointers.
        unsafe { ffi::proxy_increment_metric(id, by) };
    }

    fn record_metric(&mut self, id: u32, value: u64) {
        // SAFETY: a plain value call with no pointers.
        unsafe { ffi::proxy_record_metric(id, value) };
    }
}
