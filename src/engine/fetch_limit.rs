//! The limit on new-grant fetches: a token bucket shared by every worker of the Envoy
//! process, kept in one shared-data key and updated with compare-and-set.
//!
//! A fetch of a grant that is in no cache (neither known nor known to be absent, on this
//! worker or in shared data) takes a token; without one the request is answered 503
//! `VaultBusy` and nothing is fetched. Cached grants, background refreshes and requests that
//! join a fetch under way take none. The bucket holds at most `burst` tokens and gains
//! `per_second` tokens a second, so over any window of `t` seconds the process starts at
//! most `burst + per_second × t` new-grant fetches.
//!
//! Contention stays cheap: a refused request only reads the key (no write), and a taken
//! token is one read and one compare-and-set write; only new-grant fetches, themselves
//! limited, write. A write that loses the compare-and-set is tried again, at most
//! [`TRIES`] times in all, after which the request is refused (fails closed: an unreadable or
//! unwritable bucket never lets fetches through unlimited).

use super::host::Host;
use crate::config::FetchLimitConfig;

/// The shared-data key of the bucket.
pub const KEY: &str = "grant_sigv4/v1/new_grant_fetches";

/// Reads and compare-and-set writes per token at most.
pub const TRIES: usize = 3;

/// The bucket: thousandths of a token, as of a time (ms since the Unix epoch).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Bucket {
    milli_tokens: u64,
    at_ms: u64,
}

impl Bucket {
    fn encode(self) -> Vec<u8> {
        format!("{} {}", self.milli_tokens, self.at_ms).into_bytes()
    }

    fn decode(bytes: &[u8]) -> Option<Bucket> {
        let s = std::str::from_utf8(bytes).ok()?;
        let (tokens, at) = s.split_once(' ')?;
        Some(Bucket {
            milli_tokens: tokens.parse().ok()?,
            at_ms: at.parse().ok()?,
        })
    }

    /// The bucket at `now_ms`: full when there was none, refilled since `at_ms` otherwise
    /// (a clock that went back refills nothing).
    fn refilled(b: Option<Bucket>, now_ms: u64, limit: &FetchLimitConfig) -> Bucket {
        let full = limit.burst.saturating_mul(1000);
        match b {
            None => Bucket {
                milli_tokens: full,
                at_ms: now_ms,
            },
            Some(b) => {
                let gained = now_ms
                    .saturating_sub(b.at_ms)
                    .saturating_mul(limit.per_second);
                Bucket {
                    milli_tokens: b.milli_tokens.saturating_add(gained).min(full),
                    at_ms: b.at_ms.max(now_ms),
                }
            }
        }
    }
}

/// Take a token for one new-grant fetch at `now_ms`; false when there is none (or the
/// bucket could not be updated).
pub fn take(host: &mut impl Host, now_ms: u64, limit: &FetchLimitConfig) -> bool {
    for _ in 0..TRIES {
        let (current, cas) = match host.get_shared(KEY) {
            Some((bytes, cas)) => (Bucket::decode(&bytes), cas),
            None => (None, 0),
        };
        let b = Bucket::refilled(current, now_ms, limit);
        if b.milli_tokens < 1000 {
            return false;
        }
        let next = Bucket {
            milli_tokens: b.milli_tokens - 1000,
            at_ms: b.at_ms,
        };
        if host.set_shared(KEY, &next.encode(), cas).is_ok() {
            return true;
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limit(per_second: u64, burst: u64) -> FetchLimitConfig {
        FetchLimitConfig { per_second, burst }
    }

    #[test]
    fn refill_is_capped_and_never_goes_back() {
        let l = limit(50, 100);
        let empty = Bucket {
            milli_tokens: 0,
            at_ms: 1000,
        };
        assert_eq!(Bucket::refilled(Some(empty), 1020, &l).milli_tokens, 1000);
        assert_eq!(
            Bucket::refilled(Some(empty), 1_000_000, &l).milli_tokens,
            100_000
        );
        let back = Bucket::refilled(Some(empty), 10, &l);
        assert_eq!(back, empty, "a clock that went back refills nothing");
        assert_eq!(Bucket::refilled(None, 5, &l).milli_tokens, 100_000);
        assert_eq!(Bucket::decode(&empty.encode()), Some(empty));
        assert_eq!(Bucket::decode(b"x 1"), None);
        assert_eq!(Bucket::decode(b"1"), None);
    }
}
