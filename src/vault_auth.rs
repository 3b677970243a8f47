//! The filter's own Vault token, as pure functions: what the token endpoints answer
//! (`lookup-self`, `renew-self`, an AppRole login), when to renew and when to log in again,
//! how long to back off after a failure, and the shared-data codec through which the
//! workers of one process share one token. The state machine that drives them is
//! `engine::vault_token`.
//!
//! Renewal follows Vault's own client (`LifetimeWatcher`): renew at about two thirds of the
//! remaining lease, less up to a tenth of it as jitter, so that many filters started together
//! do not renew together; back off on errors; "permission denied" means "not renewable".

use serde_json::Value;
use std::fmt;

/// The vault paths of the token endpoints.
pub const LOOKUP_SELF_PATH: &str = "/v1/auth/token/lookup-self";
pub const RENEW_SELF_PATH: &str = "/v1/auth/token/renew-self";

/// The login path of an AppRole mount.
pub fn login_path(mount: &str) -> String {
    format!("/v1/auth/{mount}/login")
}

/// The JSON body of an AppRole login. Holds the secret id: it goes into the callout body
/// and nowhere else.
pub fn login_body(role_id: &str, secret_id: &str) -> Vec<u8> {
    let mut out = String::with_capacity(32 + role_id.len() + secret_id.len());
    out.push_str("{\"role_id\":");
    crate::json::push_json_str(&mut out, role_id);
    out.push_str(",\"secret_id\":");
    crate::json::push_json_str(&mut out, secret_id);
    out.push('}');
    out.into_bytes()
}

/// What `lookup-self` says of a token (never the token itself).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TokenInfo {
    /// Seconds left; 0 for a token that never expires (a root token).
    pub ttl: u64,
    pub renewable: bool,
    /// Periodic tokens: the period each renewal restores.
    pub period: Option<u64>,
    pub policies: Vec<String>,
}

/// A token the vault issued (login) or extended (renew-self).
#[derive(Clone, PartialEq, Eq)]
pub struct Lease {
    /// The token (empty in a renewal answer that does not repeat it).
    pub token: String,
    /// Seconds it is valid from the answer on; 0 for no expiry.
    pub lease_duration: u64,
    pub renewable: bool,
    pub policies: Vec<String>,
}

impl fmt::Debug for Lease {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Lease")
            .field("token", &"<redacted>")
            .field("lease_duration", &self.lease_duration)
            .field("renewable", &self.renewable)
            .field("policies", &self.policies)
            .finish()
    }
}

/// Why a token endpoint gave no usable answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AuthError {
    /// The vault refused (400, 403: a bad or revoked token, a wrong or used-up secret id,
    /// "permission denied" on renewal). Retrying the same call will not help.
    Denied(String),
    /// No answer, a 5xx, or an answer that is not what the endpoint returns: try again later.
    Unavailable(String),
}

impl AuthError {
    pub fn message(&self) -> &str {
        match self {
            AuthError::Denied(m) | AuthError::Unavailable(m) => m,
        }
    }
}

/// The largest token-endpoint answer read (a login answer is well under 2 KiB).
pub const MAX_AUTH_RESPONSE_BYTES: usize = 64 * 1024;

fn status_error(what: &str, status: Option<u32>, body: &[u8]) -> Option<AuthError> {
    match status {
        Some(200) => None,
        None => Some(AuthError::Unavailable(format!(
            "{what}: no answer from the vault (timeout or connection failure)"
        ))),
        Some(s @ (400 | 401 | 403)) => Some(AuthError::Denied(format!(
            "{what}: the vault refused ({s}{})",
            vault_errors(body)
        ))),
        // No such endpoint (a wrong AppRole mount, or not a Vault): asking again won't help.
        Some(404) => Some(AuthError::Denied(format!(
            "{what}: the vault has no such path (404{}): check vault.auth.mount and the vault cluster",
            vault_errors(body)
        ))),
        Some(s) => Some(AuthError::Unavailable(format!(
            "{what}: the vault answered {s}{}",
            vault_errors(body)
        ))),
    }
}

/// `: <first error>` from a vault error body (`{"errors": ["..."]}`), kept short; the vault
/// never puts a token or secret id in its error messages.
fn vault_errors(body: &[u8]) -> String {
    let first = serde_json::from_slice::<Value>(body).ok().and_then(|v| {
        v.get("errors")?
            .as_array()?
            .first()?
            .as_str()
            .map(str::to_string)
    });
    match first {
        Some(m) => {
            let m: String = m.chars().filter(|c| !c.is_control()).take(160).collect();
            format!(": {m}")
        }
        None => String::new(),
    }
}

fn strings(v: Option<&Value>) -> Vec<String> {
    v.and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default()
}

