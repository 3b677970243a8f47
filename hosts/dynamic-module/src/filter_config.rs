//! One filter configuration (one `DynamicModuleFilter` in Envoy's config), made on the main
//! thread when Envoy loads it and shared by every worker: the plugin configuration bytes
//! (each worker's engine parses them), the namespace of its shared data, and its metrics,
//! which Envoy lets a module define only while the configuration is created.

use crate::background::MainThread;
use crate::envoy::{self, ConfigRef, LogLevel, MetricType, Stream};
use crate::generic_secret::{self, SecretHandle};
use crate::shared_data;
use grant_sigv4_core::config::Config;
use grant_sigv4_core::engine::{all_metrics, Engine, Host, MetricKind};
use sha2::{Digest, Sha256};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

pub struct FilterConfig {
    /// Unique in the process (a new configuration may be allocated where an old one was).
    pub id: u64,
    /// The plugin configuration JSON.
    pub bytes: Vec<u8>,
    /// Prefix of this configuration's keys in the shared data: the same configuration
    /// (reloaded, or repeated on another listener) shares its grants, another one does not.
    pub namespace: String,
    pub envoy: ConfigRef,
    /// Name, kind and Envoy id of each metric; the engine's metric id is the index.
    pub metrics: Vec<(String, MetricKind, usize)>,
    /// Its callouts that no request carries (`background`).
    pub main: MainThread,
    /// The SDS secret that holds the vault token (`vault.token_sds`).
    pub token_secret: Option<SecretHandle>,
    /// A token secret with no usable token was logged (once, until it has one again).
    token_unusable_logged: AtomicBool,
    /// The configuration has an engine on the main thread that ticks (`main_engine`): the
    /// workers' engines leave the vault token's calls to it.
    pub main_engine: AtomicBool,
}

impl FilterConfig {
    /// Parse and check `bytes` (refusing the load with a log line naming the key), then
    /// define the metrics.
    pub fn new(envoy_config: ConfigRef, bytes: &[u8]) -> Option<FilterConfig> {
        let cfg = match Config::parse(bytes).and_then(|mut c| {
            c.resolve_token(|name| std::env::var(name).ok())?;
            Ok(c)
        }) {
            Ok(c) => c,
            Err(e) => {
                envoy::log(LogLevel::Error, &format!("grant-sigv4: {e}"));
                return None;
            }
        };
        envoy::log(
            LogLevel::Info,
            &format!(
                "grant-sigv4 configured (dynamic module): grant header {}, vault cluster {}, \
                 vault auth {}, cache ttl {}s, max body {} bytes",
                cfg.grant_header,
                cfg.vault.cluster,
                cfg.vault.auth.as_str(),
                cfg.cache.ttl_seconds,
                cfg.max_body_bytes
            ),
        );
        let token_secret = match &cfg.vault.token_sds {
            None => None,
            Some(sds) => {
                match generic_secret::subscribe(envoy_config, &sds.name, &sds.config_source) {
                    Ok(h) => Some(h),
                    Err(e) => {
                        envoy::log(
                            LogLevel::Error,
                            &format!(
                                "grant-sigv4: invalid plugin configuration: key \"vault.token_sds\": {e}"
                            ),
                        );
                        return None;
                    }
                }
            }
        };
        let mut metrics = Vec::new();
        for (kind, name) in all_metrics() {
            let t = match kind {
                MetricKind::Counter => MetricType::Counter,
                MetricKind::Gauge => MetricType::Gauge,
                MetricKind::Histogram => MetricType::Histogram,
            };
            match envoy_config.define(t, &name) {
                Some(id) => metrics.push((name, kind, id)),
                None => envoy::log(
                    LogLevel::Warn,
                    &format!("grant-sigv4: metric {name} could not be defined"),
                ),
            }
        }
        static NEXT_ID: AtomicU64 = AtomicU64::new(1);
        crate::ticker::acquire();
        let digest = Sha256::digest(bytes);
        let namespace: String = digest.iter().take(8).map(|b| format!("{b:02x}")).collect();
        let main = MainThread::new(envoy_config);
        if let Some(s) = main.scheduler() {
            crate::ticker::register_config(s);
        }
        Some(FilterConfig {
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            bytes: bytes.to_vec(),
            namespace,
            envoy: envoy_config,
            metrics,
            main,
            token_secret,
            token_unusable_logged: AtomicBool::new(false),
            main_engine: AtomicBool::new(false),
        })
    }

    /// Entry `key` of this configuration's shared data (keys are prefixed by its namespace).
    pub fn get_shared(&self, key: &str) -> Option<(Vec<u8>, u32)> {
        shared_data::get(&format!("{}/{key}", self.namespace))
    }

    /// Write entry `key` of this configuration's shared data (`cas` as in [`shared_data::set`]).
    pub fn set_shared(&self, key: &str, value: &[u8], cas: u32) -> Result<(), String> {
        shared_data::set(&format!("{}/{key}", self.namespace), value, cas)
    }

    /// The engine's id for metric `name` of `kind`.
    pub fn metric_id(&self, kind: MetricKind, name: &str) -> Option<u32> {
        let i = self
            .metrics
            .iter()
            .position(|(n, k, _)| *k == kind && n == name)?;
        u32::try_from(i).ok()
    }

    pub fn increment(&self, id: u32, by: i64) {
        if let (Some((_, MetricKind::Counter, envoy_id)), Ok(by)) =
            (self.metrics.get(id as usize), u64::try_from(by))
        {
            self.envoy.increment(*envoy_id, by);
        }
    }

    /// Record a histogram value, or set a gauge.
    pub fn record(&self, id: u32, value: u64) {
        match self.metrics.get(id as usize) {
            Some((_, MetricKind::Histogram, envoy_id)) => self.envoy.record(*envoy_id, value),
            Some((_, MetricKind::Gauge, envoy_id)) => self.envoy.set_gauge(*envoy_id, value),
            _ => {}
        }
    }
}

impl FilterConfig {
    /// Hand the vault token of `vault.token_sds`, as Envoy has it now (read on `stream`'s
    /// worker, or with none on the main thread), to `engine` if it changed. Cheap when it did
    /// not: one callback and a comparison.
    pub fn refresh_token(&self, stream: Option<Stream>, engine: &mut Engine, host: &mut impl Host) {
        let Some(h) = self.token_secret else {
            return;
        };
        let read = |v: &[u8]| match grant_sigv4_core::token_sds::token_of(v) {
            Some(t) if engine.vault_token_is(t) => Some(None),
            Some(t) => Some(Some(t.to_string())),
            None => None,
        };
        let got = match stream {
            Some(s) => generic_secret::with_stream_secret(s, h, read),
            None => generic_secret::with_config_secret(self.envoy, h, read),
        };
        match got.flatten() {
            Some(Some(t)) => {
                self.token_unusable_logged.store(false, Ordering::Relaxed);
                engine.replace_vault_token(host, &t);
            }
            Some(None) => {}
            None => {
                if !self.token_unusable_logged.swap(true, Ordering::Relaxed) {
                    envoy::log(
                        LogLevel::Error,
                        "grant-sigv4: the vault token's SDS secret (vault.token_sds) has no \
                         usable token yet (absent, empty, or not printable ASCII)",
                    );
                }
            }
        }
    }
}

impl Drop for FilterConfig {
    fn drop(&mut self) {
        crate::ticker::release();
    }
}
