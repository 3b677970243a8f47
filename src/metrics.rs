//! The filter's metrics, through the proxy-wasm metrics API. Envoy shows them in /stats
//! and /stats/prometheus under the names below (see the README's metrics reference).

use crate::hostcalls::{self, MetricKind};
use std::collections::HashMap;

/// Counters, by index into [`Metrics::ids`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Counter {
    /// Requests signed and forwarded.
    Signed,
    /// Grant found in this worker's cache.
    CacheHit,
    /// Grant found in the cache shared by all workers.
    SharedHit,
    /// Grant not cached: fetched (or waited for).
    CacheMiss,
    /// Key served past its TTL because the vault could not be read.
    StaleServed,
    /// Vault callouts started (record and AWS-engine reads, background refreshes included).
    VaultCallouts,
    /// Vault callouts that failed (no answer, 5xx, 403, nonsense).
    VaultFailures,
    /// Background refreshes that brought a new key.
    Refreshes,
    /// Requests refused by a grant's policy.
    PolicyDenials,
    /// Keys dropped because AWS refused them.
    KeyRefusals,
}

const NAMES: [(Counter, &str); 10] = [
    (Counter::Signed, "grant_sigv4.requests_signed"),
    (Counter::CacheHit, "grant_sigv4.cache_hits"),
    (Counter::SharedHit, "grant_sigv4.cache_shared_hits"),
    (Counter::CacheMiss, "grant_sigv4.cache_misses"),
    (Counter::StaleServed, "grant_sigv4.cache_stale_serves"),
    (Counter::VaultCallouts, "grant_sigv4.vault_callouts"),
    (Counter::VaultFailures, "grant_sigv4.vault_failures"),
    (Counter::Refreshes, "grant_sigv4.credential_refreshes"),
    (Counter::PolicyDenials, "grant_sigv4.policy_denials"),
    (Counter::KeyRefusals, "grant_sigv4.key_refusals"),
];

/// Metric ids of this VM; a metric that could not be defined is skipped silently.
#[derive(Default)]
pub struct Metrics {
    ids: Vec<Option<u32>>,
    callout_ms: Option<u32>,
    errors: HashMap<&'static str, Option<u32>>,
}

impl Metrics {
    pub fn define() -> Self {
        Metrics {
            ids: NAMES
                .iter()
                .map(|(_, n)| hostcalls::define_metric(MetricKind::Counter, n).ok())
                .collect(),
            callout_ms: hostcalls::define_metric(
                MetricKind::Histogram,
                "grant_sigv4.vault_callout_ms",
            )
            .ok(),
            errors: HashMap::new(),
        }
    }

    pub fn inc(&self, c: Counter) {
        let i = NAMES.iter().position(|(k, _)| *k == c);
        if let Some(Some(id)) = i.and_then(|i| self.ids.get(i)) {
            let _ = hostcalls::increment_metric(*id, 1);
        }
    }

    /// Count a local reply by its error code (`grant_sigv4.local_errors.<Code>`).
    pub fn error(&mut self, code: &'static str) {
        let id = *self.errors.entry(code).or_insert_with(|| {
            hostcalls::define_metric(
                MetricKind::Counter,
                &format!("grant_sigv4.local_errors.{code}"),
            )
            .ok()
        });
        if let Some(id) = id {
            let _ = hostcalls::increment_metric(id, 1);
        }
    }

    pub fn callout_latency(&self, ms: u64) {
        if let Some(id) = self.callout_ms {
            let _ = hostcalls::record_metric(id, ms);
        }
    }
}
