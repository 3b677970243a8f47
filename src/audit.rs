//! The audit record: one JSON object per request the filter handles, for the log line
//! `grant_sigv4.audit {...}` and for Envoy's access log (filter state
//! `wasm.grant_sigv4_audit`). It never holds a secret, a signature or the Vault token.

use serde::Serialize;

/// What is known of one request, filled in as it goes.
#[derive(Clone, Debug, Default, Serialize, PartialEq, Eq)]
pub struct AuditRecord {
    /// RFC 3339 UTC time the request arrived.
    pub time: String,
    pub grant_id: Option<String>,
    /// The caller's mTLS identity (URI SAN), where Envoy knows it.
    pub principal: Option<String>,
    /// The caller's address.
    pub source: Option<String>,
    pub service: Option<String>,
    pub region: Option<String>,
    pub method: Option<String>,
    /// The path with query values removed (`/bucket?list-type=&prefix=`).
    pub path: Option<String>,
    pub reason: Option<String>,
    pub context: Option<serde_json::Value>,
    /// `signed`, or the error code of the local reply.
    pub outcome: String,
    /// HTTP status of the answer: AWS's, or the local reply's.
    pub status: Option<u32>,
    /// AWS's request id (`x-amzn-requestid` / `x-amz-request-id`).
    pub aws_request_id: Option<String>,
    /// From the request's arrival to its answer's headers.
    pub duration_ms: u64,
}

impl AuditRecord {
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }
}

/// The path without query values: keys stay, so the operation is visible, values go, as
/// they may hold data.
pub fn path_without_query_values(path: &str) -> String {
    match path.split_once('?') {
        None => path.to_string(),
        Some((p, q)) => {
            let mut out = String::with_capacity(path.len());
            out.push_str(p);
            out.push('?');
            for (i, pair) in q.split('&').enumerate() {
                if i > 0 {
                    out.push('&');
                }
                let key = pair.split('=').next().unwrap_or("");
                out.push_str(key);
                if pair.contains('=') {
                    out.push('=');
                }
            }
            out
        }
    }
}

/// RFC 3339 UTC with milliseconds for milliseconds since the Unix epoch.
pub fn rfc3339_ms(unix_ms: u64) -> String {
    let amz = crate::sigv4::format_amz_date(unix_ms / 1000); // YYYYMMDDTHHMMSSZ
    let b = amz.as_bytes();
    if b.len() != 16 {
        return String::new();
    }
    let part = |r: std::ops::Range<usize>| amz.get(r).unwrap_or("");
    format!(
        "{}-{}-{}T{}:{}:{}.{:03}Z",
        part(0..4),
        part(4..6),
        part(6..8),
        part(9..11),
        part(11..13),
        part(13..15),
        unix_ms % 1000
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_values_are_dropped() {
        assert_eq!(path_without_query_values("/a/b"), "/a/b");
        assert_eq!(
            path_without_query_values("/b?list-type=2&prefix=secret%2Fx&acl"),
            "/b?list-type=&prefix=&acl"
        );
        assert_eq!(path_without_query_values("/?"), "/?");
    }

    #[test]
    fn times() {
        assert_eq!(rfc3339_ms(1_440_938_160_123), "2015-08-30T12:36:00.123Z");
    }

    #[test]
    fn record_is_json_without_secrets_by_construction() {
        let r = AuditRecord {
            time: rfc3339_ms(0),
            grant_id: Some("g1".into()),
            outcome: "signed".into(),
            status: Some(200),
            context: Some(serde_json::json!({"job": 7})),
            ..AuditRecord::default()
        };
        let v: serde_json::Value = serde_json::from_str(&r.to_json()).unwrap();
        assert_eq!(v["grant_id"], "g1");
        assert_eq!(v["context"]["job"], 7);
        assert_eq!(v["outcome"], "signed");
    }
}
