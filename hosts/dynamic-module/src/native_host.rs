//! The engine's [`Host`] on Envoy's dynamic-module ABI, for one event of one worker.
//!
//! A call for the request whose hook runs uses that hook's stream; a call for another request
//! of the worker looks its stream up among the live requests ([`worker::stream_of`]) and is
//! dropped when it is gone. Resuming a request and answering it locally can make Envoy run
//! other hooks of the module at once (a request answered, its stream completed and destroyed
//! within the call), so they are not done while the engine is in use: they are queued and
//! carried out by [`NativeHost::finish`], after the event, each for a request that is still
//! there.

use crate::envoy::{Attribute, HeaderMap, Stream};
use crate::filter_config::FilterConfig;
use crate::worker::{self, Callout, Phase};
use grant_sigv4_core::engine::{CalloutToken, Host, MetricKind, Property, RequestId};
use grant_sigv4_core::errors::{LocalError, LOCAL_REPLY_DETAILS};
use grant_sigv4_core::request::Edits;
use log::{debug, warn};

/// Filter state keys are written with this prefix, as the proxy-wasm filter's are
/// (`wasm.grant_sigv4_audit`), so that one access log format serves both hosts.
const FILTER_STATE_PREFIX: &str = "wasm.";

/// Run `f` with the filter state key of `name` (`FILTER_STATE_PREFIX` + `name`), built on the
/// stack when it is short (every key the engine writes is): no allocation per request.
fn with_filter_state_key<R>(name: &str, f: impl FnOnce(&str) -> R) -> R {
    const MAX: usize = 64;
    let prefix = FILTER_STATE_PREFIX.as_bytes();
    let len = prefix.len() + name.len();
    let mut buf = [0u8; MAX];
    if len <= MAX {
        if let Some((head, rest)) = buf.split_at_mut_checked(prefix.len()) {
            head.copy_from_slice(prefix);
            if let Some(tail) = rest.get_mut(..name.len()) {
                tail.copy_from_slice(name.as_bytes());
                if let Some(Ok(key)) = buf.get(..len).map(std::str::from_utf8) {
                    return f(key);
                }
            }
        }
    }
    f(&format!("{FILTER_STATE_PREFIX}{name}"))
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> Option<u64> {
    let d = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .ok()?;
    u64::try_from(d.as_millis()).ok()
}

/// A callout answer being handed to the engine: `:status` (none when the callout failed) and
/// body.
pub type CalloutAnswer = Option<(Option<u32>, Vec<u8>)>;

/// The engine's `callout_status` of `answer`.
pub fn answer_status(answer: &CalloutAnswer) -> Option<u32> {
    answer.as_ref().and_then(|a| a.0)
}

/// The engine's `callout_body` of `answer`: at most `size` bytes of its body.
pub fn answer_body(answer: &CalloutAnswer, size: usize) -> Vec<u8> {
    match answer {
        Some((_, body)) => body.iter().copied().take(size).collect(),
        None => Vec::new(),
    }
}

/// Answer `stream` locally with `e`: `{"error": CODE, "message": ...}`, and `retry-after`
/// when the code has one.
pub fn send_error(stream: Stream, e: &LocalError) {
    let body = e.body();
    stream.send_response(
        e.status(),
        &e.headers(),
        body.as_bytes(),
        LOCAL_REPLY_DETAILS,
    );
}

/// An effect carried out after the event.
enum Deferred {
    Resume(RequestId),
    Reply(RequestId, LocalError),
}

pub struct NativeHost<'a> {
    config: &'a FilterConfig,
    /// The request whose hook runs, and its stream.
    current: Option<(RequestId, Stream)>,
    /// The hook is the response-headers hook of `current`: its response headers can be read.
    pub in_response: bool,
    /// The callout answer being delivered: `:status` and body.
    pub answer: CalloutAnswer,
    /// The engine's work in this event is its own (tick, an answer from the main thread):
    /// the callouts it starts go through the main thread (`background`).
    pub background: bool,
    deferred: Vec<Deferred>,
    /// Callouts started in this event, sent when it is over.
    sends: Vec<CalloutToken>,
}

impl<'a> NativeHost<'a> {
    pub fn new(config: &'a FilterConfig, current: Option<(RequestId, Stream)>) -> Self {
        NativeHost {
            config,
            current,
            in_response: false,
            answer: None,
            background: false,
            deferred: Vec::new(),
            sends: Vec::new(),
        }
    }

    fn stream(&self, id: RequestId) -> Option<Stream> {
        match self.current {
            Some((cur, s)) if cur == id => Some(s),
            _ => worker::stream_of(id),
        }
    }

