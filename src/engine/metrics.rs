//! The filter's metrics, defined and written through the host. Envoy shows them in /stats
//! and /stats/prometheus under the names below (see docs/audit-and-metrics.md).

use super::host::{Host, MetricKind};
use crate::errors::ErrorCode;
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

/// Every metric the engine may define, with its kind: for a host that defines its metrics
/// when a configuration loads (Envoy's dynamic modules), not on first use.
pub fn all_metrics() -> Vec<(MetricKind, String)> {
    let mut out: Vec<(MetricKind, String)> = NAMES
        .iter()
        .map(|(_, n)| (MetricKind::Counter, n.to_string()))
        .collect();
    out.push((
        MetricKind::Histogram,
        String::from("grant_sigv4.vault_callout_ms"),
    ));
    out.push((
        MetricKind::Gauge,
        String::from("grant_sigv4.vault_failing_seconds"),
    ));
    for name in [
        super::vault_token::LOGINS,
        super::vault_token::RENEWALS,
        super::vault_token::AUTH_FAILURES,
    ] {
        out.push((MetricKind::Counter, name.to_string()));
    }
    out.push((MetricKind::Gauge, super::vault_token::TTL_GAUGE.to_string()));
    for code in ErrorCode::ALL {
        out.push((
            MetricKind::Counter,
            format!("grant_sigv4.local_errors.{code}"),
        ));
    }
    out
}

/// Metric ids of this plugin instance; a metric that could not be defined is skipped
/// silently.
///
/// Counts are kept in the VM and added to Envoy's counters by [`Metrics::flush`] on the root
/// context's tick (every second): no host call per request for counting.
#[derive(Default)]
pub struct Metrics {
    ids: Vec<Option<u32>>,
    pending: Vec<i64>,
    callout_ms: Option<u32>,
    vault_failing_s: Option<u32>,
    errors: HashMap<ErrorCode, (Option<u32>, i64)>,
}

impl Metrics {
    pub fn define(host: &mut impl Host) -> Self {
        Metrics {
            ids: NAMES
                .iter()
                .map(|(_, n)| host.define_metric(MetricKind::Counter, n))
                .collect(),
            pending: vec![0; NAMES.len()],
            callout_ms: host.define_metric(MetricKind::Histogram, "grant_sigv4.vault_callout_ms"),
            vault_failing_s: host
                .define_metric(MetricKind::Gauge, "grant_sigv4.vault_failing_seconds"),
            errors: HashMap::new(),
        }
    }

    pub fn inc(&mut self, c: Counter) {
        if let Some(p) = NAMES
            .iter()
            .position(|(k, _)| *k == c)
            .and_then(|i| self.pending.get_mut(i))
        {
            *p += 1;
        }
    }

    /// Count a local reply by its error code (`grant_sigv4.local_errors.<Code>`).
    pub fn error(&mut self, host: &mut impl Host, code: ErrorCode) {
        let entry = self.errors.entry(code).or_insert_with(|| {
            let name = format!("grant_sigv4.local_errors.{code}");
            (host.define_metric(MetricKind::Counter, &name), 0)
        });
        entry.1 += 1;
    }

    /// Add the counts kept since the last flush to Envoy's counters.
    pub fn flush(&mut self, host: &mut impl Host) {
        for (id, p) in self.ids.iter().zip(self.pending.iter_mut()) {
            if let (Some(id), true) = (id, *p > 0) {
                host.increment_metric(*id, *p);
            }
            *p = 0;
        }
        for (id, n) in self.errors.values_mut() {
            if let (Some(id), true) = (id, *n > 0) {
                host.increment_metric(*id, *n);
            }
            *n = 0;
        }
    }

    pub fn callout_latency(&self, host: &mut impl Host, ms: u64) {
        if let Some(id) = self.callout_ms {
            host.record_metric(id, ms);
        }
    }

    /// Seconds the vault has been failing (0 while it answers).
    pub fn vault_failing(&self, host: &mut impl Host, seconds: u64) {
        if let Some(id) = self.vault_failing_s {
            host.record_metric(id, seconds);
        }
    }

    /// What is counted and not yet flushed, by metric name (for tests).
    pub fn pending(&self, name: &str) -> i64 {
        let counter = NAMES
            .iter()
            .position(|(_, n)| *n == name)
            .and_then(|i| self.pending.get(i).copied());
        let error = name
            .strip_prefix("grant_sigv4.local_errors.")
            .and_then(|code| self.errors.iter().find(|(c, _)| c.as_str() == code))
            .map(|(_, e)| e)
            .map(|(_, n)| *n);
        counter.or(error).unwrap_or(0)
    }
}
