//! The plugin configuration: JSON in the Wasm filter's `configuration`, parsed once in
//! `on_configure`. Every error names the key at fault, so a bad configuration fails plugin
//! start with a log line that says what to fix.
//!
//! ```json
//! {"grant_header": "x-grant-id",
//!  "vault": {"cluster": "vault", "authority": "vault", "token": "...",
//!            "kv_mount": "secret", "path_prefix": "aws/grants/", "timeout_ms": 2000},
//!  "cache": {"ttl_seconds": 300, "max_stale_seconds": 900, "negative_ttl_seconds": 10,
//!            "refresh_ahead_seconds": 60, "min_refetch_seconds": 5,
//!            "max_grants": 4096, "max_unknown_grants": 4096},
//!  "new_grant_fetches": {"per_second": 50, "burst": 100},
//!  "s3_payload": "unsigned", "grant_from_access_key_id": false,
//!  "max_body_bytes": 8388608}
//! ```

use serde_json::{Map, Value};
use std::collections::BTreeMap;
use std::fmt;

/// How S3 request bodies are covered by the signature.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum S3Payload {
    /// `UNSIGNED-PAYLOAD` (default): bodies stream through without buffering.
    Unsigned,
    /// The body's SHA-256 is signed (it must be known when the headers arrive).
    Signed,
}

/// What an instance of the filter does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Fetch the grant's key and sign (default).
    Sign,
    /// Only refuse requests that would be refused anyway, before the body hasher buffers
    /// their body. Needs no vault settings.
    Precheck,
}

/// How the filter authenticates its callouts to the vault (`vault.auth.method`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AuthMethod {
    /// A Vault token (`vault.token` or `vault.token_env`), sent as `X-Vault-Token`.
    Token,
    /// No token: the vault cluster is a local Vault or OpenBao Proxy that authenticates
    /// itself and adds its own token (`api_proxy { use_auto_auth_token = "force" }`).
    Proxy,
    /// The filter logs in with AppRole (`vault.auth.role_id`, `secret_id_env` or
    /// `secret_id`; see [`AppRoleConfig`]) and renews or replaces its token itself.
    AppRole,
}

impl AuthMethod {
    /// The name in the configuration and in the start-up log line.
    pub fn as_str(self) -> &'static str {
        match self {
            AuthMethod::Token => "token",
            AuthMethod::Proxy => "proxy",
            AuthMethod::AppRole => "approle",
        }
    }
}

#[derive(Clone, PartialEq, Eq)]
pub struct VaultConfig {
    /// Envoy cluster that reaches the vault.
    pub cluster: String,
    /// `:authority` of the callout.
    pub authority: String,
    /// How callouts are authenticated.
    pub auth: AuthMethod,
    /// Vault token (method `token` only; empty with `proxy`), sent as `X-Vault-Token` on the callout only. Either given inline
    /// (`token`, visible in Envoy's /config_dump) or read at start from an environment
    /// variable of the VM (`token_env`; see [`Config::resolve_token`]).
    pub token: String,
    /// The environment variable `token` is read from, when configured so.
    pub token_env: Option<String>,
    /// The generic secret of Envoy's SDS that holds the token (`vault.token_sds`, the
    /// dynamic module only): then `token` is what the host last read from it.
    pub token_sds: Option<crate::token_sds::SdsSecret>,
    /// The AppRole login (method `approle` only).
    pub approle: Option<AppRoleConfig>,
    /// KV version 2 mount.
    pub kv_mount: String,
    /// Prefix of grant paths under the mount.
    pub path_prefix: String,
    /// Callout timeout (never 0: Envoy takes 0 as "no timeout").
    pub timeout_ms: u64,
}

impl fmt::Debug for VaultConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VaultConfig")
            .field("cluster", &self.cluster)
            .field("authority", &self.authority)
            .field("auth", &self.auth)
            .field("token", &"<redacted>")
            .field("token_env", &self.token_env)
            .field("token_sds", &self.token_sds)
            .field("approle", &self.approle)
            .field("kv_mount", &self.kv_mount)
            .field("path_prefix", &self.path_prefix)
            .field("timeout_ms", &self.timeout_ms)
            .finish()
    }
}

/// `vault.auth` with method `approle`: `POST /v1/auth/<mount>/login` with the role id and
/// the secret id.
#[derive(Clone, PartialEq, Eq)]
pub struct AppRoleConfig {
    /// Where the AppRole auth method is mounted (default `approle`).
    pub mount: String,
    pub role_id: String,
    /// The secret id, given inline (`secret_id`, visible in /config_dump) or read at start
    /// from the VM's environment (`secret_id_env`, see [`Config::resolve_token`]).
    pub secret_id: String,
    pub secret_id_env: Option<String>,
}

impl fmt::Debug for AppRoleConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AppRoleConfig")
            .field("mount", &self.mount)
            .field("role_id", &self.role_id)
            .field("secret_id", &"<redacted>")
            .field("secret_id_env", &self.secret_id_env)
            .finish()
    }
}