fn parse_json(what: &str, body: &[u8]) -> Result<Value, AuthError> {
    if body.len() > MAX_AUTH_RESPONSE_BYTES {
        return Err(AuthError::Unavailable(format!(
            "{what}: the vault answer is too large"
        )));
    }
    serde_json::from_slice(body)
        .map_err(|_| AuthError::Unavailable(format!("{what}: the vault answer is not JSON")))
}

/// The answer to `GET lookup-self`.
pub fn parse_lookup_self(status: Option<u32>, body: &[u8]) -> Result<TokenInfo, AuthError> {
    const WHAT: &str = "token lookup";
    if let Some(e) = status_error(WHAT, status, body) {
        return Err(e);
    }
    let v = parse_json(WHAT, body)?;
    let data = v
        .get("data")
        .filter(|d| d.is_object())
        .ok_or_else(|| AuthError::Unavailable(format!("{WHAT}: the answer has no data")))?;
    let ttl = data
        .get("ttl")
        .and_then(Value::as_u64)
        .ok_or_else(|| AuthError::Unavailable(format!("{WHAT}: the answer has no ttl")))?;
    Ok(TokenInfo {
        ttl,
        renewable: data
            .get("renewable")
            .and_then(Value::as_bool)
            .unwrap_or(false),
        period: data
            .get("period")
            .and_then(Value::as_u64)
            .filter(|p| *p > 0),
        policies: strings(data.get("policies")),
    })
}

/// The answer to a login (`login: true`: it must carry a token) or to `renew-self`.
pub fn parse_auth(status: Option<u32>, body: &[u8], login: bool) -> Result<Lease, AuthError> {
    let what = if login {
        "vault login"
    } else {
        "token renewal"
    };
    if let Some(e) = status_error(what, status, body) {
        return Err(e);
    }
    let v = parse_json(what, body)?;
    let auth = v
        .get("auth")
        .filter(|a| a.is_object())
        .ok_or_else(|| AuthError::Unavailable(format!("{what}: the answer has no auth")))?;
    let token = auth
        .get("client_token")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    if login && token.is_empty() {
        return Err(AuthError::Unavailable(format!(
            "{what}: the answer has no client_token"
        )));
    }
    if !token.bytes().all(|b| (0x21..=0x7e).contains(&b)) {
        return Err(AuthError::Unavailable(format!(
            "{what}: the issued token is not printable ASCII"
        )));
    }
    let lease_duration = auth
        .get("lease_duration")
        .and_then(Value::as_u64)
        .ok_or_else(|| {
            AuthError::Unavailable(format!("{what}: the answer has no lease_duration"))
        })?;
    Ok(Lease {
        token,
        lease_duration,
        renewable: auth
            .get("renewable")
            .and_then(Value::as_bool)
            .unwrap_or(false),
        policies: strings(auth.get("policies")),
    })
}

/// When to act on a lease of `ttl` seconds obtained at `now`: about two thirds of the way,
/// less up to a tenth of the lease as jitter (`seed` picks it). Never later than one second
/// before the end, never before `now + 1` for a lease of more than a second.
pub fn renew_at(now: u64, ttl: u64, seed: u64) -> u64 {
    if ttl == 0 {
        return u64::MAX;
    }
    let two_thirds = ttl.saturating_mul(2) / 3;
    let jitter_span = ttl / 10;
    let jitter = if jitter_span == 0 {
        0
    } else {
        mix(seed) % (jitter_span + 1)
    };
    let after = two_thirds.saturating_sub(jitter).clamp(1, ttl.max(2) - 1);
    now.saturating_add(after)
}

/// After `failures` failed attempts in a row: wait this many seconds (1, 1, 2, 4, ... 30), but
/// no more than half of what is left of the token (`left`, when it expires), so that
/// several attempts fit before its end.
pub fn backoff_seconds(failures: u32, left: Option<u64>) -> u64 {
    let exp = 1u64 << failures.saturating_sub(1).min(5);
    let b = exp.min(30);
    match left {
        Some(l) => b.min((l / 2).max(1)),
        None => b,
    }
}

/// A renewal gave back less than half of the lease of the login: the token is near its max
/// TTL, and the next step is a new login instead of another renewal.
pub fn near_max_ttl(renewed: u64, login_ttl: u64) -> bool {
    renewed == 0 || renewed.saturating_mul(2) < login_ttl
}

/// A non-renewable token is "near its end" (logged at error level) below this.
pub const NEAR_END_SECONDS: u64 = 300;

/// `2026-12-01T13:44:00Z` for seconds since the Unix epoch.
pub fn format_time(unix_secs: u64) -> String {
    let d = crate::sigv4::format_amz_date(unix_secs);
    match (
        d.get(0..4),
        d.get(4..6),
        d.get(6..8),
        d.get(9..11),
        d.get(11..13),
        d.get(13..15),
    ) {
        (Some(y), Some(mo), Some(da), Some(h), Some(mi), Some(s)) => {
            format!("{y}-{mo}-{da}T{h}:{mi}:{s}Z")
        }
        _ => format!("{unix_secs} (Unix time)"),
    }
}

