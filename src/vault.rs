//! The credential store side: which grant ids are acceptable, where a grant lives in a
//! Vault-compatible KV version 2 store, and what the store's answer means.
//!
//! A grant `G` is read with `GET /v1/<kv_mount>/data/<path_prefix>G` and header
//! `X-Vault-Token`. Its data holds either a static key (`access_key_id`,
//! `secret_access_key`, optionally `session_token`) or a reference to a role of the vault's
//! AWS secrets engine (`aws_role`, optionally `aws_mount` and `aws_credential_type`), whose
//! short-lived keys are then read from `/v1/<aws_mount>/creds/<role>` (or `sts/<role>`).
//! Optional policy fields restrict what the grant may be used for (see [`crate::policy`]).

use crate::config::{AuthMethod, VaultConfig};
use crate::errors::{ErrorCode, LocalError};
use crate::json::json_fields;
use crate::policy::{Cidr, Policy};
use serde_json::{Map, Value};
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

impl VaultError {
    /// The local reply for a grant the vault could not give (the same for every host).
    pub fn local_error(&self, vault: &VaultConfig) -> LocalError {
        match self {
            VaultError::NotFound => LocalError::grant_not_found(),
            // Behind a proxy, the reply names it: that is where the operator looks first.
            VaultError::Unavailable(why) if vault.auth == AuthMethod::Proxy => LocalError::new(
                ErrorCode::VaultUnavailable,
                format!(
                    "the credential store could not be read through the Vault/OpenBao Proxy \
                         (cluster {}): {}",
                    vault.cluster,
                    why.replace("the filter's token", "the proxy's token")
                ),
            ),
            VaultError::Unavailable(why) => LocalError::vault_unavailable(why),
            VaultError::BadRecord(why) => LocalError::new(
                ErrorCode::GrantRecordInvalid,
                format!("the stored record for this grant is not usable: {why}"),
            ),
        }
    }
}

/// `data.data` of a KV version 2 answer (`None`: absent or null). `Err` when the document
/// does not have that shape.
fn kv2_data(v: &Value) -> Result<Option<&Map<String, Value>>, ()> {
    let [data] = json_fields(v, ["data"]).ok_or(())?;
    let Some(data) = data else {
        return Ok(None);
    };
    let [inner] = json_fields(data, ["data"]).ok_or(())?;
    match inner {
        None => Ok(None),
        Some(Value::Object(m)) => Ok(Some(m)),
        Some(_) => Err(()),
    }
}

fn is_access_key_id(s: &str) -> bool {
    (16..=128).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit())
}

fn is_printable_token(s: &str, max: usize) -> bool {
    !s.is_empty() && s.len() <= max && s.bytes().all(|b| (0x21..=0x7e).contains(&b))
}

fn field<'a>(map: &'a Map<String, Value>, name: &str) -> Result<Option<&'a str>, VaultError> {
    match map.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.as_str())),
        Some(_) => Err(VaultError::BadRecord(format!("{name} is not a string"))),
    }
}

/// Which endpoint of the AWS secrets engine issues the keys.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DynamicKind {
    /// `GET /v1/<mount>/creds/<role>`
    Creds,
    /// `GET /v1/<mount>/sts/<role>`
    Sts,
}

/// A grant whose keys are issued on demand by the vault's AWS secrets engine.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DynamicSource {
    pub mount: String,
    pub role: String,
    pub kind: DynamicKind,
}

/// Where a grant's key comes from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Source {
    Static(Credentials),
    Dynamic(DynamicSource),
}

/// A grant as stored in the vault.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GrantRecord {
    pub source: Source,
    pub policy: Policy,
}

/// `:path` of the AWS secrets engine read for a dynamic grant.
pub fn dynamic_path(d: &DynamicSource) -> String {
    let kind = match d.kind {
        DynamicKind::Creds => "creds",
        DynamicKind::Sts => "sts",
    };
    format!("/v1/{}/{}/{}", d.mount, kind, d.role)
}