/// `vault.auth` of method `approle`, read from its JSON object.
fn parse_approle(a: &mut Obj<'_>) -> Result<AppRoleConfig, ConfigError> {
    let mount = a.string("mount", Some("approle"))?;
    let mount = mount.trim_matches('/').to_string();
    if mount.is_empty() || !is_path_part(&mount) {
        return Err(err(
            "vault.auth.mount",
            "must be a mount path such as \"approle\"",
        ));
    }
    let role_id = a.string("role_id", None)?;
    if !is_token_text(&role_id) {
        return Err(err(
            "vault.auth.role_id",
            "must be printable ASCII without spaces",
        ));
    }
    let inline = match a.get("secret_id") {
        None => None,
        Some(Value::String(t)) if is_token_text(t) => Some(t.clone()),
        Some(_) => {
            return Err(err(
                "vault.auth.secret_id",
                "must be a non-empty string of printable ASCII without spaces",
            ))
        }
    };
    let secret_id_env = match a.get("secret_id_env") {
        None => None,
        Some(Value::String(n)) if is_env_name(n) => Some(n.clone()),
        Some(_) => {
            return Err(err(
                "vault.auth.secret_id_env",
                "must be an environment variable name (A-Z, 0-9, '_')",
            ))
        }
    };
    let secret_id = match (inline, &secret_id_env) {
        (Some(_), Some(_)) => {
            return Err(err(
                "vault.auth.secret_id",
                "give vault.auth.secret_id or vault.auth.secret_id_env, not both",
            ))
        }
        (Some(t), None) => t,
        (None, Some(_)) => String::new(),
        (None, None) => {
            return Err(err(
                "vault.auth.secret_id_env",
                "is required with method \"approle\" (or vault.auth.secret_id)",
            ))
        }
    };
    Ok(AppRoleConfig {
        mount,
        role_id,
        secret_id,
        secret_id_env,
    })
}

fn is_token_text(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| (0x21..=0x7e).contains(&b))
}

fn is_env_name(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CacheConfig {
    /// How long a fetched static credential is used before it is fetched again.
    pub ttl_seconds: u64,
    /// How long past its TTL a static credential is still served while the vault is down.
    pub max_stale_seconds: u64,
    /// How long "no such grant" is remembered.
    pub negative_ttl_seconds: u64,
    /// A credential is refreshed in the background this long before it expires (dynamic
    /// credentials: before their lease ends), so that no request waits on the refresh.
    pub refresh_ahead_seconds: u64,
    /// After AWS refused a grant's key, it is fetched again — but not more often than this.
    pub min_refetch_seconds: u64,
    /// Most grants kept per worker; past this the least recently used is dropped.
    pub max_grants: u64,
    /// Most "no such grant" answers kept per worker; past this the least recently used is
    /// dropped.
    pub max_unknown_grants: u64,
}

impl Default for CacheConfig {
    fn default() -> Self {
        CacheConfig {
            ttl_seconds: 300,
            max_stale_seconds: 900,
            negative_ttl_seconds: 10,
            refresh_ahead_seconds: 60,
            min_refetch_seconds: 5,
            max_grants: 4096,
            max_unknown_grants: 4096,
        }
    }
}

/// The limit on fetches of grants that are in no cache, for the whole Envoy process
/// (`new_grant_fetches`; see `engine/fetch_limit.rs`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FetchLimitConfig {
    /// Tokens gained per second.
    pub per_second: u64,
    /// Most tokens held (fetches that may start at once).
    pub burst: u64,
}

impl Default for FetchLimitConfig {
    fn default() -> Self {
        FetchLimitConfig {
            per_second: 50,
            burst: 100,
        }
    }
}

/// Signing name and region for a host whose name does not tell them (a custom domain in
/// front of API Gateway, a VPC endpoint alias, ...).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HostOverride {
    pub service: String,
    pub region: String,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Config {
    pub mode: Mode,
    /// Request header carrying the grant id (lowercase).
    pub grant_header: String,
    pub vault: VaultConfig,
    pub cache: CacheConfig,
    pub new_grant_fetches: FetchLimitConfig,
    pub s3_payload: S3Payload,
    /// Largest request body the filter lets through for services whose body is hashed.
    pub max_body_bytes: u64,
    /// Operator-set signing name and region per host (lowercase, no port).
    pub host_overrides: BTreeMap<String, HostOverride>,
    /// Whether clients may set the signing name and region of an AWS host with the
    /// `x-grant-service` / `x-grant-region` headers.
    pub request_overrides: bool,
    /// Whether a request without the grant header may name its grant as the access key id
    /// of a SigV4 `Authorization` the client made with a placeholder secret
    /// (`Credential=<grant id>/<date>/<region>/<service>/aws4_request`): unmodified AWS SDKs
    /// and CLIs then work with `AWS_ACCESS_KEY_ID=<grant id>`.
    pub grant_from_access_key_id: bool,
    /// Set when the filter runs as an upstream filter of the AWS cluster (once per attempt,
    /// so that a retry is signed again): the grant of a request is kept for its retries.
    pub upstream_filter: bool,
    /// Whether the answer to each signed request is checked for AWS refusing the key (its
    /// `:status`, then `x-amzn-errortype`), which drops the grant from the caches. When
    /// off, a refused key is used until its TTL ends.
    pub drop_refused_keys: bool,
    pub audit: AuditConfig,
}

