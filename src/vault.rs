//! The credential store side: which grant ids are acceptable, where a grant lives in a
//! Vault-compatible KV version 2 store, and what the store's answer means.
//!
//! A grant `G` is read with `GET /v1/<kv_mount>/data/<path_prefix>G` and header
//! `X-Vault-Token`. Its data holds `access_key_id`, `secret_access_key` and optionally
//! `session_token`.

use crate::config::VaultConfig;
use serde::Deserialize;
use std::fmt;

/// Longest grant id accepted.
pub const MAX_GRANT_ID_LEN: usize = 128;
/// Largest vault answer read; anything longer is treated as a vault failure.
pub const MAX_RESPONSE_BYTES: usize = 64 * 1024;

/// An AWS credential as stored for a grant.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    pub access_key_id: String,
    pub secret_access_key: String,
    pub session_token: Option<String>,
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("access_key_id", &self.access_key_id)
            .field("secret_access_key", &"<redacted>")
            .field(
                "session_token",
                &self.session_token.as_ref().map(|_| "<redacted>"),
            )
            .finish()
    }
}

/// Why a grant id is refused before any vault call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GrantIdError {
    Empty,
    TooLong,
    BadCharacter,
}

impl GrantIdError {
    pub fn describe(self) -> &'static str {
        match self {
            GrantIdError::Empty => "the grant id is empty",
            GrantIdError::TooLong => "the grant id is longer than 128 characters",
            GrantIdError::BadCharacter => {
                "the grant id may hold only letters, digits, '-', '_' and '.' (not only dots)"
            }
        }
    }
}

/// Check a grant id: 1 to 128 of `A-Z a-z 0-9 - _ .`, not made only of dots. This keeps
/// the id safe to put into a vault path (no `/`, no `..`, no `?`, no percent-encoding).
pub fn validate_grant_id(raw: &[u8]) -> Result<&str, GrantIdError> {
    if raw.is_empty() {
        return Err(GrantIdError::Empty);
    }
    if raw.len() > MAX_GRANT_ID_LEN {
        return Err(GrantIdError::TooLong);
    }
    if !raw
        .iter()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
        || raw.iter().all(|&b| b == b'.')
    {
        return Err(GrantIdError::BadCharacter);
    }
    std::str::from_utf8(raw).map_err(|_| GrantIdError::BadCharacter)
}

/// `:path` of the vault read for a (validated) grant id.
pub fn grant_path(cfg: &VaultConfig, grant_id: &str) -> String {
    format!("/v1/{}/data/{}{}", cfg.kv_mount, cfg.path_prefix, grant_id)
}

/// What the vault's answer means for the request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum VaultError {
    /// The grant does not exist (404, or its latest version is deleted).
    NotFound,
    /// The vault could not be used: unreachable, refused our token, errored, or answered
    /// something that is not a KV v2 answer. The text says which, without any secret.
    Unavailable(String),
    /// The grant exists but its record lacks a field or holds a malformed one.
    BadRecord(String),
}

#[derive(Deserialize)]
struct Kv2Response {
    data: Option<Kv2Data>,
}

#[derive(Deserialize)]
struct Kv2Data {
    data: Option<serde_json::Map<String, serde_json::Value>>,
}

fn is_access_key_id(s: &str) -> bool {
    (16..=128).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit())
}

fn is_printable_token(s: &str, max: usize) -> bool {
    !s.is_empty() && s.len() <= max && s.bytes().all(|b| (0x21..=0x7e).contains(&b))
}

fn field<'a>(
    map: &'a serde_json::Map<String, serde_json::Value>,
    name: &str,
) -> Result<Option<&'a str>, VaultError> {
    match map.get(name) {
        None | Some(serde_json::Value::Null) => Ok(None),
        Some(serde_json::Value::String(s)) => Ok(Some(s.as_str())),
        Some(_) => Err(VaultError::BadRecord(format!("{name} is not a string"))),
    }
}

