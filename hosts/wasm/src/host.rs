//! The engine's [`Host`] on the proxy-wasm ABI: each call of the engine becomes host calls.
//!
//! Proxy-wasm's request calls act on the "effective context": a call for a request other
//! than the one whose callback runs switches to it first, and [`WasmHost::finish`] switches
//! back at the end of the callback.

use crate::hostcalls::{self, Buffer, HeaderMap, MetricKind as AbiMetric};
use grant_sigv4_core::engine::{CalloutToken, Host, Property, RequestId};
use grant_sigv4_core::errors::LocalError;
use grant_sigv4_core::metrics::MetricKind;
use grant_sigv4_core::request::Edits;
use log::{debug, warn};

/// One callback's view of the host: `current` is the context the callback is for.
pub struct WasmHost {
    current: u32,
    effective: u32,
}

impl WasmHost {
    pub fn new(current: u32) -> WasmHost {
        WasmHost {
            current,
            effective: current,
        }
    }

    /// Make request `id` the effective context.
    fn switch_to(&mut self, id: RequestId) -> bool {
        if self.effective == id {
            return true;
        }
        match hostcalls::set_effective_context(id) {
            Ok(()) => {
                self.effective = id;
                true
            }
            Err(s) => {
                debug!("request {id} is gone (status {s})");
                false
            }
        }
    }

    /// The callback ends: back to its own context.
    pub fn finish(mut self) {
        let current = self.current;
        if self.effective != current {
            let _ = self.switch_to(current);
        }
    }
}

impl Host for WasmHost {
    fn now_ms(&mut self) -> Option<u64> {
        hostcalls::now_ms().ok()
    }

    fn property(&mut self, id: RequestId, property: Property) -> Option<Vec<u8>> {
        let path: &[u8] = match property {
            Property::SourceAddress => b"source\0address",
            Property::PeerUriSan => b"connection\0uri_san_peer_certificate",
        };
        if !self.switch_to(id) {
            return None;
        }
        hostcalls::get_property(path).ok().flatten()
    }

    fn edit_request_headers(&mut self, id: RequestId, edits: &Edits) -> Result<(), String> {
        if !self.switch_to(id) {
            return Err(String::from("the request is gone"));
        }
        for name in &edits.remove {
            hostcalls::remove(HeaderMap::Request, name).map_err(|s| format!("status {s}"))?;
        }
        for (name, value) in &edits.set {
            hostcalls::replace(HeaderMap::Request, name, value.as_bytes())
                .map_err(|s| format!("status {s}"))?;
        }
        Ok(())
    }

    fn resume_request(&mut self, id: RequestId) {
        if self.switch_to(id) {
            if let Err(s) = hostcalls::resume_request() {
                debug!("request {id} could not resume (status {s})");
            }
        }
    }

    fn send_local_reply(&mut self, id: RequestId, error: &LocalError) {
        if !self.switch_to(id) {
            return;
        }
        let body = error.body();
        let headers: [(&str, &[u8]); 1] = [("content-type", b"application/json")];
        if let Err(s) = hostcalls::send_local_response(error.status(), &headers, body.as_bytes()) {
            warn!("could not send local reply {} (status {s})", error.code);
        }
    }

    fn set_filter_state(&mut self, id: RequestId, name: &str, value: &[u8]) {
        if self.switch_to(id) {
            let _ = hostcalls::set_property(name, value);
        }
    }

    fn response_header(&mut self, id: RequestId, name: &str) -> Option<Vec<u8>> {
        if !self.switch_to(id) {
            return None;
        }
        hostcalls::get_value(HeaderMap::Response, name)
            .ok()
            .flatten()
    }

    fn start_callout(
        &mut self,
        cluster: &str,
        headers: &[(&str, &[u8])],
        timeout_ms: u32,
    ) -> Result<CalloutToken, String> {
        hostcalls::dispatch_http_call(cluster, headers, timeout_ms)
            .map_err(|s| format!("status {s}"))
    }

    fn callout_status(&mut self) -> Option<u32> {
        hostcalls::get_value(HeaderMap::CallResponse, ":status")
            .ok()
            .flatten()
            .and_then(|v| std::str::from_utf8(&v).ok()?.parse::<u32>().ok())
    }

    fn callout_body(&mut self, size: usize) -> Vec<u8> {
        hostcalls::get_buffer(Buffer::CallResponseBody, size).unwrap_or_default()
    }

    fn get_shared(&mut self, key: &str) -> Option<(Vec<u8>, u32)> {
        hostcalls::get_shared(key).ok().flatten()
    }

    fn set_shared(&mut self, key: &str, value: &[u8], cas: u32) -> Result<(), String> {
        hostcalls::set_shared(key, value, cas).map_err(|s| format!("status {s}"))
    }

    fn set_tick_period_ms(&mut self, ms: u32) -> Result<(), String> {
        hostcalls::set_tick_period_ms(ms).map_err(|s| format!("status {s}"))
    }

    fn define_metric(&mut self, kind: MetricKind, name: &str) -> Option<u32> {
        let kind = match kind {
            MetricKind::Counter => AbiMetric::Counter,
            MetricKind::Histogram => AbiMetric::Histogram,
        };
        hostcalls::define_metric(kind, name).ok()
    }

    fn increment_metric(&mut self, id: u32, by: i64) {
        let _ = hostcalls::increment_metric(id, by);
    }

    fn record_metric(&mut self, id: u32, value: u64) {
        let _ = hostcalls::record_metric(id, value);
    }
}