/// A 64-bit mix (SplitMix64's finalizer): jitter from a seed such as the clock in ms.
pub fn mix(seed: u64) -> u64 {
    let mut z = seed.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// The token shared by the workers of one process (shared data), with what is known of it.
#[derive(Clone, PartialEq, Eq)]
pub struct SharedToken {
    pub token: String,
    /// When it expires (s); `u64::MAX` for never.
    pub expires_at: u64,
    pub renewable: bool,
    /// When the next renewal or login is due (s).
    pub renew_at: u64,
    /// The lease of the login that issued it (for [`near_max_ttl`]).
    pub login_ttl: u64,
    /// The next step at `renew_at` is a new login (renewal refused, or the max TTL near).
    pub relogin: bool,
    /// Bumped by each login and renewal, so that a worker can tell a newer record.
    pub serial: u64,
}

impl fmt::Debug for SharedToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SharedToken")
            .field("token", &"<redacted>")
            .field("expires_at", &self.expires_at)
            .field("renewable", &self.renewable)
            .field("renew_at", &self.renew_at)
            .field("login_ttl", &self.login_ttl)
            .field("relogin", &self.relogin)
            .field("serial", &self.serial)
            .finish()
    }
}

impl SharedToken {
    pub fn encode(&self) -> Vec<u8> {
        serde_json::json!({
            "token": self.token,
            "expires_at": self.expires_at,
            "renewable": self.renewable,
            "renew_at": self.renew_at,
            "login_ttl": self.login_ttl,
            "relogin": self.relogin,
            "serial": self.serial,
        })
        .to_string()
        .into_bytes()
    }

    pub fn decode(bytes: &[u8]) -> Option<SharedToken> {
        let v: Value = serde_json::from_slice(bytes).ok()?;
        let token = v.get("token")?.as_str()?.to_string();
        if token.is_empty() {
            return None;
        }
        Some(SharedToken {
            token,
            expires_at: v.get("expires_at")?.as_u64()?,
            renewable: v.get("renewable")?.as_bool()?,
            renew_at: v.get("renew_at")?.as_u64()?,
            login_ttl: v.get("login_ttl")?.as_u64()?,
            relogin: v.get("relogin")?.as_bool()?,
            serial: v.get("serial")?.as_u64()?,
        })
    }

    /// Seconds left at `now` (`None`: it never expires).
    pub fn left(&self, now: u64) -> Option<u64> {
        (self.expires_at != u64::MAX).then(|| self.expires_at.saturating_sub(now))
    }
}