fn check_status(status: Option<u32>, body: &[u8]) -> Result<(), VaultError> {
    match status {
        None => Err(VaultError::Unavailable(
            "no answer (connection failed, reset or timed out)".into(),
        )),
        Some(200) if body.len() > MAX_RESPONSE_BYTES => Err(VaultError::Unavailable(
            "the vault answer is larger than 64 KiB".into(),
        )),
        Some(200) => Ok(()),
        Some(404) => Err(VaultError::NotFound),
        Some(403) => Err(VaultError::Unavailable(
            "the vault refused the filter's token (403)".into(),
        )),
        // Envoy answers a callout it could not complete itself: 504 when the callout timed
        // out, 503 when the vault could not be reached or reset the connection.
        Some(504) => Err(VaultError::Unavailable(
            "the callout timed out (504: no answer within vault.timeout_ms)".into(),
        )),
        Some(503) => Err(VaultError::Unavailable(
            "the vault could not be reached, reset the connection or is unavailable (503)".into(),
        )),
        Some(s) => Err(VaultError::Unavailable(format!("the vault answered {s}"))),
    }
}

fn is_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 128
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
        && !s.bytes().all(|b| b == b'.')
}

/// A policy list: a JSON array of strings, or one comma-separated string.
fn list(map: &Map<String, Value>, name: &str) -> Result<Option<Vec<String>>, VaultError> {
    let bad = || VaultError::BadRecord(format!("{name} is not a list of strings"));
    let items: Vec<String> = match map.get(name) {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::String(s)) => s
            .split(',')
            .map(|x| x.trim().to_string())
            .filter(|x| !x.is_empty())
            .collect(),
        Some(Value::Array(a)) => a
            .iter()
            .map(|v| v.as_str().map(|x| x.trim().to_string()).ok_or_else(bad))
            .collect::<Result<_, _>>()?,
        Some(_) => return Err(bad()),
    };
    Ok(Some(items))
}

fn parse_policy(data: &Map<String, Value>) -> Result<Policy, VaultError> {
    let scope = |name: &str| -> Result<Option<Vec<String>>, VaultError> {
        let l = list(data, name)?;
        if let Some(items) = &l {
            if !items
                .iter()
                .all(|x| crate::config::is_signing_name_or_region(x))
            {
                return Err(VaultError::BadRecord(format!(
                    "{name} holds a value that is not lowercase letters, digits and '-'"
                )));
            }
        }
        Ok(l)
    };
    let services = scope("allowed_services")?;
    let regions = scope("allowed_regions")?;
    let methods = list(data, "allowed_methods")?;
    if let Some(m) = &methods {
        if !m
            .iter()
            .all(|x| !x.is_empty() && x.bytes().all(|b| b.is_ascii_uppercase()))
        {
            return Err(VaultError::BadRecord(
                "allowed_methods holds a value that is not an upper-case HTTP method".into(),
            ));
        }
    }
    let principals = list(data, "allowed_principals")?;
    let source_cidrs = match list(data, "allowed_source_cidrs")? {
        None => None,
        Some(items) => Some(
            items
                .iter()
                .map(|c| Cidr::parse(c))
                .collect::<Option<Vec<_>>>()
                .ok_or_else(|| {
                    VaultError::BadRecord(
                        "allowed_source_cidrs holds a value that is not an address range".into(),
                    )
                })?,
        ),
    };
    Ok(Policy {
        services,
        regions,
        methods,
        principals,
        source_cidrs,
    })
}

