//! Local error replies: every refusal is answered by the filter itself with a short JSON body
//! `{"error": CODE, "message": ...}` and nothing is forwarded upstream.
//!
//! [`ErrorCode`] is the one place that gives each code its HTTP status and its wire name.
//! Messages name the cause and the fix, never a secret: no access key secret, session token,
//! Vault token or signature is ever put into a message.

/// The stable, machine-readable code of a local reply, with its HTTP status.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ErrorCode {
    /// 401: the request has no grant header.
    GrantMissing,
    /// 400: the grant id is not well formed.
    GrantInvalid,
    /// 400: more than one grant header.
    GrantAmbiguous,
    /// 403: no credential is stored for the grant id.
    GrantNotFound,
    /// 403: the grant's policy refuses the request.
    GrantPolicyDenied,
    /// 502: the stored grant record cannot be used.
    GrantRecordInvalid,
    /// 503: the credential store could not be read (retryable).
    VaultUnavailable,
    /// 503: too many grants not in any cache asked for at once; nothing was fetched
    /// (retryable, with `retry-after`).
    VaultBusy,
    /// 403: the host is not an AWS endpoint that the filter signs.
    NotAwsEndpoint,
    /// 400: an AWS endpoint that is not signed with SigV4.
    NotSigV4,
    /// 400: the signing region is not in the host name.
    RegionUnknown,
    /// 400: a body whose SHA-256 is unknown.
    PayloadHashRequired,
    /// 400: a per-chunk signed upload, which a proxy cannot re-sign.
    ChunkSignedPayloadUnsupported,
    /// 400: a malformed or repeated `x-amz-content-sha256`.
    BadContentSha256,
    /// 413: a body over `max_body_bytes`.
    BodyTooLarge,
    /// 400: the query already carries SigV4 parameters.
    QuerySignatureNotAllowed,
    /// 400: a request that cannot be signed (method, path, authority, content-length).
    BadRequest,
    /// 400: a header value that is not valid UTF-8 or cannot be signed.
    BadHeader,
    /// 400: an `x-grant-service` / `x-grant-region` value that is not a scope part.
    BadOverride,
    /// 400: override headers sent while `request_overrides` is off.
    OverrideNotAllowed,
    /// 400: a malformed `x-grant-context`.
    BadAuditContext,
    /// 400: a malformed `x-grant-reason`.
    BadAuditReason,
    /// 400: with `grant_from_access_key_id`, an `Authorization` that is not a SigV4
    /// `Credential=<grant id>/<date>/<region>/<service>/aws4_request`.
    BadAuthorization,
    /// 400: with `grant_from_access_key_id`, the client's credential scope names another
    /// service or region than the host.
    CredentialScopeMismatch,
    /// 500: the filter could not sign (no clock, no configuration, a failed header write).
    InternalError,
}

impl ErrorCode {
    /// Every code, in declaration order.
    pub const ALL: [ErrorCode; 25] = [
        ErrorCode::GrantMissing,
        ErrorCode::GrantInvalid,
        ErrorCode::GrantAmbiguous,
        ErrorCode::GrantNotFound,
        ErrorCode::GrantPolicyDenied,
        ErrorCode::GrantRecordInvalid,
        ErrorCode::VaultUnavailable,
        ErrorCode::VaultBusy,
        ErrorCode::NotAwsEndpoint,
        ErrorCode::NotSigV4,
        ErrorCode::RegionUnknown,
        ErrorCode::PayloadHashRequired,
        ErrorCode::ChunkSignedPayloadUnsupported,
        ErrorCode::BadContentSha256,
        ErrorCode::BodyTooLarge,
        ErrorCode::QuerySignatureNotAllowed,
        ErrorCode::BadRequest,
        ErrorCode::BadHeader,
        ErrorCode::BadOverride,
        ErrorCode::OverrideNotAllowed,
        ErrorCode::BadAuditContext,
        ErrorCode::BadAuditReason,
        ErrorCode::BadAuthorization,
        ErrorCode::CredentialScopeMismatch,
        ErrorCode::InternalError,
    ];