/// The shared-data keys of a plugin configuration's token and of its login claim: named by
/// a digest of what identifies the credential (the AppRole mount and role id, or the
/// configured token), so two plugin configurations with different credentials never share,
/// and the key shows nothing of a secret.
pub fn shared_keys(identity: &str) -> (String, String) {
    use sha2::{Digest, Sha256};
    let d = Sha256::digest(identity.as_bytes());
    let h: String = d
        .get(..8)
        .unwrap_or(&[])
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    (
        format!("grant_sigv4/vault_token/v1/{h}"),
        format!("grant_sigv4/vault_token_claim/v1/{h}"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lookup_self_of_a_periodic_token() {
        let body = br#"{"data": {"accessor": "a", "ttl": 15, "renewable": true, "period": 15,
            "policies": ["default", "grant-sigv4-filter"], "id": "s.secret"}}"#;
        let i = parse_lookup_self(Some(200), body).unwrap();
        assert_eq!(i.ttl, 15);
        assert!(i.renewable);
        assert_eq!(i.period, Some(15));
        assert_eq!(i.policies, vec!["default", "grant-sigv4-filter"]);
        // A root token: ttl 0, never expires.
        let root = parse_lookup_self(Some(200), br#"{"data": {"ttl": 0, "renewable": false}}"#);
        assert_eq!(root.unwrap().ttl, 0);
    }

    #[test]
    fn refusals_are_denied_and_outages_unavailable() {
        let e = parse_lookup_self(Some(403), br#"{"errors": ["permission denied"]}"#).unwrap_err();
        assert_eq!(
            e,
            AuthError::Denied("token lookup: the vault refused (403: permission denied)".into())
        );
        let e = parse_auth(
            Some(400),
            br#"{"errors":["invalid role or secret ID"]}"#,
            true,
        );
        assert!(matches!(e, Err(AuthError::Denied(m)) if m.contains("invalid role or secret ID")));
        assert!(matches!(
            parse_auth(Some(404), b"{}", true),
            Err(AuthError::Denied(m)) if m.contains("no such path")
        ));
        assert!(matches!(
            parse_auth(None, b"", true),
            Err(AuthError::Unavailable(_))
        ));
        assert!(matches!(
            parse_auth(Some(503), b"sealed", false),
            Err(AuthError::Unavailable(m)) if m.contains("503")
        ));
        assert!(matches!(
            parse_auth(Some(200), b"<html>", true),
            Err(AuthError::Unavailable(m)) if m.contains("not JSON")
        ));
        assert!(matches!(
            parse_auth(Some(200), br#"{"auth": {"lease_duration": 5}}"#, true),
            Err(AuthError::Unavailable(m)) if m.contains("client_token")
        ));
        let big = vec![b' '; MAX_AUTH_RESPONSE_BYTES + 1];
        assert!(matches!(
            parse_auth(Some(200), &big, true),
            Err(AuthError::Unavailable(m)) if m.contains("too large")
        ));
    }

    #[test]
    fn login_and_renewal_answers() {
        let body = br#"{"auth": {"client_token": "s.tok", "accessor": "x", "lease_duration": 10,
            "renewable": true, "policies": ["default", "grant-sigv4-filter"]}}"#;
        let l = parse_auth(Some(200), body, true).unwrap();
        assert_eq!(l.token, "s.tok");
        assert_eq!(l.lease_duration, 10);
        assert!(l.renewable);
        assert!(!format!("{l:?}").contains("s.tok"));
        // renew-self may not repeat the token.
        let r = parse_auth(
            Some(200),
            br#"{"auth": {"lease_duration": 15, "renewable": true}}"#,
            false,
        )
        .unwrap();
        assert_eq!((r.token.as_str(), r.lease_duration), ("", 15));
        // A token with a control character never reaches a header.
        let bad = br#"{"auth": {"client_token": "a\nb", "lease_duration": 10}}"#;
        assert!(parse_auth(Some(200), bad, true).is_err());
    }

    #[test]
    fn renewal_at_about_two_thirds_with_jitter() {
        let mut seen = std::collections::HashSet::new();
        for seed in 0..500 {
            let at = renew_at(1000, 15, seed);
            // 2/3 of 15 = 10, less up to 1 (a tenth of 15).
            assert!((1009..=1010).contains(&at), "{at}");
            seen.insert(at);
            let at = renew_at(0, 3600, seed);
            assert!((2040..=2400).contains(&at), "{at}");
        }
        assert_eq!(seen.len(), 2, "the jitter spreads renewals");
        assert_eq!(renew_at(5, 0, 1), u64::MAX, "a token that never expires");
        assert_eq!(renew_at(5, 1, 1), 6);
        assert_eq!(renew_at(5, 2, 1), 6);
    }

    #[test]
    fn backoff_grows_and_fits_before_the_end() {
        let b: Vec<u64> = (0..8).map(|f| backoff_seconds(f, None)).collect();
        assert_eq!(b, vec![1, 1, 2, 4, 8, 16, 30, 30]);
        assert_eq!(backoff_seconds(6, Some(10)), 5);
        assert_eq!(backoff_seconds(6, Some(0)), 1);
    }

    #[test]
    fn max_ttl_near_when_a_renewal_gives_back_less_than_half() {
        assert!(!near_max_ttl(10, 10));
        assert!(!near_max_ttl(5, 10));
        assert!(near_max_ttl(4, 10));
        assert!(near_max_ttl(0, 10));
    }

    #[test]
    fn shared_token_round_trips_and_hides_the_token() {
        let t = SharedToken {
            token: "s.abc".into(),
            expires_at: 100,
            renewable: true,
            renew_at: 90,
            login_ttl: 10,
            relogin: false,
            serial: 3,
        };
        assert_eq!(SharedToken::decode(&t.encode()), Some(t.clone()));
        assert!(!format!("{t:?}").contains("s.abc"));
        assert_eq!(SharedToken::decode(b""), None);
        assert_eq!(SharedToken::decode(br#"{"token": ""}"#), None);
        assert_eq!(t.left(40), Some(60));
        let (k, c) = shared_keys("approle/role-1");
        assert!(k.starts_with("grant_sigv4/vault_token/v1/") && k.len() == 27 + 16);
        assert_ne!(k, c);
        assert_ne!(shared_keys("approle/role-2").0, k);
    }

    #[test]
    fn login_body_is_json() {
        let b = login_body("r\"1", "s");
        let v: Value = serde_json::from_slice(&b).unwrap();
        assert_eq!(v["role_id"], "r\"1");
        assert_eq!(v["secret_id"], "s");
        assert_eq!(login_path("approle"), "/v1/auth/approle/login");
    }

    #[test]
    fn times_read_as_rfc3339() {
        assert_eq!(format_time(0), "1970-01-01T00:00:00Z");
        assert_eq!(format_time(1_700_000_000), "2023-11-14T22:13:20Z");
    }
}
