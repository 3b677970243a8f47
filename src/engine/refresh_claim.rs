//! One background fetch per grant per Envoy process, and the backoff of a failing vault.
//!
//! A worker that wants to fetch a cached grant in the background (a refresh ahead of its
//! expiry, or a stale key to renew) first claims it in shared data; the other workers see
//! the claim, fetch nothing, and take the new key from shared data once it is there. The
//! claim is a short lease (it lapses on its own if its holder never answers). When the
//! fetch fails, its holder turns the claim into a backoff: nobody fetches the grant again
//! before it ends, and each failure in a row doubles it, from 1 s up to `ttl_seconds`, with
//! jitter, so a dead vault gets a bounded trickle of probes.
//!
//! Claims live in [`SLOTS`] shared-data keys, by a hash of the grant id, so that the shared
//! data stays bounded however many grant ids are seen; a slot holds the claim of one grant
//! (the last to use it). Two grants that share a slot may each be fetched once more than
//! needed, never less.

use super::host::Host;

/// Shared-data keys for claims.
pub const SLOTS: u64 = 1024;

/// The first backoff after a failure, doubled per failure in a row.
pub const FIRST_BACKOFF_MS: u64 = 1000;

/// A claim in shared data: `<until_ms> <failures> <grant>`.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Claim {
    /// Nobody else fetches the grant before this (the fetch's lease, or its backoff).
    until_ms: u64,
    /// Failed fetches in a row.
    failures: u32,
    grant: String,
}

impl Claim {
    fn encode(&self) -> Vec<u8> {
        format!("{} {} {}", self.until_ms, self.failures, self.grant).into_bytes()
    }

    fn decode(bytes: &[u8]) -> Option<Claim> {
        let s = std::str::from_utf8(bytes).ok()?;
        let mut parts = s.splitn(3, ' ');
        Some(Claim {
            until_ms: parts.next()?.parse().ok()?,
            failures: parts.next()?.parse().ok()?,
            grant: parts.next()?.to_string(),
        })
    }
}

/// FNV-1a of the grant id.
fn hash(grant: &str) -> u64 {
    grant.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// The shared-data key of `grant`'s claim slot.
pub fn key(grant: &str) -> String {
    format!("grant_sigv4/v1/claim/{}", hash(grant) % SLOTS)
}

/// The claim of `grant` in its slot, with the slot's compare-and-set token (0: no slot yet).
fn read(host: &mut impl Host, key: &str, grant: &str) -> (Option<Claim>, u32) {
    match host.get_shared(key) {
        Some((bytes, cas)) => (Claim::decode(&bytes).filter(|c| c.grant == grant), cas),
        None => (None, 0),
    }
}

/// Claim the background fetch of `grant` at `now_ms` for at most `lease_ms`. False when
/// another worker holds it, or the grant is backing off.
pub fn try_claim(host: &mut impl Host, grant: &str, now_ms: u64, lease_ms: u64) -> bool {
    let key = key(grant);
    let (current, cas) = read(host, &key, grant);
    if current.as_ref().is_some_and(|c| now_ms < c.until_ms) {
        return false;
    }
    let claim = Claim {
        until_ms: now_ms.saturating_add(lease_ms),
        failures: current.map_or(0, |c| c.failures),
        grant: grant.to_string(),
    };
    host.set_shared(&key, &claim.encode(), cas).is_ok()
}

/// The backoff after `failures` failures in a row, capped at `max_ms`, with jitter (between
/// three quarters and all of it) drawn from `seed`.
pub fn backoff_ms(failures: u32, max_ms: u64, seed: u64) -> u64 {
    let doubled = FIRST_BACKOFF_MS.saturating_mul(1u64 << failures.saturating_sub(1).min(40));
    let full = doubled.min(max_ms).max(1);
    let quarter = full / 4;
    full - quarter + (seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 33) % (quarter + 1)
}

/// The background fetch of `grant` ended at `now_ms`. After a success the claim is cleared;
/// after a failure it becomes a backoff (at most `max_backoff_ms`). Returns when the grant
/// may be fetched again (ms).
pub fn release(
    host: &mut impl Host,
    grant: &str,
    now_ms: u64,
    succeeded: bool,
    max_backoff_ms: u64,
) -> u64 {
    let key = key(grant);
    let (current, cas) = read(host, &key, grant);
    let (until_ms, failures) = if succeeded {
        (0, 0)
    } else {
        let failures = current.map_or(0, |c| c.failures).saturating_add(1);
        let seed = now_ms ^ hash(grant);
        let until = now_ms.saturating_add(backoff_ms(failures, max_backoff_ms, seed));
        (until, failures)
    };
    let claim = Claim {
        until_ms,
        failures,
        grant: grant.to_string(),
    };
    // Lost to another worker's write: its state stands.
    let _ = host.set_shared(&key, &claim.encode(), cas);
    until_ms
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_from_one_second_up_to_the_cap_with_jitter() {
        let full: Vec<u64> = (1..=6).map(|f| backoff_ms(f, 10_000, 0)).collect();
        assert_eq!(full, vec![750, 1500, 3000, 6000, 7500, 7500]);
        for seed in 0..200u64 {
            for f in 1..=8 {
                let b = backoff_ms(f, 10_000, seed);
                let cap = (1000u64 << (f - 1)).min(10_000);
                assert!(b >= cap - cap / 4 && b <= cap, "{f} {b}");
            }
        }
        let spread: std::collections::HashSet<u64> =
            (0..50u64).map(|s| backoff_ms(3, 10_000, s)).collect();
        assert!(spread.len() > 10, "jitter spreads probes: {spread:?}");
        assert!(backoff_ms(u32::MAX, u64::MAX, 7) > 0);
    }

    #[test]
    fn claims_round_trip_and_keys_are_bounded() {
        let c = Claim {
            until_ms: 12,
            failures: 3,
            grant: "a.b-c_d".into(),
        };
        assert_eq!(Claim::decode(&c.encode()), Some(c));
        assert_eq!(Claim::decode(b"1 x g"), None);
        let keys: std::collections::HashSet<String> =
            (0..5000).map(|i| key(&format!("grant-{i}"))).collect();
        assert!(keys.len() as u64 <= SLOTS);
        assert!(keys.len() > 900, "grants spread over the slots");
    }
}