    /// The HTTP status of a local reply with this code.
    pub const fn status(self) -> u32 {
        match self {
            ErrorCode::GrantMissing => 401,
            ErrorCode::GrantNotFound | ErrorCode::GrantPolicyDenied | ErrorCode::NotAwsEndpoint => {
                403
            }
            ErrorCode::BodyTooLarge => 413,
            ErrorCode::InternalError => 500,
            ErrorCode::GrantRecordInvalid => 502,
            ErrorCode::VaultUnavailable | ErrorCode::VaultBusy => 503,
            ErrorCode::GrantInvalid
            | ErrorCode::GrantAmbiguous
            | ErrorCode::NotSigV4
            | ErrorCode::RegionUnknown
            | ErrorCode::PayloadHashRequired
            | ErrorCode::ChunkSignedPayloadUnsupported
            | ErrorCode::BadContentSha256
            | ErrorCode::QuerySignatureNotAllowed
            | ErrorCode::BadRequest
            | ErrorCode::BadHeader
            | ErrorCode::BadOverride
            | ErrorCode::OverrideNotAllowed
            | ErrorCode::BadAuditContext
            | ErrorCode::BadAuditReason
            | ErrorCode::BadAuthorization
            | ErrorCode::CredentialScopeMismatch => 400,
        }
    }

    /// The name on the wire (`"error"` of the reply body, audit outcome, metric suffix).
    pub const fn as_str(self) -> &'static str {
        match self {
            ErrorCode::GrantMissing => "GrantMissing",
            ErrorCode::GrantInvalid => "GrantInvalid",
            ErrorCode::GrantAmbiguous => "GrantAmbiguous",
            ErrorCode::GrantNotFound => "GrantNotFound",
            ErrorCode::GrantPolicyDenied => "GrantPolicyDenied",
            ErrorCode::GrantRecordInvalid => "GrantRecordInvalid",
            ErrorCode::VaultUnavailable => "VaultUnavailable",
            ErrorCode::VaultBusy => "VaultBusy",
            ErrorCode::NotAwsEndpoint => "NotAwsEndpoint",
            ErrorCode::NotSigV4 => "NotSigV4",
            ErrorCode::RegionUnknown => "RegionUnknown",
            ErrorCode::PayloadHashRequired => "PayloadHashRequired",
            ErrorCode::ChunkSignedPayloadUnsupported => "ChunkSignedPayloadUnsupported",
            ErrorCode::BadContentSha256 => "BadContentSha256",
            ErrorCode::BodyTooLarge => "BodyTooLarge",
            ErrorCode::QuerySignatureNotAllowed => "QuerySignatureNotAllowed",
            ErrorCode::BadRequest => "BadRequest",
            ErrorCode::BadHeader => "BadHeader",
            ErrorCode::BadOverride => "BadOverride",
            ErrorCode::OverrideNotAllowed => "OverrideNotAllowed",
            ErrorCode::BadAuditContext => "BadAuditContext",
            ErrorCode::BadAuditReason => "BadAuditReason",
            ErrorCode::BadAuthorization => "BadAuthorization",
            ErrorCode::CredentialScopeMismatch => "CredentialScopeMismatch",
            ErrorCode::InternalError => "InternalError",
        }
    }

    /// Retryable codes: the same request may succeed later.
    pub const fn retryable(self) -> bool {
        matches!(self, ErrorCode::VaultUnavailable | ErrorCode::VaultBusy)
    }

    /// The `retry-after` header (seconds) of a local reply with this code, if it has one.
    pub const fn retry_after(self) -> Option<&'static str> {
        match self {
            ErrorCode::VaultBusy => Some("1"),
            _ => None,
        }
    }
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The response code details Envoy records for the filter's local replies
/// (`%RESPONSE_CODE_DETAILS%`).
pub const LOCAL_REPLY_DETAILS: &str = "grant_sigv4_local_reply";

/// A refusal answered locally.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LocalError {
    /// Stable machine-readable code, e.g. [`ErrorCode::GrantMissing`].
    pub code: ErrorCode,
    /// One sentence for a human: what is wrong and how to fix it.
    pub message: String,
}