/// Where the audit record of each request goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AuditConfig {
    /// A log line `grant_sigv4.audit {json}` (Envoy's `wasm` logger, level info).
    pub log: bool,
    /// Filter state `wasm.grant_sigv4_audit`, for Envoy's access log.
    pub filter_state: bool,
}

impl Default for AuditConfig {
    fn default() -> Self {
        AuditConfig {
            log: false,
            filter_state: true,
        }
    }
}

/// A configuration error, naming the key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigError {
    pub key: String,
    pub problem: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "invalid plugin configuration: key \"{}\": {}",
            self.key, self.problem
        )
    }
}

fn err(key: &str, problem: impl Into<String>) -> ConfigError {
    ConfigError {
        key: key.to_string(),
        problem: problem.into(),
    }
}

pub const DEFAULT_MAX_BODY_BYTES: u64 = 8 * 1024 * 1024;

/// Reads the keys of one JSON object, remembering which were used, so that unknown keys
/// (usually typos) are refused by name.
struct Obj<'a> {
    path: String,
    map: &'a Map<String, Value>,
    known: Vec<&'static str>,
}

impl<'a> Obj<'a> {
    fn new(path: &str, v: &'a Value) -> Result<Self, ConfigError> {
        match v {
            Value::Object(map) => Ok(Obj {
                path: path.to_string(),
                map,
                known: Vec::new(),
            }),
            _ => Err(err(
                if path.is_empty() { "(root)" } else { path },
                "must be a JSON object",
            )),
        }
    }

    fn key(&self, k: &str) -> String {
        if self.path.is_empty() {
            k.to_string()
        } else {
            format!("{}.{}", self.path, k)
        }
    }

    fn get(&mut self, k: &'static str) -> Option<&'a Value> {
        self.known.push(k);
        self.map.get(k)
    }

    fn string(&mut self, k: &'static str, default: Option<&str>) -> Result<String, ConfigError> {
        match self.get(k) {
            Some(Value::String(s)) if !s.is_empty() => Ok(s.clone()),
            Some(Value::String(_)) => Err(err(&self.key(k), "must not be empty")),
            Some(_) => Err(err(&self.key(k), "must be a string")),
            None => default
                .map(str::to_string)
                .ok_or_else(|| err(&self.key(k), "is required")),
        }
    }

    fn uint(
        &mut self,
        k: &'static str,
        default: u64,
        min: u64,
        max: u64,
    ) -> Result<u64, ConfigError> {
        match self.get(k) {
            None => Ok(default),
            Some(v) => match v.as_u64() {
                Some(n) if (min..=max).contains(&n) => Ok(n),
                _ => Err(err(
                    &self.key(k),
                    format!("must be an integer from {min} to {max}"),
                )),
            },
        }
    }

    fn boolean(&mut self, k: &'static str) -> Result<bool, ConfigError> {
        self.boolean_or(k, false)
    }

    fn boolean_or(&mut self, k: &'static str, default: bool) -> Result<bool, ConfigError> {
        match self.get(k) {
            None => Ok(default),
            Some(Value::Bool(b)) => Ok(*b),
            Some(_) => Err(err(&self.key(k), "must be true or false")),
        }
    }

    fn finish(self) -> Result<(), ConfigError> {
        for k in self.map.keys() {
            if !self.known.iter().any(|known| known == k) {
                return Err(err(&self.key(k), "unknown key"));
            }
        }
        Ok(())
    }
}

fn is_header_name(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
}

/// A signing name or region: lowercase letters, digits and '-'.
pub fn is_signing_name_or_region(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

fn is_host_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 253
        && s.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        })
}

fn parse_host_overrides(v: Option<&Value>) -> Result<BTreeMap<String, HostOverride>, ConfigError> {
    let mut out = BTreeMap::new();
    let Some(v) = v else {
        return Ok(out);
    };
    let Value::Object(map) = v else {
        return Err(err(
            "host_overrides",
            "must be a JSON object of host -> {service, region}",
        ));
    };
    for (host, entry) in map {
        let key = format!("host_overrides.{host}");
        if !is_host_name(host) {
            return Err(err(&key, "must be a lowercase host name without port"));
        }
        let mut o = Obj::new(&key, entry)?;
        let service = o.string("service", None)?;
        let region = o.string("region", None)?;
        o.finish()?;
        if !is_signing_name_or_region(&service) {
            return Err(err(
                &format!("{key}.service"),
                "must be a signing name (a-z, 0-9, '-')",
            ));
        }
        if !is_signing_name_or_region(&region) {
            return Err(err(
                &format!("{key}.region"),
                "must be a region name (a-z, 0-9, '-')",
            ));
        }
        out.insert(host.clone(), HostOverride { service, region });
    }
    Ok(out)
}

