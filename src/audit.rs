//! The audit record: one JSON object per request the filter handles, for the log line
//! `grant_sigv4.audit {...}` and for Envoy's access log (filter state
//! `wasm.grant_sigv4_audit`). It never holds a secret, a signature or the Vault token.

use crate::json::{push_json_str, JsonWriter};

/// What is known of one request, filled in as it goes.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AuditRecord {
    /// RFC 3339 UTC time the request arrived.
    pub time: String,
    pub grant_id: Option<String>,
    /// Where the grant id came from: `header` (the grant header) or `access_key_id` (the
    /// client's own SigV4 `Authorization`, `grant_from_access_key_id`).
    pub grant_from: Option<&'static str>,
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
    /// One compact JSON object, the fields in declaration order, `null` for those unknown.
    pub fn to_json(&self) -> String {
        let mut j = JsonWriter::with_capacity(320);
        j.begin();
        j.str("time", &self.time);
        j.opt_str("grant_id", self.grant_id.as_deref());
        j.opt_str("grant_from", self.grant_from);
        j.opt_str("principal", self.principal.as_deref());
        j.opt_str("source", self.source.as_deref());
        j.opt_str("service", self.service.as_deref());
        j.opt_str("region", self.region.as_deref());
        j.opt_str("method", self.method.as_deref());
        j.opt_str("path", self.path.as_deref());
        j.opt_str("reason", self.reason.as_deref());
        j.key("context");
        match &self.context {
            None => j.out.push_str("null"),
            Some(v) => match serde_json::to_string(v) {
                Ok(s) => j.out.push_str(&s),
                Err(_) => return String::new(),
            },
        }
        j.str("outcome", &self.outcome);
        j.key("status");
        match self.status {
            None => j.out.push_str("null"),
            Some(s) => j.number(u64::from(s)),
        }
        j.opt_str("aws_request_id", self.aws_request_id.as_deref());
        j.u64("duration_ms", self.duration_ms);
        j.end();
        j.out
    }

    /// What only the filter knows, for the filter state: see [`Decision`].
    pub fn decision_json(&self) -> String {
        Decision {
            grant_id: self.grant_id.as_deref(),
            grant_from: self.grant_from,
            service: self.service.as_deref(),
            region: self.region.as_deref(),
            method: self.method.as_deref(),
            path: self.path.as_deref(),
            path_has_query_values: false,
            reason: self.reason.as_deref(),
            context: self.context.as_ref(),
            outcome: &self.outcome,
            status: self.status,
        }
        .to_json()
    }
}

/// What only the filter knows of a request, for the filter state that the access log prints
/// next to what Envoy knows itself (time, caller, AWS's status and request id, duration):
/// grant and where it came from, service, region, method, path, reason, context, outcome, and the status of a local
/// reply. Fields not known are left out.
pub struct Decision<'a> {
    pub grant_id: Option<&'a str>,
    pub grant_from: Option<&'a str>,
    pub service: Option<&'a str>,
    pub region: Option<&'a str>,
    pub method: Option<&'a str>,
    pub path: Option<&'a str>,
    /// `path` is the request's own path: drop its query values while writing it.
    pub path_has_query_values: bool,
    pub reason: Option<&'a str>,
    pub context: Option<&'a serde_json::Value>,
    pub outcome: &'a str,
    pub status: Option<u32>,
}

impl Decision<'_> {
    /// One compact JSON object, in field order.
    pub fn to_json(&self) -> String {
        let mut j = JsonWriter::with_capacity(160);
        j.begin();
        for (k, v) in [
            ("grant_id", self.grant_id),
            ("grant_from", self.grant_from),
            ("service", self.service),
            ("region", self.region),
            ("method", self.method),
        ] {
            if let Some(v) = v {
                j.str(k, v);
            }
        }
        if let Some(p) = self.path {
            j.key("path");
            if self.path_has_query_values {
                j.out.push('"');
                for_path_without_query_values(p, |piece| {
                    crate::json::push_json_str_content(&mut j.out, piece)
                });
                j.out.push('"');
            } else {
                push_json_str(&mut j.out, p);
            }
        }
        if let Some(r) = self.reason {
            j.str("reason", r);
        }
        if let Some(c) = self.context {
            match serde_json::to_string(c) {
                Ok(s) => {
                    j.key("context");
                    j.out.push_str(&s);
                }
                Err(_) => return String::new(),
            }
        }
        j.str("outcome", self.outcome);
        if let Some(s) = self.status {
            j.u64("status", u64::from(s));
        }
        j.end();
        j.out
    }
}

/// The path without query values: keys stay, so the operation is visible, values go, as
/// they may hold data.
pub fn path_without_query_values(path: &str) -> String {
    let mut out = String::with_capacity(path.len());
    for_path_without_query_values(path, |piece| out.push_str(piece));
    out
}

/// [`path_without_query_values`], handed to `push` in pieces (no copy of the path).
fn for_path_without_query_values(path: &str, mut push: impl FnMut(&str)) {
    match path.split_once('?') {
        None => push(path),
        Some((p, q)) => {
            push(p);
            push("?");
            for (i, pair) in q.split('&').enumerate() {
                if i > 0 {
                    push("&");
                }
                push(pair.split('=').next().unwrap_or(""));
                if pair.contains('=') {
                    push("=");
                }
            }
        }
    }
}