impl LocalError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        LocalError {
            code,
            message: message.into(),
        }
    }

    /// HTTP status of the local reply.
    pub fn status(&self) -> u32 {
        self.code.status()
    }

    /// The headers of the local reply: JSON, and `retry-after` when the code has one.
    pub fn headers(&self) -> Vec<(&'static str, &'static [u8])> {
        let mut h: Vec<(&'static str, &'static [u8])> = vec![("content-type", b"application/json")];
        if let Some(s) = self.code.retry_after() {
            h.push(("retry-after", s.as_bytes()));
        }
        h
    }

    /// The JSON body of the local reply.
    pub fn body(&self) -> String {
        let mut j = crate::json::JsonWriter::default();
        j.begin();
        j.str("error", self.code.as_str());
        j.str("message", &self.message);
        j.end();
        j.out
    }

    pub fn grant_missing(header: &str) -> Self {
        Self::new(
            ErrorCode::GrantMissing,
            format!(
                "the request has no {header} header: add the grant id of the AWS credential to use"
            ),
        )
    }

    pub fn grant_not_found() -> Self {
        Self::new(
            ErrorCode::GrantNotFound,
            "no AWS credential is stored for this grant id",
        )
    }

    pub fn vault_unavailable(why: &str) -> Self {
        Self::new(
            ErrorCode::VaultUnavailable,
            format!("the credential store could not be read: {why}"),
        )
    }

    pub fn vault_busy() -> Self {
        Self::new(
            ErrorCode::VaultBusy,
            "too many grants not in the cache are being fetched from the credential store \
             right now (plugin configuration new_grant_fetches): retry after a second",
        )
    }

    pub fn not_aws_endpoint(why: &str) -> Self {
        Self::new(
            ErrorCode::NotAwsEndpoint,
            format!("refusing to sign: {why}"),
        )
    }

    pub fn payload_hash_required() -> Self {
        Self::new(
            ErrorCode::PayloadHashRequired,
            "this request has a body whose SHA-256 is unknown: send x-amz-content-sha256 with the \
             hex SHA-256 of the body, or route it through the body-hashing filter placed in front \
             of this one",
        )
    }

    pub fn internal(why: &str) -> Self {
        Self::new(
            ErrorCode::InternalError,
            format!("the request could not be signed: {why}"),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_say_json_and_when_to_retry() {
        let busy = LocalError::new(ErrorCode::VaultBusy, "busy");
        assert_eq!(
            busy.headers(),
            vec![
                ("content-type", &b"application/json"[..]),
                ("retry-after", &b"1"[..])
            ]
        );
        let missing = LocalError::grant_missing("x-grant-id");
        assert_eq!(
            missing.headers(),
            vec![("content-type", &b"application/json"[..])]
        );
    }

    #[test]
    fn body_is_json_with_code_and_message() {
        let e = LocalError::grant_missing("x-grant-id");
        let v: serde_json::Value = serde_json::from_str(&e.body()).unwrap();
        assert_eq!(v["error"], "GrantMissing");
        assert!(v["message"].as_str().unwrap().contains("x-grant-id"));
        assert_eq!(e.status(), 401);
    }

    #[test]
    fn message_quotes_are_escaped() {
        let e = LocalError::not_aws_endpoint("host \"a\\b\" is not AWS");
        let v: serde_json::Value = serde_json::from_str(&e.body()).unwrap();
        assert_eq!(v["message"], "refusing to sign: host \"a\\b\" is not AWS");
    }

    /// Byte for byte what `#[derive(Serialize)]` on `{error, message}` wrote.
    #[test]
    fn body_matches_derived_serialize() {
        #[derive(serde::Serialize)]
        struct Body<'a> {
            error: &'a str,
            message: &'a str,
        }
        for e in [
            LocalError::grant_missing("x-grant-id"),
            LocalError::internal("\u{1}\"\\\n é"),
            LocalError::new(ErrorCode::BadRequest, ""),
        ] {
            let derived = serde_json::to_string(&Body {
                error: e.code.as_str(),
                message: &e.message,
            })
            .unwrap();
            assert_eq!(e.body(), derived);
        }
    }

    /// Wire names are unique and are the variant names; statuses are HTTP error statuses.
    #[test]
    fn codes_have_unique_names_and_error_statuses() {
        let mut names: Vec<&str> = ErrorCode::ALL.iter().map(|c| c.as_str()).collect();
        for c in ErrorCode::ALL {
            assert_eq!(format!("{c:?}"), c.as_str());
            assert!((400..600).contains(&c.status()), "{c}");
        }
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), ErrorCode::ALL.len());
    }
}