/// Interpret the vault's answer to a grant read. `status` is `None` when the callout got
/// no HTTP status at all (reset, timeout, no healthy upstream): that is a vault failure.
pub fn parse_grant_response(status: Option<u32>, body: &[u8]) -> Result<Credentials, VaultError> {
    match status {
        None => {
            return Err(VaultError::Unavailable(
                "no answer (connection failed, reset or timed out)".into(),
            ))
        }
        Some(200) => {}
        Some(404) => return Err(VaultError::NotFound),
        Some(403) => {
            return Err(VaultError::Unavailable(
                "the vault refused the filter's token (403)".into(),
            ))
        }
        Some(s) => return Err(VaultError::Unavailable(format!("the vault answered {s}"))),
    }
    if body.len() > MAX_RESPONSE_BYTES {
        return Err(VaultError::Unavailable(
            "the vault answer is larger than 64 KiB".into(),
        ));
    }
    let parsed: Kv2Response = serde_json::from_slice(body).map_err(|_| {
        VaultError::Unavailable("the vault answer is not a KV version 2 JSON document".into())
    })?;
    let data = match parsed.data.and_then(|d| d.data) {
        Some(d) => d,
        // KV v2 answers a deleted or destroyed latest version with data.data = null.
        None => return Err(VaultError::NotFound),
    };
    let akid = field(&data, "access_key_id")?
        .ok_or_else(|| VaultError::BadRecord("access_key_id is missing".into()))?;
    if !is_access_key_id(akid) {
        return Err(VaultError::BadRecord(
            "access_key_id is not 16 to 128 upper-case letters and digits".into(),
        ));
    }
    let secret = field(&data, "secret_access_key")?
        .ok_or_else(|| VaultError::BadRecord("secret_access_key is missing".into()))?;
    if !is_printable_token(secret, 128) {
        return Err(VaultError::BadRecord(
            "secret_access_key is empty, too long or holds spaces or control characters".into(),
        ));
    }
    let session_token = match field(&data, "session_token")? {
        None | Some("") => None,
        Some(t) if is_printable_token(t, 8192) => Some(t.to_string()),
        Some(_) => {
            return Err(VaultError::BadRecord(
                "session_token is too long or holds spaces or control characters".into(),
            ))
        }
    };
    Ok(Credentials {
        access_key_id: akid.to_string(),
        secret_access_key: secret.to_string(),
        session_token,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vcfg() -> VaultConfig {
        crate::config::Config::parse(br#"{"vault": {"token": "t"}}"#)
            .unwrap()
            .vault
    }

    #[test]
    fn grant_ids() {
        assert_eq!(validate_grant_id(b"g-123_abc.d"), Ok("g-123_abc.d"));
        assert_eq!(validate_grant_id(b""), Err(GrantIdError::Empty));
        assert_eq!(validate_grant_id(&[b'a'; 129]), Err(GrantIdError::TooLong));
        assert!(validate_grant_id(&[b'a'; 128]).is_ok());
        for bad in [
            &b"a/b"[..],
            b"..",
            b".",
            b"a b",
            b"a%2f",
            b"a?x",
            b"\xc3\xa9",
            b"a\x00",
        ] {
            assert_eq!(
                validate_grant_id(bad),
                Err(GrantIdError::BadCharacter),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn path_layout() {
        assert_eq!(grant_path(&vcfg(), "G1"), "/v1/secret/data/aws/grants/G1");
    }

    const OK: &str = r#"{"request_id":"x","data":{"data":{"access_key_id":"AKIAIOSFODNN7EXAMPLE",
        "secret_access_key":"wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"},"metadata":{"version":3}}}"#;

    #[test]
    fn parses_a_record() {
        let c = parse_grant_response(Some(200), OK.as_bytes()).unwrap();
        assert_eq!(c.access_key_id, "AKIAIOSFODNN7EXAMPLE");
        assert_eq!(
            c.secret_access_key,
            "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
        );
        assert_eq!(c.session_token, None);
        assert!(!format!("{c:?}").contains("wJalr"));
    }

    #[test]
    fn session_token_is_kept() {
        let body = OK.replace(
            "\"secret_access_key\"",
            "\"session_token\":\"FQoGZXIvYXdzEXAMPLE\",\"secret_access_key\"",
        );
        let c = parse_grant_response(Some(200), body.as_bytes()).unwrap();
        assert_eq!(c.session_token.as_deref(), Some("FQoGZXIvYXdzEXAMPLE"));
        assert!(!format!("{c:?}").contains("FQoG"));
    }

    #[test]
    fn statuses() {
        assert_eq!(
            parse_grant_response(Some(404), b""),
            Err(VaultError::NotFound)
        );
        assert!(matches!(
            parse_grant_response(None, b""),
            Err(VaultError::Unavailable(_))
        ));
        assert!(matches!(
            parse_grant_response(Some(403), b""),
            Err(VaultError::Unavailable(_))
        ));
        assert!(matches!(
            parse_grant_response(Some(500), OK.as_bytes()),
            Err(VaultError::Unavailable(_))
        ));
        assert!(matches!(
            parse_grant_response(Some(200), b"<html>"),
            Err(VaultError::Unavailable(_))
        ));
        let huge = vec![b' '; MAX_RESPONSE_BYTES + 1];
        assert!(matches!(
            parse_grant_response(Some(200), &huge),
            Err(VaultError::Unavailable(_))
        ));
    }

    #[test]
    fn deleted_version_is_not_found() {
        let body = r#"{"data":{"data":null,"metadata":{"deletion_time":"2026-01-01T00:00:00Z"}}}"#;
        assert_eq!(
            parse_grant_response(Some(200), body.as_bytes()),
            Err(VaultError::NotFound)
        );
    }

    #[test]
    fn bad_records_name_the_field_and_never_the_value() {
        let cases = [
            (
                r#"{"data":{"data":{"secret_access_key":"s"}}}"#,
                "access_key_id",
            ),
            (
                r#"{"data":{"data":{"access_key_id":"AKIAIOSFODNN7EXAMPLE"}}}"#,
                "secret_access_key",
            ),
            (
                r#"{"data":{"data":{"access_key_id":"akia-lower","secret_access_key":"s"}}}"#,
                "access_key_id",
            ),
            (
                r#"{"data":{"data":{"access_key_id":"AKIAIOSFODNN7EXAMPLE","secret_access_key":"has space"}}}"#,
                "secret_access_key",
            ),
            (
                r#"{"data":{"data":{"access_key_id":"AKIAIOSFODNN7EXAMPLE","secret_access_key":7}}}"#,
                "secret_access_key",
            ),
        ];
        for (body, name) in cases {
            match parse_grant_response(Some(200), body.as_bytes()) {
                Err(VaultError::BadRecord(m)) => {
                    assert!(m.contains(name), "{m}");
                    assert!(!m.contains("has space"));
                }
                other => panic!("{body}: {other:?}"),
            }
        }
    }
}