/// RFC 3339 UTC with milliseconds for milliseconds since the Unix epoch.
pub fn rfc3339_ms(unix_ms: u64) -> String {
    let amz = crate::sigv4::format_amz_date(unix_ms / 1000); // YYYYMMDDTHHMMSSZ
    if amz.len() != 16 {
        return String::new();
    }
    let part = |r: std::ops::Range<usize>| amz.get(r).unwrap_or("");
    let mut out = String::with_capacity(24);
    for (p, sep) in [
        (part(0..4), '-'),
        (part(4..6), '-'),
        (part(6..8), 'T'),
        (part(9..11), ':'),
        (part(11..13), ':'),
        (part(13..15), '.'),
    ] {
        out.push_str(p);
        out.push(sep);
    }
    let ms = unix_ms % 1000;
    for d in [ms / 100, ms / 10 % 10, ms % 10] {
        out.push(char::from(b'0' + (d as u8)));
    }
    out.push('Z');
    out
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
        assert_eq!(rfc3339_ms(1_440_938_160_007), "2015-08-30T12:36:00.007Z");
        assert_eq!(rfc3339_ms(0), "1970-01-01T00:00:00.000Z");
    }

    #[test]
    fn numbers() {
        for v in [0, 7, 10, 403, 1_000_000, u64::from(u32::MAX), u64::MAX] {
            let mut s = String::new();
            crate::json::push_u64(&mut s, v);
            assert_eq!(s, v.to_string());
        }
    }

    #[test]
    fn decision_json_has_what_only_the_filter_knows() {
        let r = AuditRecord {
            time: rfc3339_ms(0),
            grant_id: Some("g1".into()),
            source: Some("10.0.0.1".into()),
            service: Some("sts".into()),
            path: Some("/?Action=".into()),
            context: Some(serde_json::json!({"job": 7})),
            outcome: "GrantNotFound".into(),
            status: Some(403),
            ..AuditRecord::default()
        };
        let v: serde_json::Value = serde_json::from_str(&r.decision_json()).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"grant_id": "g1", "service": "sts", "path": "/?Action=",
                "context": {"job": 7}, "outcome": "GrantNotFound", "status": 403})
        );
        // Straight from a request's path: query values dropped, and escaped.
        let d = Decision {
            grant_id: Some("g\"2"),
            grant_from: Some("access_key_id"),
            service: None,
            region: None,
            method: Some("GET"),
            path: Some("/b?list-type=2&prefix=secret"),
            path_has_query_values: true,
            reason: None,
            context: None,
            outcome: "signed",
            status: None,
        };
        assert_eq!(
            d.to_json(),
            r#"{"grant_id":"g\"2","grant_from":"access_key_id","method":"GET","path":"/b?list-type=&prefix=","outcome":"signed"}"#
        );
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

    /// The hand-written JSON is byte for byte what `serde_json` writes for the same shape.
    #[test]
    fn json_matches_serde_json() {
        let nasty = "q\"b\\s/\u{0}\u{8}\t\n\u{b}\u{c}\r\u{1f}\u{7f} é 😀 \u{2028}";
        let mut all = String::new();
        for b in 0u8..=0x7f {
            all.push(char::from(b));
        }
        for s in ["", "plain", nasty, &all] {
            let mut out = String::new();
            push_json_str(&mut out, s);
            assert_eq!(out, serde_json::to_string(s).unwrap(), "{s:?}");
        }
        // Each character that needs an escape, and some that do not, at every position of
        // strings that span several 8-byte words, next to multi-byte characters.
        for special in [
            '"', '\\', '\u{0}', '\u{1f}', '\n', ' ', '\u{7f}', 'é', '😀', '/',
        ] {
            for len in 0..26 {
                for at in 0..=len {
                    let mut t: String = "x".repeat(len);
                    t.insert(at, special);
                    let t = format!("{t}ü");
                    let mut out = String::new();
                    push_json_str(&mut out, &t);
                    assert_eq!(out, serde_json::to_string(&t).unwrap(), "{t:?}");
                }
            }
        }
        let full = AuditRecord {
            time: rfc3339_ms(1),
            grant_id: Some(nasty.into()),
            grant_from: Some("header"),
            principal: Some("spiffe://x".into()),
            source: Some("10.0.0.1".into()),
            service: Some("s3".into()),
            region: Some("us-east-1".into()),
            method: Some("GET".into()),
            path: Some("/b?x=".into()),
            reason: Some("r".into()),
            context: Some(serde_json::json!({"b": [1, 2.5, null, "x"], "a": {"z": true}})),
            outcome: "signed".into(),
            status: Some(u32::MAX),
            aws_request_id: Some("id".into()),
            duration_ms: u64::MAX,
        };
        for r in [full, AuditRecord::default()] {
            assert_eq!(
                r.to_json(),
                serde_json::to_string(&Derived::from(&r)).unwrap()
            );
        }
    }

    /// The record as `#[derive(Serialize)]` wrote it before the JSON was written by hand.
    #[derive(serde::Serialize)]
    struct Derived<'a> {
        time: &'a String,
        grant_id: &'a Option<String>,
        grant_from: &'a Option<&'static str>,
        principal: &'a Option<String>,
        source: &'a Option<String>,
        service: &'a Option<String>,
        region: &'a Option<String>,
        method: &'a Option<String>,
        path: &'a Option<String>,
        reason: &'a Option<String>,
        context: &'a Option<serde_json::Value>,
        outcome: &'a String,
        status: &'a Option<u32>,
        aws_request_id: &'a Option<String>,
        duration_ms: &'a u64,
    }

    impl<'a> From<&'a AuditRecord> for Derived<'a> {
        fn from(r: &'a AuditRecord) -> Self {
            Derived {
                time: &r.time,
                grant_id: &r.grant_id,
                grant_from: &r.grant_from,
                principal: &r.principal,
                source: &r.source,
                service: &r.service,
                region: &r.region,
                method: &r.method,
                path: &r.path,
                reason: &r.reason,
                context: &r.context,
                outcome: &r.outcome,
                status: &r.status,
                aws_request_id: &r.aws_request_id,
                duration_ms: &r.duration_ms,
            }
        }
    }
}
