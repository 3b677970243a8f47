//! A minimal Vault/OpenBao HTTP client: address and token from the environment, JSON in
//! and out, and error messages that never hold the token.

use crate::CliError;
use serde_json::Value;
use std::time::Duration;

/// Where to reach the vault and with which token.
pub struct Settings {
    pub addr: String,
    pub token: String,
    pub namespace: Option<String>,
    pub ca_cert: Option<String>,
}

fn env_nonempty(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

impl Settings {
    /// `VAULT_ADDR`/`BAO_ADDR`, `VAULT_TOKEN`/`BAO_TOKEN` (else `~/.vault-token`),
    /// `VAULT_NAMESPACE`/`BAO_NAMESPACE`, `VAULT_CACERT`/`BAO_CACERT`.
    pub fn from_env() -> Result<Settings, CliError> {
        let addr = env_nonempty("VAULT_ADDR")
            .or_else(|| env_nonempty("BAO_ADDR"))
            .ok_or_else(|| {
                CliError::Usage(
                    "VAULT_ADDR is not set (nor BAO_ADDR): export VAULT_ADDR=https://vault.example:8200"
                        .into(),
                )
            })?;
        let addr = addr.trim().trim_end_matches('/').to_string();
        if !(addr.starts_with("http://") || addr.starts_with("https://")) {
            return Err(CliError::Usage(format!(
                "VAULT_ADDR {addr:?} must start with https:// (or http:// for a local dev server)"
            )));
        }
        let token = match env_nonempty("VAULT_TOKEN").or_else(|| env_nonempty("BAO_TOKEN")) {
            Some(t) => t,
            None => std::env::var_os("HOME")
                .map(|h| std::path::Path::new(&h).join(".vault-token"))
                .and_then(|p| std::fs::read_to_string(p).ok())
                .map(|t| t.trim().to_string())
                .filter(|t| !t.is_empty())
                .ok_or_else(|| {
                    CliError::Usage(
                        "VAULT_TOKEN is not set (nor BAO_TOKEN, nor ~/.vault-token)".into(),
                    )
                })?,
        };
        let token = token.trim().to_string();
        if token.bytes().any(|b| !(0x21..=0x7e).contains(&b)) {
            return Err(CliError::Usage(
                "VAULT_TOKEN holds spaces or characters that cannot be sent in a header".into(),
            ));
        }
        Ok(Settings {
            addr,
            token,
            namespace: env_nonempty("VAULT_NAMESPACE").or_else(|| env_nonempty("BAO_NAMESPACE")),
            ca_cert: env_nonempty("VAULT_CACERT").or_else(|| env_nonempty("BAO_CACERT")),
        })
    }
}

/// Whether `addr` (`scheme://host[:port][/...]`) names this machine.
pub fn is_loopback(addr: &str) -> bool {
    let rest = addr.split_once("://").map_or(addr, |(_, r)| r);
    let authority = rest.split('/').next().unwrap_or("");
    let host = if let Some(v6) = authority.strip_prefix('[') {
        v6.split(']').next().unwrap_or("")
    } else {
        authority.split(':').next().unwrap_or("")
    };
    host == "localhost"
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// One answer of the vault.
pub struct Answer {
    pub status: u16,
    pub body: Value,
}

impl Answer {
    /// The `errors` array Vault puts in a failed answer, joined.
    pub fn errors(&self) -> String {
        let joined = self
            .body
            .get("errors")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(Value::as_str)
                    .collect::<Vec<_>>()
                    .join("; ")
            })
            .unwrap_or_default();
        let one_line: String = joined
            .chars()
            .map(|c| if c.is_control() { ' ' } else { c })
            .collect();
        if one_line.chars().count() > 300 {
            one_line.chars().take(300).collect::<String>() + "..."
        } else {
            one_line
        }
    }

    /// A 404 that means "no such engine or route", not "no such secret".
    pub fn is_no_route(&self) -> bool {
        self.errors().contains("no handler for route")
    }
}

pub struct Vault {
    agent: ureq::Agent,
    settings: Settings,
}

pub enum Method {
    Get,
    Post,
    Delete,
}

impl Method {
    fn name(&self) -> &'static str {
        match self {
            Method::Get => "GET",
            Method::Post => "POST",
            Method::Delete => "DELETE",
        }
    }
}

impl Vault {
    pub fn new(settings: Settings) -> Result<Vault, CliError> {
        let mut config = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_connect(Some(Duration::from_secs(10)))
            .timeout_global(Some(Duration::from_secs(30)))
            .user_agent(concat!("grantctl/", env!("CARGO_PKG_VERSION")));
        if let Some(path) = &settings.ca_cert {
            let pem = std::fs::read(path).map_err(|e| {
                CliError::Usage(format!("VAULT_CACERT {path:?} cannot be read: {e}"))
            })?;
            let mut certs = Vec::new();
            for item in ureq::tls::parse_pem(&pem) {
                match item {
                    Ok(ureq::tls::PemItem::Certificate(c)) => certs.push(c),
                    Ok(_) => {}
                    Err(e) => {
                        return Err(CliError::Usage(format!(
                            "VAULT_CACERT {path:?} is not PEM: {e}"
                        )))
                    }
                }
            }
            if certs.is_empty() {
                return Err(CliError::Usage(format!(
                    "VAULT_CACERT {path:?} holds no certificate"
                )));
            }
            config = config.tls_config(
                ureq::tls::TlsConfig::builder()
                    .root_certs(ureq::tls::RootCerts::new_with_certs(&certs))
                    .build(),
            );
        }
        if settings.addr.starts_with("http://") && !is_loopback(&settings.addr) {
            eprintln!(
                "grantctl: warning: VAULT_ADDR uses plain http to another machine: the token \
                 and any key travel unencrypted"
            );
        }
        Ok(Vault {
            agent: config.build().new_agent(),
            settings,
        })
    }