/// Interpret the vault's answer to a grant read. `status` is `None` when the callout got
/// no HTTP status at all (reset, timeout, no healthy upstream): that is a vault failure.
pub fn parse_grant_response(status: Option<u32>, body: &[u8]) -> Result<GrantRecord, VaultError> {
    check_status(status, body)?;
    let not_kv2 =
        || VaultError::Unavailable("the vault answer is not a KV version 2 JSON document".into());
    let parsed: Value = serde_json::from_slice(body).map_err(|_| not_kv2())?;
    let data = match kv2_data(&parsed).map_err(|_| not_kv2())? {
        Some(d) => d,
        // KV v2 answers a deleted or destroyed latest version with data.data = null.
        None => return Err(VaultError::NotFound),
    };
    let policy = parse_policy(data)?;
    let role = field(data, "aws_role")?;
    let has_static = ["access_key_id", "secret_access_key", "session_token"]
        .iter()
        .any(|k| data.contains_key(*k));
    let source = match role {
        Some(_) if has_static => {
            return Err(VaultError::BadRecord(
                "the record holds both a static key and aws_role: keep one".into(),
            ))
        }
        Some(role) => {
            let mount = field(data, "aws_mount")?.unwrap_or("aws");
            if !is_name(role) {
                return Err(VaultError::BadRecord("aws_role is not a role name".into()));
            }
            if !mount.split('/').all(is_name) {
                return Err(VaultError::BadRecord(
                    "aws_mount is not a mount path".into(),
                ));
            }
            let kind = match field(data, "aws_credential_type")? {
                None | Some("creds") => DynamicKind::Creds,
                Some("sts") => DynamicKind::Sts,
                Some(_) => {
                    return Err(VaultError::BadRecord(
                        "aws_credential_type must be creds or sts".into(),
                    ))
                }
            };
            Source::Dynamic(DynamicSource {
                mount: mount.to_string(),
                role: role.to_string(),
                kind,
            })
        }
        None => Source::Static(static_credentials(data)?),
    };
    Ok(GrantRecord { source, policy })
}

fn static_credentials(data: &Map<String, Value>) -> Result<Credentials, VaultError> {
    let akid = field(data, "access_key_id")?
        .ok_or_else(|| VaultError::BadRecord("access_key_id is missing".into()))?;
    let secret = field(data, "secret_access_key")?
        .ok_or_else(|| VaultError::BadRecord("secret_access_key is missing".into()))?;
    let session_token = field(data, "session_token")?;
    checked_credentials(
        akid,
        secret,
        session_token,
        ["access_key_id", "secret_access_key", "session_token"],
    )
}

fn checked_credentials(
    akid: &str,
    secret: &str,
    session_token: Option<&str>,
    names: [&str; 3],
) -> Result<Credentials, VaultError> {
    if !is_access_key_id(akid) {
        return Err(VaultError::BadRecord(format!(
            "{} is not 16 to 128 upper-case letters and digits",
            names[0]
        )));
    }
    if !is_printable_token(secret, 128) {
        return Err(VaultError::BadRecord(format!(
            "{} is empty, too long or holds spaces or control characters",
            names[1]
        )));
    }
    let session_token = match session_token {
        None | Some("") => None,
        Some(t) if is_printable_token(t, 8192) => Some(t.to_string()),
        Some(_) => {
            return Err(VaultError::BadRecord(format!(
                "{} is too long or holds spaces or control characters",
                names[2]
            )))
        }
    };
    Ok(Credentials {
        access_key_id: akid.to_string(),
        secret_access_key: secret.to_string(),
        session_token,
    })
}

