//! How long the vault has been failing, as every worker of the process sees it: the time of
//! the first failed callout since the last answered one, in one shared-data key. The tick
//! shows it as the gauge `grant_sigv4.vault_failing_seconds` (0 while the vault answers).
//!
//! A callout counts as answered when the vault said 200 or 404, as failed otherwise (no
//! answer, a timeout, 5xx, 403, nonsense). The key is read and written only on callout
//! answers and ticks, never per request.

use super::host::Host;

/// The shared-data key: ms since the Unix epoch of the first failure in a row, or `0`.
pub const KEY: &str = "grant_sigv4/v1/vault_failing_since_ms";

fn read(host: &mut impl Host) -> (u64, u32) {
    match host.get_shared(KEY) {
        Some((bytes, cas)) => (
            std::str::from_utf8(&bytes)
                .ok()
                .and_then(|s| s.parse().ok())
                .unwrap_or(0),
            cas,
        ),
        None => (0, 0),
    }
}

/// A callout answered at `now_ms` (`answered`: 200 or 404) or failed.
pub fn record(host: &mut impl Host, now_ms: u64, answered: bool) {
    let (since, cas) = read(host);
    let next = match (answered, since) {
        (true, 0) | (false, 1..) => return,
        (true, _) => 0,
        (false, 0) => now_ms.max(1),
    };
    // Lost to another worker's write: it recorded the same news.
    let _ = host.set_shared(KEY, next.to_string().as_bytes(), cas);
}

/// Seconds the vault has been failing at `now_ms` (0 while it answers).
pub fn failing_seconds(host: &mut impl Host, now_ms: u64) -> u64 {
    match read(host).0 {
        0 => 0,
        since => now_ms.saturating_sub(since) / 1000,
    }
}
