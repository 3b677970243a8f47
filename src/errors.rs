//! Local error replies: every refusal is answered by the filter itself with a short JSON body
//! `{"error": CODE, "message": ...}` and nothing is forwarded upstream.
//!
//! Messages name the cause and the fix, never a secret: no access key secret, session token,
//! Vault token or signature is ever put into a message.

/// A refusal answered locally.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LocalError {
    /// HTTP status of the local reply.
    pub status: u32,
    /// Stable machine-readable code, e.g. `GrantMissing`.
    pub code: &'static str,
    /// One sentence for a human: what is wrong and how to fix it.
    pub message: String,
}

impl LocalError {
    pub fn new(status: u32, code: &'static str, message: impl Into<String>) -> Self {
        LocalError {
            status,
            code,
            message: message.into(),
        }
    }

    /// The JSON body of the local reply.
    pub fn body(&self) -> String {
        let mut j = crate::json::JsonWriter::default();
        j.begin();
        j.str("error", self.code);
        j.str("message", &self.message);
        j.end();
        j.out
    }

    pub fn grant_missing(header: &str) -> Self {
        Self::new(
            401,
            "GrantMissing",
            format!(
                "the request has no {header} header: add the grant id of the AWS credential to use"
            ),
        )
    }

    pub fn grant_not_found() -> Self {
        Self::new(
            403,
            "GrantNotFound",
            "no AWS credential is stored for this grant id",
        )
    }

    pub fn vault_unavailable(why: &str) -> Self {
        Self::new(
            503,
            "VaultUnavailable",
            format!("the credential store could not be read: {why}"),
        )
    }

    pub fn not_aws_endpoint(why: &str) -> Self {
        Self::new(403, "NotAwsEndpoint", format!("refusing to sign: {why}"))
    }

    pub fn payload_hash_required() -> Self {
        Self::new(
            400,
            "PayloadHashRequired",
            "this request has a body whose SHA-256 is unknown: send x-amz-content-sha256 with the \
             hex SHA-256 of the body, or route it through the body-hashing filter placed in front \
             of this one",
        )
    }

    pub fn internal(why: &str) -> Self {
        Self::new(
            500,
            "InternalError",
            format!("the request could not be signed: {why}"),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn body_is_json_with_code_and_message() {
        let e = LocalError::grant_missing("x-grant-id");
        let v: serde_json::Value = serde_json::from_str(&e.body()).unwrap();
        assert_eq!(v["error"], "GrantMissing");
        assert!(v["message"].as_str().unwrap().contains("x-grant-id"));
        assert_eq!(e.status, 401);
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
            LocalError::new(400, "X", ""),
        ] {
            let derived = serde_json::to_string(&Body {
                error: e.code,
                message: &e.message,
            })
            .unwrap();
            assert_eq!(e.body(), derived);
        }
    }
}
