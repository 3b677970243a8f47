//! `vault.token_sds`: the filter's Vault token from a generic secret of Envoy's secret
//! discovery service (SDS), for the dynamic module only (a proxy-wasm filter cannot read
//! Envoy's secrets).
//!
//! - `"token_sds": "vault-token"`: the static secret of that name in Envoy's bootstrap
//!   (`static_resources.secrets`, a `generic_secret`);
//! - `"token_sds": {"name": "vault-token", "config_source": {...}}`: the secret of that
//!   name from an SDS source (an Envoy `ConfigSource`, e.g. `path_config_source`), which
//!   Envoy updates when the source changes.
//!
//! The secret's value (surrounding whitespace trimmed) is the token. The host reads it at
//! its events and hands a changed value to the engine ([`crate::engine::Engine::replace_vault_token`]).

use serde_json::Value;

/// Where the token's secret comes from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SdsSecret {
    /// The secret's name.
    pub name: String,
    /// The SDS `ConfigSource` as JSON; empty for a static secret of the bootstrap.
    pub config_source: String,
}

fn is_secret_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 256
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'/' | b':'))
}

/// `vault.token_sds`, if given (the problem's text when it is malformed).
pub fn parse(v: Option<&Value>) -> Result<Option<SdsSecret>, String> {
    const NAME: &str = "must be a secret name (letters, digits, '-', '_', '.', '/', ':')";
    match v {
        None => Ok(None),
        Some(Value::String(n)) if is_secret_name(n) => Ok(Some(SdsSecret {
            name: n.clone(),
            config_source: String::new(),
        })),
        Some(Value::String(_)) => Err(NAME.to_string()),
        Some(Value::Object(o)) => {
            if let Some(k) = o
                .keys()
                .find(|k| !matches!(k.as_str(), "name" | "config_source"))
            {
                return Err(format!("unknown key \"{k}\" (name, config_source)"));
            }
            let name = match o.get("name") {
                Some(Value::String(n)) if is_secret_name(n) => n.clone(),
                _ => return Err(format!("name {NAME}")),
            };
            let config_source = match o.get("config_source") {
                None => String::new(),
                Some(cs @ Value::Object(m)) if !m.is_empty() => cs.to_string(),
                Some(_) => {
                    return Err(String::from(
                        "config_source must be an Envoy ConfigSource object (e.g. \
                         {\"path_config_source\": {\"path\": \"/etc/envoy/sds.yaml\"}})",
                    ))
                }
            };
            Ok(Some(SdsSecret {
                name,
                config_source,
            }))
        }
        Some(_) => Err(String::from(
            "must be a secret name, or {\"name\": ..., \"config_source\": {...}}",
        )),
    }
}

/// The token in a secret's value: trimmed, and only if it is printable ASCII without
/// spaces (as `vault.token`).
pub fn token_of(value: &[u8]) -> Option<&str> {
    let t = std::str::from_utf8(value).ok()?.trim();
    (!t.is_empty() && t.bytes().all(|b| (0x21..=0x7e).contains(&b))).then_some(t)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_sources() {
        let p = |s: &str| parse(Some(&serde_json::from_str(s).unwrap()));
        assert_eq!(
            p(r#""vault-token""#).unwrap().unwrap(),
            SdsSecret {
                name: "vault-token".into(),
                config_source: String::new()
            }
        );
        let s = p(r#"{"name": "t", "config_source": {"path_config_source": {"path": "/x"}}}"#)
            .unwrap()
            .unwrap();
        assert_eq!(s.name, "t");
        assert_eq!(s.config_source, r#"{"path_config_source":{"path":"/x"}}"#);
        assert!(p(r#""""#).is_err());
        assert!(p(r#""a b""#).is_err());
        assert!(p(r#"{"name": "t", "source": {}}"#)
            .unwrap_err()
            .contains("source"));
        assert!(p(r#"{"config_source": {"a": 1}}"#).is_err());
        assert!(p(r#"{"name": "t", "config_source": "x"}"#).is_err());
        assert!(p("3").is_err());
        assert_eq!(parse(None), Ok(None));
    }

    #[test]
    fn token_values() {
        assert_eq!(token_of(b"s.abc\n"), Some("s.abc"));
        assert_eq!(token_of(b"  \n"), None);
        assert_eq!(token_of(b"a b"), None);
        assert_eq!(token_of(&[0xff, 0x41]), None);
    }
}
