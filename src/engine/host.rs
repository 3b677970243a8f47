//! What the engine needs from a host (the proxy-wasm ABI, Envoy's dynamic-module ABI, or the
//! fake host of the tests): the effects it orders and the few answers it needs on the spot.
//!
//! Request-scoped calls name the request they act on. A host whose calls act on "the current
//! stream" (proxy-wasm) switches to that request first when it is not the one whose event is
//! being handled, and back at the end of the event.

use crate::errors::LocalError;
use crate::request::Edits;
use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

/// A request, as the host numbers it (proxy-wasm: its context id).
pub type RequestId = u32;
/// A vault callout under way, as the host numbers it.
pub type CalloutToken = u32;

/// What the request whose headers were handed in does next.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    /// Go on to the next filter (signed, or passed on by the precheck instance).
    Continue,
    /// Stop until the engine resumes the request or has answered it locally.
    Pause,
    /// Stop and buffer the whole body, then hand in its SHA-256 (`Engine::on_request_body`),
    /// or tell that it passed `max_body_bytes` (`Engine::on_request_body_too_large`). Only
    /// for an engine whose host hashes bodies (`Engine::hash_bodies_in_host`).
    BufferBody,
}

/// Kinds of metrics.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MetricKind {
    Counter,
    /// A value set by [`Host::record_metric`].
    Gauge,
    Histogram,
}

/// A stream property the engine reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Property {
    /// The downstream peer's `ip:port`.
    SourceAddress,
    /// The URI SAN of the downstream peer's certificate (mTLS).
    PeerUriSan,
}

/// The host, as the engine sees it. No call may panic; failures are reported as `Err`
/// (with a short reason for the log) or `None`.
pub trait Host {
    /// Milliseconds since the Unix epoch; `None` when the clock cannot be read.
    fn now_ms(&mut self) -> Option<u64>;

    /// A property of request `id`'s stream.
    fn property(&mut self, id: RequestId, property: Property) -> Option<Vec<u8>>;
    /// Remove `edits.remove`, then set each of `edits.set`, on request `id`'s headers.
    fn edit_request_headers(&mut self, id: RequestId, edits: &Edits) -> Result<(), String>;
    /// Let a paused request go on.
    fn resume_request(&mut self, id: RequestId);
    /// Answer request `id` locally with `{"error": CODE, "message": ...}`.
    fn send_local_reply(&mut self, id: RequestId, error: &LocalError);
    /// Put `value` into request `id`'s filter state under `name`.
    fn set_filter_state(&mut self, id: RequestId, name: &str, value: &[u8]);
    /// A header of the answer to request `id` (during its response-headers event).
    fn response_header(&mut self, id: RequestId, name: &str) -> Option<Vec<u8>>;

    /// Start a callout to `cluster` with `body` (`:method` in `headers`: a GET of a grant
    /// record, a POST of a vault login or token renewal); its answer comes back as a callout
    /// answer event with the returned token.
    fn start_callout_with_body(
        &mut self,
        cluster: &str,
        headers: &[(&str, &[u8])],
        body: &[u8],
        timeout_ms: u32,
    ) -> Result<CalloutToken, String>;
    /// Start a callout with no body.
    fn start_callout(
        &mut self,
        cluster: &str,
        headers: &[(&str, &[u8])],
        timeout_ms: u32,
    ) -> Result<CalloutToken, String> {
        self.start_callout_with_body(cluster, headers, &[], timeout_ms)
    }
    /// `:status` of the callout answer being delivered.
    fn callout_status(&mut self) -> Option<u32>;
    /// The first `size` bytes of the body of the callout answer being delivered.
    fn callout_body(&mut self, size: usize) -> Vec<u8>;

    /// A value of the data shared by all workers of the process, and its compare-and-set
    /// token; `None` when absent or unreadable.
    fn get_shared(&mut self, key: &str) -> Option<(Vec<u8>, u32)>;
    /// Set a shared value; `cas` 0 writes unconditionally, otherwise only if the value has
    /// not changed since it was read with that token.
    fn set_shared(&mut self, key: &str, value: &[u8], cas: u32) -> Result<(), String>;

    /// Ask for a tick event every `ms` milliseconds.
    fn set_tick_period_ms(&mut self, ms: u32) -> Result<(), String>;
    /// Define (or find) a metric by name.
    fn define_metric(&mut self, kind: MetricKind, name: &str) -> Option<u32>;
    fn increment_metric(&mut self, id: u32, by: i64);
    /// Record a histogram value, or set a gauge.
    fn record_metric(&mut self, id: u32, value: u64);
}

/// Maps keyed by request id or callout token. The ids are the host's own sequential
/// numbers, not request data, so a plain multiplicative hash does (SipHash, the default,
/// costs more than the rest of a lookup in a wasm VM).
pub type IdMap<V> = HashMap<u32, V, BuildHasherDefault<IdHasher>>;

#[derive(Default)]
pub struct IdHasher(u64);

impl Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
        }
    }

    fn write_u32(&mut self, n: u32) {
        self.0 = u64::from(n).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn id_maps_hold_many_sequential_ids() {
        let mut m: IdMap<u32> = IdMap::default();
        for id in 1..20_000u32 {
            m.insert(id, id * 2);
        }
        assert!((1..20_000u32).all(|id| m.get(&id) == Some(&(id * 2))));
        assert_eq!(m.remove(&7), Some(14));
        assert_eq!(m.get(&7), None);
        assert_eq!(m.len(), 19_998);
    }
}