    /// The event is over (the engine is free again): resume and answer the requests it said,
    /// in order, each only if it is still there and not answered already; then send the
    /// callouts it started: on the stream of the request whose hook runs if that request now
    /// waits (for its own grant's fetch), else through the main thread (a refresh, or the
    /// revalidation of a stale key the request was just signed with, must outlive it).
    pub fn finish(self) {
        for d in self.deferred {
            match d {
                Deferred::Resume(id) => {
                    let (Some(stream), Some(phase)) = (worker::stream_of(id), worker::phase_of(id))
                    else {
                        continue;
                    };
                    if phase == Phase::Paused {
                        worker::set_phase(id, Phase::Passed);
                        stream.continue_decoding();
                    }
                }
                Deferred::Reply(id, e) => {
                    let Some(stream) = worker::stream_of(id) else {
                        continue;
                    };
                    if worker::set_phase(id, Phase::Replied) == Some(Phase::Replied) {
                        continue;
                    }
                    send_error(stream, &e);
                }
            }
        }
        for token in self.sends {
            let waiting = self
                .current
                .filter(|(id, _)| worker::phase_of(*id) == Some(Phase::Paused));
            let sent = waiting.is_some_and(|(id, stream)| worker::send_on(token, id, stream));
            if !sent && !worker::to_background(self.config, token) {
                worker::fail_callout(token);
            }
        }
    }
}

impl Host for NativeHost<'_> {
    fn now_ms(&mut self) -> Option<u64> {
        now_ms()
    }

    fn property(&mut self, id: RequestId, property: Property) -> Option<Vec<u8>> {
        let attr = match property {
            Property::SourceAddress => Attribute::SourceAddress,
            Property::PeerUriSan => Attribute::ConnectionUriSanPeerCertificate,
        };
        self.stream(id)?.attribute(attr).map(String::into_bytes)
    }

    fn edit_request_headers(&mut self, id: RequestId, edits: &Edits) -> Result<(), String> {
        let stream = self
            .stream(id)
            .ok_or_else(|| String::from("the request is gone"))?;
        for name in &edits.remove {
            if !stream.remove_request_header(name) {
                return Err(format!("header {name} could not be removed"));
            }
        }
        for (i, (name, value)) in edits.set.iter().enumerate() {
            let done = if edits.adds(i) {
                stream.add_request_header(name, value.as_bytes())
            } else {
                stream.set_request_header(name, value.as_bytes())
            };
            if !done {
                return Err(format!("header {name} could not be set"));
            }
        }
        Ok(())
    }

    fn resume_request(&mut self, id: RequestId) {
        self.deferred.push(Deferred::Resume(id));
    }

    fn send_local_reply(&mut self, id: RequestId, error: &LocalError) {
        self.deferred.push(Deferred::Reply(id, error.clone()));
    }

    fn set_filter_state(&mut self, id: RequestId, name: &str, value: &[u8]) {
        if let Some(stream) = self.stream(id) {
            with_filter_state_key(name, |key| {
                if !stream.set_filter_state(key, value) {
                    debug!("filter state {key} could not be set");
                }
            });
        }
    }

    fn response_header(&mut self, id: RequestId, name: &str) -> Option<Vec<u8>> {
        match self.current {
            Some((cur, s)) if cur == id && self.in_response => {
                s.header(HeaderMap::ResponseHeaders, name)
            }
            _ => None,
        }
    }

    fn start_callout_with_body(
        &mut self,
        cluster: &str,
        headers: &[(&str, &[u8])],
        body: &[u8],
        timeout_ms: u32,
    ) -> Result<CalloutToken, String> {
        let record = |carrier, envoy_id| Callout {
            config_id: self.config.id,
            carrier,
            envoy_id,
            cluster: cluster.to_string(),
            headers: headers
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_vec()))
                .collect(),
            body: body.to_vec(),
            timeout_ms,
        };
        // Sent when the event is over (`finish`), once it is known whether the request whose
        // hook runs waits for it; the engine's own work (tick, an answer from the main thread)
        // goes through the main thread at once.
        let carrier = match (self.current, self.background) {
            (Some((id, _)), false) => id,
            _ => 0,
        };
        let token = worker::add_callout(record(carrier, 0))
            .ok_or_else(|| String::from("the worker's state is in use"))?;
        if carrier != 0 {
            self.sends.push(token);
            return Ok(token);
        }
        if worker::to_background(self.config, token) {
            Ok(token)
        } else {
            worker::answered(token);
            Err(String::from("the main thread cannot make callouts"))
        }
    }

    fn callout_status(&mut self) -> Option<u32> {
        answer_status(&self.answer)
    }

    fn callout_body(&mut self, size: usize) -> Vec<u8> {
        answer_body(&self.answer, size)
    }

    fn get_shared(&mut self, key: &str) -> Option<(Vec<u8>, u32)> {
        self.config.get_shared(key)
    }

    fn set_shared(&mut self, key: &str, value: &[u8], cas: u32) -> Result<(), String> {
        self.config.set_shared(key, value, cas)
    }

    fn set_tick_period_ms(&mut self, _ms: u32) -> Result<(), String> {
        // Ticks come with the worker's events (see `worker`).
        Ok(())
    }

    fn define_metric(&mut self, kind: MetricKind, name: &str) -> Option<u32> {
        let id = self.config.metric_id(kind, name);
        if id.is_none() {
            warn!("metric {name} was not defined when the configuration loaded");
        }
        id
    }

    fn increment_metric(&mut self, id: u32, by: i64) {
        self.config.increment(id, by);
    }

    fn record_metric(&mut self, id: u32, value: u64) {
        self.config.record(id, value);
    }
}
