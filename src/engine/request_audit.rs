//! The audit record of a request under way: started with the request (for the log line) or
//! written from its plan when its outcome is decided (for the filter state alone).

use super::host::{Host, Property, RequestId};
use crate::audit::{self, AuditRecord};
use crate::config::Config;
use crate::policy::{self, Caller};
use log::info;

/// Filter state key of the audit record (`%FILTER_STATE(wasm.grant_sigv4_audit:PLAIN)%`).
pub const AUDIT_FILTER_STATE: &str = "grant_sigv4_audit";

/// The audit record of a request under way.
pub(super) struct Audit {
    pub record: AuditRecord,
    start_ms: u64,
    /// Put the record into the filter state (audit.filter_state).
    filter_state: bool,
    /// Write the record as a log line (audit.log).
    pub log: bool,
}

impl Audit {
    pub fn start(cfg: &Config, start_ms: u64) -> Audit {
        Audit {
            record: AuditRecord {
                // Only the log line has a time (the access log has Envoy's).
                time: if cfg.audit.log {
                    audit::rfc3339_ms(start_ms)
                } else {
                    String::new()
                },
                ..AuditRecord::default()
            },
            start_ms,
            filter_state: cfg.audit.filter_state,
            log: cfg.audit.log,
        }
    }

    /// The outcome is known (signed, or refused): put what only the filter knows into the
    /// filter state, once, with no work on the response path. The access log adds what Envoy
    /// knows itself (status, duration, caller address and identity, AWS request id).
    pub fn decided(&self, host: &mut impl Host, id: RequestId) {
        if self.filter_state {
            host.set_filter_state(
                id,
                AUDIT_FILTER_STATE,
                self.record.decision_json().as_bytes(),
            );
        }
    }

    /// The audit log line `grant_sigv4.audit {json}`, once the answer's headers are known
    /// (`answered`: AWS's response headers can be read; false for a local reply, whose
    /// status is already in the record, or for a request that ended without an answer).
    pub fn write_log(&mut self, host: &mut impl Host, id: RequestId, answered: bool) {
        if answered && self.record.status.is_none() {
            self.record.status = status_of(host.response_header(id, ":status"));
            self.record.aws_request_id = ["x-amzn-requestid", "x-amz-request-id"]
                .iter()
                .find_map(|h| host.response_header(id, h))
                .and_then(|v| String::from_utf8(v).ok());
        }
        if self.record.outcome.is_empty() {
            // Ended before the filter decided (the client went away).
            self.record.outcome = String::from("incomplete");
        }
        let caller = caller_of(host, id);
        self.record.principal = caller.principal;
        self.record.source = caller.source.map(|ip| ip.to_string());
        self.record.duration_ms = host
            .now_ms()
            .unwrap_or(self.start_ms)
            .saturating_sub(self.start_ms);
        info!("grant_sigv4.audit {}", self.record.to_json());
    }
}

/// A numeric `:status` value.
pub(super) fn status_of(v: Option<Vec<u8>>) -> Option<u32> {
    v.and_then(|v| std::str::from_utf8(&v).ok()?.parse::<u32>().ok())
}

/// The caller's identity and address.
pub(super) fn caller_of(host: &mut impl Host, id: RequestId) -> Caller {
    let principal = host
        .property(id, Property::PeerUriSan)
        .and_then(|v| String::from_utf8(v).ok())
        .filter(|s| !s.is_empty());
    let source = host
        .property(id, Property::SourceAddress)
        .and_then(|v| String::from_utf8(v).ok())
        .and_then(|s| policy::parse_socket_ip(&s));
    Caller { principal, source }
}