/// Interpret the AWS secrets engine's answer: the issued key and its lease in seconds.
pub fn parse_dynamic_response(
    status: Option<u32>,
    body: &[u8],
) -> Result<(Credentials, u64), VaultError> {
    match status {
        // The engine answers an unknown role with 400 (or 404).
        Some(400) | Some(404) => {
            return Err(VaultError::BadRecord(
                "the AWS secrets engine has no such role (or refused to issue a key)".into(),
            ))
        }
        _ => check_status(status, body)?,
    }
    let not_json = || VaultError::Unavailable("the AWS secrets engine answer is not JSON".into());
    let parsed: Value = serde_json::from_slice(body).map_err(|_| not_json())?;
    // `{lease_duration: Option<u64>, data: Option<object>}`
    let [lease, data] = json_fields(&parsed, ["lease_duration", "data"]).ok_or_else(not_json)?;
    let lease_duration = match lease {
        None => None,
        Some(l) => Some(l.as_u64().ok_or_else(not_json)?),
    };
    let data = match data {
        None => {
            return Err(VaultError::Unavailable(
                "the AWS secrets engine answer has no data".into(),
            ))
        }
        Some(Value::Object(m)) => m,
        Some(_) => return Err(not_json()),
    };
    let akid = field(data, "access_key")?
        .ok_or_else(|| VaultError::Unavailable("the issued key has no access_key".into()))?;
    let secret = field(data, "secret_key")?
        .ok_or_else(|| VaultError::Unavailable("the issued key has no secret_key".into()))?;
    let token = field(data, "session_token")?;
    let creds = checked_credentials(
        akid,
        secret,
        token,
        ["access_key", "secret_key", "session_token"],
    )
    .map_err(|e| match e {
        VaultError::BadRecord(m) => VaultError::Unavailable(format!("issued key: {m}")),
        other => other,
    })?;
    Ok((creds, lease_duration.unwrap_or(0)))
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
        let r = parse_grant_response(Some(200), OK.as_bytes()).unwrap();
        assert!(r.policy.is_unrestricted());
        let Source::Static(c) = r.source else {
            panic!()
        };
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
        let Source::Static(c) = parse_grant_response(Some(200), body.as_bytes())
            .unwrap()
            .source
        else {
            panic!()
        };
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
    fn dynamic_grants_and_policies() {
        let body = r#"{"data":{"data":{"aws_role":"deploy","aws_credential_type":"sts",
            "allowed_services":"s3, sts","allowed_methods":["GET","HEAD"],
            "allowed_source_cidrs":["127.0.0.1/32"],"description":"ci"}}}"#;
        let r = parse_grant_response(Some(200), body.as_bytes()).unwrap();
        let Source::Dynamic(d) = &r.source else {
            panic!()
        };
        assert_eq!(dynamic_path(d), "/v1/aws/sts/deploy");
        assert_eq!(
            r.policy.services,
            Some(vec!["s3".to_string(), "sts".to_string()])
        );
        assert_eq!(
            r.policy.methods,
            Some(vec!["GET".to_string(), "HEAD".to_string()])
        );
        assert!(r.policy.needs_caller());
        for (body, name) in [
            (
                r#"{"data":{"data":{"aws_role":"r","access_key_id":"AKIAIOSFODNN7EXAMPLE"}}}"#,
                "both",
            ),
            (r#"{"data":{"data":{"aws_role":"../x"}}}"#, "aws_role"),
            (
                r#"{"data":{"data":{"aws_role":"r","aws_credential_type":"x"}}}"#,
                "aws_credential_type",
            ),
            (
                r#"{"data":{"data":{"aws_role":"r","allowed_services":["S3"]}}}"#,
                "allowed_services",
            ),
            (
                r#"{"data":{"data":{"aws_role":"r","allowed_methods":"get"}}}"#,
                "allowed_methods",
            ),
            (
                r#"{"data":{"data":{"aws_role":"r","allowed_source_cidrs":"10.0.0.0/99"}}}"#,
                "allowed_source_cidrs",
            ),
            (
                r#"{"data":{"data":{"aws_role":"r","allowed_regions":7}}}"#,
                "allowed_regions",
            ),
        ] {
            match parse_grant_response(Some(200), body.as_bytes()) {
                Err(VaultError::BadRecord(m)) => assert!(m.contains(name), "{m}"),
                other => panic!("{body}: {other:?}"),
            }
        }
    }

    #[test]
    fn dynamic_answers() {
        let ok = r#"{"lease_id":"aws/creds/r/x","lease_duration":900,"renewable":true,
            "data":{"access_key":"ASIAIOSFODNN7EXAMPLE","secret_key":"abc/def","session_token":"tok"}}"#;
        let (c, lease) = parse_dynamic_response(Some(200), ok.as_bytes()).unwrap();
        assert_eq!(
            (c.access_key_id.as_str(), lease),
            ("ASIAIOSFODNN7EXAMPLE", 900)
        );
        assert_eq!(c.session_token.as_deref(), Some("tok"));
        assert!(matches!(
            parse_dynamic_response(Some(400), b"{}"),
            Err(VaultError::BadRecord(_))
        ));
        assert!(matches!(
            parse_dynamic_response(Some(500), b"{}"),
            Err(VaultError::Unavailable(_))
        ));
        assert!(matches!(
            parse_dynamic_response(None, b""),
            Err(VaultError::Unavailable(_))
        ));
        assert!(matches!(
            parse_dynamic_response(Some(200), b"{\"data\":{}}"),
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

    /// The answers' shapes are read as the derived `Deserialize` of
    /// `Kv2Response {data: Option<{data: Option<Map>}>}` and
    /// `LeaseResponse {lease_duration: Option<u64>, data: Option<Map>}` read them.
    #[test]
    #[allow(clippy::useless_format)] // one format per body, for a uniform list
    fn answer_shapes_are_read_as_derived() {
        use serde::Deserialize;
        #[derive(Deserialize)]
        struct Kv2Response {
            data: Option<Kv2Data>,
        }
        #[derive(Deserialize)]
        struct Kv2Data {
            data: Option<Map<String, Value>>,
        }
        #[derive(Deserialize)]
        struct LeaseResponse {
            lease_duration: Option<u64>,
            data: Option<Map<String, Value>>,
        }
        let rec = r#"{"access_key":"ASIAIOSFODNN7EXAMPLE","secret_key":"k","access_key_id":"AKIAIOSFODNN7EXAMPLE","secret_access_key":"k"}"#;
        let bodies = [
            format!(r#"{{"data":{{"data":{rec}}}}}"#),
            format!(r#"{{"data":{{"data":{rec},"metadata":{{}}}},"x":[1,{{}}]}}"#),
            format!(r#"[[{rec}]]"#),
            format!(r#"[[{rec}],1]"#),
            format!(r#"[{{"data":{rec}}}]"#),
            format!(r#"{{"data":[{rec}]}}"#),
            format!(r#"{{"data":{{"data":[{rec}]}}}}"#),
            format!(r#"{{"data":{{"data":"x"}}}}"#),
            format!(r#"{{"data":"x"}}"#),
            format!(r#"{{"data":null}}"#),
            format!(r#"{{"data":{{"data":null}}}}"#),
            format!(r#"{{"data":{{}}}}"#),
            format!(r#"{{}}"#),
            format!(r#"[]"#),
            format!(r#"[null]"#),
            format!(r#"[null,null]"#),
            format!(r#"null"#),
            format!(r#"7"#),
            format!(r#"{{"lease_duration":900,"data":{rec}}}"#),
            format!(r#"{{"lease_duration":null,"data":{rec}}}"#),
            format!(r#"{{"lease_duration":-1,"data":{rec}}}"#),
            format!(r#"{{"lease_duration":1.5,"data":{rec}}}"#),
            format!(r#"{{"lease_duration":"9","data":{rec}}}"#),
            format!(r#"{{"lease_duration":18446744073709551616,"data":{rec}}}"#),
            format!(r#"{{"lease_duration":9}}"#),
            format!(r#"{{"lease_duration":"x"}}"#),
            format!(r#"[9,{rec}]"#),
            format!(r#"[9]"#),
            format!(r#"[9,{rec},1]"#),
        ];
        for b in &bodies {
            let derived = match serde_json::from_str::<Kv2Response>(b) {
                Err(_) => Err(()),
                Ok(r) => Ok(r.data.and_then(|d| d.data)),
            };
            let v: Option<Value> = serde_json::from_str(b).ok();
            let ours = v.as_ref().ok_or(()).and_then(kv2_data).map(|m| m.cloned());
            assert_eq!(ours, derived, "{b}");
            let derived = match serde_json::from_str::<LeaseResponse>(b) {
                Err(_) => Err("not JSON"),
                Ok(LeaseResponse { data: None, .. }) => Err("no data"),
                Ok(LeaseResponse {
                    data: Some(m),
                    lease_duration,
                }) if m.contains_key("access_key") => Ok(lease_duration.unwrap_or(0)),
                Ok(_) => Err("other"),
            };
            let ours = match parse_dynamic_response(Some(200), b.as_bytes()) {
                Ok((_, lease)) => Ok(lease),
                Err(VaultError::Unavailable(m)) if m.contains("not JSON") => Err("not JSON"),
                Err(VaultError::Unavailable(m)) if m.contains("no data") => Err("no data"),
                Err(_) => Err("other"),
            };
            assert_eq!(ours, derived, "{b}");
        }
    }
}