fn is_path_part(s: &str) -> bool {
    s.bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'/'))
        && !s.split('/').any(|seg| seg == "." || seg == "..")
}

impl Config {
    /// Fill in the Vault token from the VM's environment when `vault.token_env` names a
    /// variable (`lookup` is `std::env::var` in the filter). Keeps the token out of the
    /// plugin configuration and so out of Envoy's /config_dump.
    /// Also fills in the AppRole secret id from `vault.auth.secret_id_env`.
    pub fn resolve_token(
        &mut self,
        lookup: impl Fn(&str) -> Option<String>,
    ) -> Result<(), ConfigError> {
        if let Some(a) = self.vault.approle.as_mut() {
            if let Some(name) = a.secret_id_env.clone() {
                a.secret_id = match lookup(&name) {
                    Some(t) if is_token_text(&t) => t,
                    Some(_) => {
                        return Err(err(
                            "vault.auth.secret_id_env",
                            format!("environment variable {name} is empty or not printable ASCII"),
                        ))
                    }
                    None => {
                        return Err(err(
                            "vault.auth.secret_id_env",
                            format!(
                                "environment variable {name} is not set in the VM: list it in \
                                 vm_config.environment_variables.host_env_keys"
                            ),
                        ))
                    }
                };
            }
        }
        let Some(name) = self.vault.token_env.clone() else {
            return Ok(());
        };
        match lookup(&name) {
            Some(t) if !t.is_empty() && t.bytes().all(|b| (0x21..=0x7e).contains(&b)) => {
                self.vault.token = t;
                Ok(())
            }
            Some(_) => Err(err(
                "vault.token_env",
                format!("environment variable {name} is empty or not printable ASCII"),
            )),
            None => Err(err(
                "vault.token_env",
                format!(
                    "environment variable {name} is not set in the VM: list it in \
                     vm_config.environment_variables.host_env_keys"
                ),
            )),
        }
    }

