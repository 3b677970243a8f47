//! What an AWS answer says about the key it was signed with. AWS refuses a rotated,
//! deleted or expired key with a few error codes; on those the grant's cached key is dropped
//! so that the next request (or a retry of this one) is signed with a freshly fetched key.

/// Error codes that mean "this key is not (or no longer) valid".
pub const CREDENTIAL_ERRORS: [&str; 6] = [
    "InvalidAccessKeyId",
    "InvalidClientTokenId",
    "SignatureDoesNotMatch",
    "ExpiredToken",
    "ExpiredTokenException",
    "UnrecognizedClientException",
];

/// What the response headers tell.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyVerdict {
    /// Not a refusal of the key.
    Accepted,
    /// AWS named a credential error (`x-amzn-errortype`).
    Refused(&'static str),
    /// A 403 without an error type header (XML services such as S3, STS, IAM put the code in
    /// the body, which arrives after the headers and after a retry decision): the key may
    /// have been refused.
    MaybeRefused,
}

/// Classify a response from its `:status` and `x-amzn-errortype` header
/// (`UnrecognizedClientException:http://internal.amazon.com/...`).
pub fn key_verdict(status: u32, error_type: Option<&str>) -> KeyVerdict {
    if status != 400 && status != 403 {
        return KeyVerdict::Accepted;
    }
    match error_type {
        Some(t) => {
            let code = t.split(':').next().unwrap_or("").trim();
            let code = code.rsplit('#').next().unwrap_or(code);
            CREDENTIAL_ERRORS
                .iter()
                .find(|c| **c == code)
                .map_or(KeyVerdict::Accepted, |c| KeyVerdict::Refused(c))
        }
        None if status == 403 => KeyVerdict::MaybeRefused,
        None => KeyVerdict::Accepted,
    }
}

/// The AWS request id of a response, for the audit trail.
pub fn request_id(headers: &[(String, Vec<u8>)]) -> Option<&str> {
    headers
        .iter()
        .find(|(k, _)| k == "x-amzn-requestid" || k == "x-amz-request-id")
        .and_then(|(_, v)| std::str::from_utf8(v).ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verdicts() {
        assert_eq!(key_verdict(200, None), KeyVerdict::Accepted);
        assert_eq!(
            key_verdict(404, Some("InvalidClientTokenId")),
            KeyVerdict::Accepted
        );
        assert_eq!(
            key_verdict(
                400,
                Some("UnrecognizedClientException:http://internal.amazon.com/coral/")
            ),
            KeyVerdict::Refused("UnrecognizedClientException")
        );
        assert_eq!(
            key_verdict(400, Some("com.amazon.coral.service#ExpiredTokenException")),
            KeyVerdict::Refused("ExpiredTokenException")
        );
        assert_eq!(
            key_verdict(403, Some("AccessDeniedException")),
            KeyVerdict::Accepted
        );
        assert_eq!(key_verdict(403, None), KeyVerdict::MaybeRefused);
        assert_eq!(key_verdict(400, None), KeyVerdict::Accepted);
    }

    #[test]
    fn request_ids() {
        let h = vec![("x-amz-request-id".to_string(), b"ABC".to_vec())];
        assert_eq!(request_id(&h), Some("ABC"));
        assert_eq!(request_id(&[]), None);
    }
}