    pub fn addr(&self) -> &str {
        &self.settings.addr
    }

    /// Send one request to `path` (starting with `/v1/`); any HTTP status is an [`Answer`],
    /// only a transport failure is an error.
    pub fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Answer, CliError> {
        let url = format!("{}{}", self.settings.addr, path);
        let ns = self.settings.namespace.as_deref();
        let token = self.settings.token.as_str();
        let result = match (&method, body) {
            (Method::Post, b) => {
                let mut r = self
                    .agent
                    .post(&url)
                    .header("X-Vault-Token", token)
                    .header("Content-Type", "application/json");
                if let Some(ns) = ns {
                    r = r.header("X-Vault-Namespace", ns);
                }
                let text = b.map_or_else(|| "{}".to_string(), Value::to_string);
                r.send(text)
            }
            (Method::Get, _) | (Method::Delete, _) => {
                let mut r = match method {
                    Method::Delete => self.agent.delete(&url),
                    _ => self.agent.get(&url),
                }
                .header("X-Vault-Token", token);
                if let Some(ns) = ns {
                    r = r.header("X-Vault-Namespace", ns);
                }
                r.call()
            }
        };
        let mut resp = result.map_err(|e| self.transport_error(&e))?;
        let status = resp.status().as_u16();
        let text = resp
            .body_mut()
            .with_config()
            .limit(4 * 1024 * 1024)
            .read_to_string()
            .map_err(|e| self.transport_error(&e))?;
        let body = if text.trim().is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).map_err(|_| {
                CliError::Vault(format!(
                    "{} {path} answered {status} with a body that is not JSON: is VAULT_ADDR \
                     ({}) a Vault/OpenBao server?",
                    method.name(),
                    self.settings.addr
                ))
            })?
        };
        let answer = Answer { status, body };
        if status == 403 {
            return Err(CliError::Vault(format!(
                "VAULT_TOKEN refused (403) for {} {path}: the token is invalid or expired, or \
                 its policies do not allow this path",
                method.name()
            )));
        }
        Ok(answer)
    }

    pub fn get(&self, path: &str) -> Result<Answer, CliError> {
        self.call(Method::Get, path, None)
    }

    pub fn post(&self, path: &str, body: &Value) -> Result<Answer, CliError> {
        self.call(Method::Post, path, Some(body))
    }

    pub fn delete(&self, path: &str) -> Result<Answer, CliError> {
        self.call(Method::Delete, path, None)
    }

    fn transport_error(&self, e: &ureq::Error) -> CliError {
        let addr = &self.settings.addr;
        let why = match e {
            ureq::Error::Io(io) if io.kind() == std::io::ErrorKind::ConnectionRefused => {
                "connection refused".to_string()
            }
            ureq::Error::ConnectionFailed => "connection failed".to_string(),
            ureq::Error::HostNotFound => "host not found".to_string(),
            ureq::Error::Timeout(t) => format!("timed out ({t})"),
            ureq::Error::Io(io) => format!("{io}"),
            other => {
                return CliError::Vault(format!("talking to VAULT_ADDR ({addr}) failed: {other}"))
            }
        };
        CliError::Vault(format!("VAULT_ADDR ({addr}) unreachable: {why}"))
    }

    /// A non-success answer as an error naming the request.
    pub fn unexpected(&self, what: &str, a: &Answer) -> CliError {
        let errors = a.errors();
        if errors.is_empty() {
            CliError::Vault(format!("{what}: the vault answered {}", a.status))
        } else {
            CliError::Vault(format!("{what}: the vault answered {}: {errors}", a.status))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_addresses() {
        assert!(is_loopback("http://127.0.0.1:8200"));
        assert!(is_loopback("http://localhost:8200/"));
        assert!(is_loopback("http://[::1]:8200"));
        assert!(is_loopback("http://127.1.2.3"));
        assert!(!is_loopback("http://vault.example:8200"));
        assert!(!is_loopback("http://10.0.0.1:8200"));
        assert!(!is_loopback("http://[2001:db8::1]:8200"));
    }

    #[test]
    fn errors_are_joined_and_cut() {
        let a = Answer {
            status: 400,
            body: serde_json::json!({"errors": ["one", "two\nlines"]}),
        };
        assert_eq!(a.errors(), "one; two lines");
        let a = Answer {
            status: 500,
            body: serde_json::json!({"errors": ["x".repeat(400)]}),
        };
        assert_eq!(a.errors().chars().count(), 303);
        let a = Answer {
            status: 404,
            body: serde_json::json!({"errors": ["no handler for route \"x/data/a\". route entry not found."]}),
        };
        assert!(a.is_no_route());
    }
}