    /// Parse the plugin configuration.
    pub fn parse(bytes: &[u8]) -> Result<Config, ConfigError> {
        let root: Value = serde_json::from_slice(bytes)
            .map_err(|e| err("(root)", format!("not valid JSON ({e})")))?;
        let mut top = Obj::new("", &root)?;

        let grant_header = top.string("grant_header", Some("x-grant-id"))?;
        if !is_header_name(&grant_header) {
            return Err(err(
                "grant_header",
                "must be a lowercase HTTP header name (a-z, 0-9, '-', '_')",
            ));
        }

        let mode = match top.string("mode", Some("sign"))?.as_str() {
            "sign" => Mode::Sign,
            "precheck" => Mode::Precheck,
            _ => return Err(err("mode", "must be \"sign\" or \"precheck\"")),
        };
        let empty = Value::Object(Map::new());
        let vault_v = match (top.get("vault"), mode) {
            (Some(v), _) => v,
            (None, Mode::Precheck) => &empty,
            (None, Mode::Sign) => return Err(err("vault", "is required")),
        };
        let mut v = Obj::new("vault", vault_v)?;
        let cluster = v.string("cluster", Some("vault"))?;
        let authority = v.string("authority", Some("vault"))?;
        let inline = match v.get("token") {
            None => None,
            Some(Value::String(t)) if !t.is_empty() => Some(t.clone()),
            Some(_) => return Err(err("vault.token", "must be a non-empty string")),
        };
        let token_env = match v.get("token_env") {
            None => None,
            Some(Value::String(n))
                if !n.is_empty() && n.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') =>
            {
                Some(n.clone())
            }
            Some(_) => {
                return Err(err(
                    "vault.token_env",
                    "must be an environment variable name (A-Z, 0-9, '_')",
                ))
            }
        };
        let token_sds =
            crate::token_sds::parse(v.get("token_sds")).map_err(|m| err("vault.token_sds", m))?;
        let (auth, approle) = match v.get("auth") {
            None => (AuthMethod::Token, None),
            Some(av) => {
                let mut a = Obj::new("vault.auth", av)?;
                let method = match a.string("method", None)?.as_str() {
                    "token" => AuthMethod::Token,
                    "proxy" => AuthMethod::Proxy,
                    "approle" => AuthMethod::AppRole,
                    _ => {
                        return Err(err(
                            "vault.auth.method",
                            "must be \"token\", \"approle\" or \"proxy\"",
                        ))
                    }
                };
                let approle = match method {
                    AuthMethod::AppRole => Some(parse_approle(&mut a)?),
                    _ => None,
                };
                a.finish()?;
                (method, approle)
            }
        };
        if auth != AuthMethod::Token {
            if let Some(key) = [
                ("vault.token", inline.is_some()),
                ("vault.token_env", token_env.is_some()),
                ("vault.token_sds", token_sds.is_some()),
            ]
            .into_iter()
            .find_map(|(k, set)| set.then_some(k))
            {
                let why = match auth {
                    AuthMethod::AppRole => {
                        "must not be set with vault.auth.method \"approle\": the filter logs in \
                         and uses the token it is given"
                    }
                    _ => {
                        "must not be set with vault.auth.method \"proxy\": the proxy adds its \
                         own token, and the filter sends none"
                    }
                };
                return Err(err(key, why));
            }
        }
        if token_sds.is_some() && (inline.is_some() || token_env.is_some()) {
            return Err(err(
                "vault.token_sds",
                "give one of vault.token, vault.token_env and vault.token_sds",
            ));
        }
        let token = match (inline, &token_env, mode) {
            _ if auth != AuthMethod::Token || token_sds.is_some() => String::new(),
            (Some(_), Some(_), _) => {
                return Err(err(
                    "vault.token",
                    "give vault.token or vault.token_env, not both",
                ))
            }
            (Some(t), None, _) => t,
            (None, Some(_), _) => String::new(),
            (None, None, Mode::Precheck) => String::new(),
            (None, None, Mode::Sign) => {
                return Err(err(
                    "vault.token",
                    "is required (or vault.token_env, or vault.token_sds)",
                ))
            }
        };
        if token.bytes().any(|b| !(0x21..=0x7e).contains(&b)) {
            return Err(err("vault.token", "must be printable ASCII without spaces"));
        }
        let kv_mount = v.string("kv_mount", Some("secret"))?;
        let kv_mount = kv_mount.trim_matches('/').to_string();
        if kv_mount.is_empty() || !is_path_part(&kv_mount) {
            return Err(err(
                "vault.kv_mount",
                "must be a mount path such as \"secret\"",
            ));
        }
        let path_prefix = match v.get("path_prefix") {
            None => "aws/grants/".to_string(),
            Some(Value::String(s)) => s.trim_start_matches('/').to_string(),
            Some(_) => return Err(err("vault.path_prefix", "must be a string")),
        };
        if !is_path_part(&path_prefix) {
            return Err(err(
                "vault.path_prefix",
                "may hold only letters, digits, '-', '_', '.', '/'",
            ));
        }
        let timeout_ms = v.uint("timeout_ms", 2000, 1, 60_000)?;
        v.finish()?;

        let cache = match top.get("cache") {
            None => CacheConfig::default(),
            Some(cv) => {
                let d = CacheConfig::default();
                let mut c = Obj::new("cache", cv)?;
                let ttl_seconds = c.uint("ttl_seconds", d.ttl_seconds, 1, 86_400)?;
                let max_stale_seconds =
                    c.uint("max_stale_seconds", d.max_stale_seconds, 0, 86_400)?;
                let negative_ttl_seconds =
                    c.uint("negative_ttl_seconds", d.negative_ttl_seconds, 0, 3_600)?;
                let refresh_ahead_seconds =
                    c.uint("refresh_ahead_seconds", d.refresh_ahead_seconds, 0, 3_600)?;
                let min_refetch_seconds =
                    c.uint("min_refetch_seconds", d.min_refetch_seconds, 0, 3_600)?;
                let max_grants = c.uint("max_grants", d.max_grants, 1, 1_000_000)?;
                let max_unknown_grants =
                    c.uint("max_unknown_grants", d.max_unknown_grants, 1, 1_000_000)?;
                c.finish()?;
                if refresh_ahead_seconds >= ttl_seconds {
                    return Err(err(
                        "cache.refresh_ahead_seconds",
                        "must be less than cache.ttl_seconds",
                    ));
                }
                CacheConfig {
                    ttl_seconds,
                    max_stale_seconds,
                    negative_ttl_seconds,
                    refresh_ahead_seconds,
                    min_refetch_seconds,
                    max_grants,
                    max_unknown_grants,
                }
            }
        };
        let new_grant_fetches = match top.get("new_grant_fetches") {
            None => FetchLimitConfig::default(),
            Some(fv) => {
                let d = FetchLimitConfig::default();
                let mut f = Obj::new("new_grant_fetches", fv)?;
                let per_second = f.uint("per_second", d.per_second, 1, 1_000_000)?;
                let burst = f.uint("burst", d.burst, 1, 1_000_000)?;
                f.finish()?;
                FetchLimitConfig { per_second, burst }
            }
        };

        let s3_payload = match top.string("s3_payload", Some("unsigned"))?.as_str() {
            "unsigned" => S3Payload::Unsigned,
            "signed" => S3Payload::Signed,
            _ => return Err(err("s3_payload", "must be \"unsigned\" or \"signed\"")),
        };
        let max_body_bytes = top.uint("max_body_bytes", DEFAULT_MAX_BODY_BYTES, 0, 1 << 32)?;
        let host_overrides = parse_host_overrides(top.get("host_overrides"))?;
        let request_overrides = top.boolean("request_overrides")?;
        let grant_from_access_key_id = top.boolean("grant_from_access_key_id")?;
        let upstream_filter = top.boolean("upstream_filter")?;
        let drop_refused_keys = top.boolean_or("drop_refused_keys", true)?;
        if upstream_filter && !drop_refused_keys {
            return Err(err(
                "drop_refused_keys",
                "must be true with upstream_filter (a retry is signed again only after the refused key is dropped)",
            ));
        }
        let audit = match top.get("audit") {
            None => AuditConfig::default(),
            Some(av) => {
                let mut a = Obj::new("audit", av)?;
                let d = AuditConfig::default();
                let log = a.boolean_or("log", d.log)?;
                let filter_state = a.boolean_or("filter_state", d.filter_state)?;
                a.finish()?;
                AuditConfig { log, filter_state }
            }
        };
        top.finish()?;

        Ok(Config {
            mode,
            grant_header,
            vault: VaultConfig {
                cluster,
                authority,
                auth,
                token,
                token_env,
                token_sds,
                approle,
                kv_mount,
                path_prefix,
                timeout_ms,
            },
            cache,
            new_grant_fetches,
            s3_payload,
            max_body_bytes,
            host_overrides,
            request_overrides,
            grant_from_access_key_id,
            upstream_filter,
            drop_refused_keys,
            audit,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Result<Config, ConfigError> {
        Config::parse(s.as_bytes())
    }

    #[test]
    fn full_example_parses() {
        let c = parse(
            r#"{"grant_header": "x-grant-id", "vault": {"cluster": "vault", "authority": "vault",
            "token": "root-token", "kv_mount": "secret", "path_prefix": "aws/grants/", "timeout_ms": 2000},
            "cache": {"ttl_seconds": 300}}"#,
        )
        .unwrap();
        assert_eq!(c.grant_header, "x-grant-id");
        assert_eq!(c.vault.token, "root-token");
        assert_eq!(c.vault.kv_mount, "secret");
        assert_eq!(c.vault.path_prefix, "aws/grants/");
        assert_eq!(c.vault.timeout_ms, 2000);
        assert_eq!(c.cache.ttl_seconds, 300);
        assert_eq!(c.s3_payload, S3Payload::Unsigned);
        assert_eq!(c.max_body_bytes, DEFAULT_MAX_BODY_BYTES);
    }

    #[test]
    fn minimal_needs_only_the_token() {
        let c = parse(r#"{"vault": {"token": "t"}}"#).unwrap();
        assert_eq!(c.vault.cluster, "vault");
        assert_eq!(c.grant_header, "x-grant-id");
        assert!(!c.grant_from_access_key_id);
    }

    #[test]
    fn grant_from_access_key_id_is_a_boolean() {
        let c = parse(r#"{"vault": {"token": "t"}, "grant_from_access_key_id": true}"#).unwrap();
        assert!(c.grant_from_access_key_id);
        let e = parse(r#"{"vault": {"token": "t"}, "grant_from_access_key_id": 1}"#).unwrap_err();
        assert_eq!(e.key, "grant_from_access_key_id");
    }

    #[test]
    fn errors_name_the_key() {
        let cases = [
            (r#"{}"#, "vault"),
            (r#"{"vault": {}}"#, "vault.token"),
            (r#"{"vault": {"token": ""}}"#, "vault.token"),
            (
                r#"{"vault": {"token": "t", "timeout_ms": 0}}"#,
                "vault.timeout_ms",
            ),
            (
                r#"{"vault": {"token": "t", "timeout_ms": "5"}}"#,
                "vault.timeout_ms",
            ),
            (r#"{"vault": {"token": "t", "tokn": "x"}}"#, "vault.tokn"),
            (
                r#"{"vault": {"token": "t"}, "cache": {"ttl_seconds": -1}}"#,
                "cache.ttl_seconds",
            ),
            (
                r#"{"vault": {"token": "t"}, "cache": {"ttl": 1}}"#,
                "cache.ttl",
            ),
            (
                r#"{"vault": {"token": "t"}, "grant_header": "X Grant"}"#,
                "grant_header",
            ),
            (
                r#"{"vault": {"token": "t"}, "s3_payload": "maybe"}"#,
                "s3_payload",
            ),
            (
                r#"{"vault": {"token": "t", "path_prefix": "../x/"}}"#,
                "vault.path_prefix",
            ),
            (r#"{"vault": {"token": "t"}, "extra": 1}"#, "extra"),
            (r#"[1]"#, "(root)"),
            (r#"{"#, "(root)"),
        ];
        for (json, key) in cases {
            let e = parse(json).unwrap_err();
            assert_eq!(e.key, key, "for {json}: {e}");
            assert!(e.to_string().contains(key));
        }
    }

    #[test]
    fn cache_bounds_and_new_grant_fetch_limit() {
        let d = parse(r#"{"vault": {"token": "t"}}"#).unwrap();
        assert_eq!(
            (d.cache.max_grants, d.cache.max_unknown_grants),
            (4096, 4096)
        );
        assert_eq!(
            d.new_grant_fetches,
            FetchLimitConfig {
                per_second: 50,
                burst: 100
            }
        );
        let c = parse(
            r#"{"vault": {"token": "t"}, "cache": {"max_grants": 10, "max_unknown_grants": 20},
            "new_grant_fetches": {"per_second": 5, "burst": 7}}"#,
        )
        .unwrap();
        assert_eq!((c.cache.max_grants, c.cache.max_unknown_grants), (10, 20));
        assert_eq!(
            c.new_grant_fetches,
            FetchLimitConfig {
                per_second: 5,
                burst: 7
            }
        );
        for (json, key) in [
            (r#"{"cache": {"max_grants": 0}}"#, "cache.max_grants"),
            (
                r#"{"new_grant_fetches": {"per_second": 0}}"#,
                "new_grant_fetches.per_second",
            ),
            (
                r#"{"new_grant_fetches": {"burst": -1}}"#,
                "new_grant_fetches.burst",
            ),
            (
                r#"{"new_grant_fetches": {"rate": 1}}"#,
                "new_grant_fetches.rate",
            ),
        ] {
            let full = json.replacen('{', r#"{"vault": {"token": "t"}, "#, 1);
            assert_eq!(parse(&full).unwrap_err().key, key, "{full}");
        }
    }

    #[test]
    fn host_overrides() {
        let c = parse(
            r#"{"vault": {"token": "t"}, "request_overrides": true,
            "host_overrides": {"api.example.com": {"service": "execute-api", "region": "eu-west-1"}}}"#,
        )
        .unwrap();
        assert!(c.request_overrides);
        assert_eq!(c.host_overrides["api.example.com"].service, "execute-api");
        for (json, key) in [
            (
                r#"{"API.example.com": {"service": "s", "region": "r"}}"#,
                "host_overrides.API.example.com",
            ),
            (
                r#"{"a.example.com": {"service": "S3", "region": "r"}}"#,
                "host_overrides.a.example.com.service",
            ),
            (
                r#"{"a.example.com": {"service": "s"}}"#,
                "host_overrides.a.example.com.region",
            ),
            (
                r#"{"a.example.com": {"service": "s", "region": "r", "x": 1}}"#,
                "host_overrides.a.example.com.x",
            ),
            (r#"[]"#, "host_overrides"),
        ] {
            let full = format!(r#"{{"vault": {{"token": "t"}}, "host_overrides": {json}}}"#);
            assert_eq!(parse(&full).unwrap_err().key, key, "{json}");
        }
        assert_eq!(
            parse(r#"{"vault": {"token": "t"}, "request_overrides": "yes"}"#)
                .unwrap_err()
                .key,
            "request_overrides"
        );
    }

    #[test]
    fn audit_settings() {
        let c = parse(r#"{"vault": {"token": "t"}}"#).unwrap();
        assert_eq!(
            c.audit,
            AuditConfig {
                log: false,
                filter_state: true
            }
        );
        let c = parse(r#"{"vault": {"token": "t"}, "audit": {"log": true}}"#).unwrap();
        assert!(c.audit.log && c.audit.filter_state);
        assert_eq!(
            parse(r#"{"vault": {"token": "t"}, "audit": {"log": 1}}"#)
                .unwrap_err()
                .key,
            "audit.log"
        );
    }

    #[test]
    fn drop_refused_keys_is_on_unless_turned_off() {
        assert!(
            parse(r#"{"vault": {"token": "t"}}"#)
                .unwrap()
                .drop_refused_keys
        );
        let c = parse(r#"{"vault": {"token": "t"}, "drop_refused_keys": false}"#).unwrap();
        assert!(!c.drop_refused_keys);
        let e = parse(
            r#"{"vault": {"token": "t"}, "upstream_filter": true, "drop_refused_keys": false}"#,
        )
        .unwrap_err();
        assert_eq!(e.key, "drop_refused_keys");
        assert!(e.problem.contains("upstream_filter"), "{}", e.problem);
    }

    #[test]
    fn precheck_needs_no_vault() {
        let c = parse(r#"{"mode": "precheck", "max_body_bytes": 10}"#).unwrap();
        assert_eq!(c.mode, Mode::Precheck);
        assert_eq!(c.max_body_bytes, 10);
        assert_eq!(parse(r#"{"mode": "both"}"#).unwrap_err().key, "mode");
        assert_eq!(parse(r#"{"mode": "sign"}"#).unwrap_err().key, "vault");
    }

    #[test]
    fn proxy_auth_sends_no_token_and_refuses_one() {
        let c = parse(r#"{"vault": {"auth": {"method": "proxy"}}}"#).unwrap();
        assert_eq!(c.vault.auth, AuthMethod::Proxy);
        assert_eq!(c.vault.token, "");
        let t = parse(r#"{"vault": {"token": "t", "auth": {"method": "token"}}}"#).unwrap();
        assert_eq!(
            (t.vault.auth, t.vault.token.as_str()),
            (AuthMethod::Token, "t")
        );
        for (json, key) in [
            (
                r#"{"vault": {"auth": {"method": "proxy"}, "token": "t"}}"#,
                "vault.token",
            ),
            (
                r#"{"vault": {"auth": {"method": "proxy"}, "token_env": "X"}}"#,
                "vault.token_env",
            ),
            (
                r#"{"vault": {"auth": {"method": "approle2"}}}"#,
                "vault.auth.method",
            ),
            (r#"{"vault": {"auth": {}}}"#, "vault.auth.method"),
            (
                r#"{"vault": {"auth": {"method": "proxy", "x": 1}}}"#,
                "vault.auth.x",
            ),
            (r#"{"vault": {"auth": {"method": "token"}}}"#, "vault.token"),
        ] {
            let e = parse(json).unwrap_err();
            assert_eq!(e.key, key, "{json}: {}", e.problem);
        }
        let e = parse(r#"{"vault": {"auth": {"method": "proxy"}, "token": "t"}}"#).unwrap_err();
        assert!(
            e.problem.contains("the proxy adds its own token"),
            "{}",
            e.problem
        );
    }

    #[test]
    fn approle_auth_reads_its_secret_id_from_the_environment_or_inline() {
        let mut c = parse(
            r#"{"vault": {"auth": {"method": "approle", "role_id": "r-1",
            "secret_id_env": "GRANT_SIGV4_SECRET_ID"}}}"#,
        )
        .unwrap();
        assert_eq!(c.vault.auth, AuthMethod::AppRole);
        c.resolve_token(|n| (n == "GRANT_SIGV4_SECRET_ID").then(|| "sid-1".to_string()))
            .unwrap();
        let a = c.vault.approle.clone().unwrap();
        assert_eq!(
            (a.mount.as_str(), a.role_id.as_str(), a.secret_id.as_str()),
            ("approle", "r-1", "sid-1")
        );
        assert!(
            !format!("{c:?}").contains("sid-1"),
            "the secret id is redacted"
        );
        let e = c.clone().resolve_token(|_| None).unwrap_err();
        assert_eq!(e.key, "vault.auth.secret_id_env");
        let inline = parse(
            r#"{"vault": {"auth": {"method": "approle", "mount": "/ar/", "role_id": "r",
            "secret_id": "s"}}}"#,
        )
        .unwrap();
        let a = inline.vault.approle.unwrap();
        assert_eq!((a.mount.as_str(), a.secret_id.as_str()), ("ar", "s"));
        for (json, key) in [
            (
                r#"{"method": "approle", "secret_id": "s"}"#,
                "vault.auth.role_id",
            ),
            (
                r#"{"method": "approle", "role_id": "r"}"#,
                "vault.auth.secret_id_env",
            ),
            (
                r#"{"method": "approle", "role_id": "r", "secret_id": "s", "secret_id_env": "E"}"#,
                "vault.auth.secret_id",
            ),
            (
                r#"{"method": "approle", "role_id": "r", "secret_id_env": "bad name"}"#,
                "vault.auth.secret_id_env",
            ),
            (
                r#"{"method": "approle", "role_id": "r", "secret_id": "s", "mount": "../x"}"#,
                "vault.auth.mount",
            ),
            (
                r#"{"method": "approle", "role_id": "r", "secret_id": "s", "role": "x"}"#,
                "vault.auth.role",
            ),
        ] {
            let e = parse(&format!(r#"{{"vault": {{"auth": {json}}}}}"#)).unwrap_err();
            assert_eq!(e.key, key, "{json}: {}", e.problem);
        }
        let e = parse(
            r#"{"vault": {"token": "t", "auth": {"method": "approle", "role_id": "r",
            "secret_id": "s"}}}"#,
        )
        .unwrap_err();
        assert_eq!(e.key, "vault.token");
        assert!(e.problem.contains("the filter logs in"), "{}", e.problem);
    }

    #[test]
    fn token_from_the_environment() {
        let mut c = parse(r#"{"vault": {"token_env": "GRANT_SIGV4_VAULT_TOKEN"}}"#).unwrap();
        assert_eq!(c.vault.token, "");
        c.resolve_token(|n| (n == "GRANT_SIGV4_VAULT_TOKEN").then(|| "s.abc".to_string()))
            .unwrap();
        assert_eq!(c.vault.token, "s.abc");
        let mut missing = parse(r#"{"vault": {"token_env": "NOPE"}}"#).unwrap();
        let e = missing.resolve_token(|_| None).unwrap_err();
        assert_eq!(e.key, "vault.token_env");
        assert!(e.problem.contains("host_env_keys"));
        assert_eq!(
            parse(r#"{"vault": {"token": "t", "token_env": "X"}}"#)
                .unwrap_err()
                .key,
            "vault.token"
        );
        assert_eq!(
            parse(r#"{"vault": {"token_env": "a-b"}}"#).unwrap_err().key,
            "vault.token_env"
        );
    }

    #[test]
    fn debug_never_shows_the_token() {
        let c = parse(r#"{"vault": {"token": "s.very-secret"}}"#).unwrap();
        assert!(!format!("{c:?}").contains("very-secret"));
    }
}
