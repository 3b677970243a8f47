//! The grant of a request's first attempt, kept for its retries.

use crate::grant_cache::MAX_ENTRIES;
use std::collections::HashMap;

/// When the filter runs as an upstream filter (once per attempt, for retries), the first
/// attempt removes the grant header from the request that the retry reuses. The grant is
/// kept here, by the request's `x-request-id` and the caller's address, for the retries of
/// that request.
#[derive(Default)]
pub struct RetryStash {
    entries: HashMap<String, (String, String, u64)>,
}

/// How long a request's grant is kept for its retries.
pub const RETRY_STASH_SECONDS: u64 = 300;

impl RetryStash {
    pub fn remember(&mut self, request_id: &str, source: &str, grant: &str, now: u64) {
        if self.entries.len() >= MAX_ENTRIES {
            self.entries
                .retain(|_, (_, _, t)| now.saturating_sub(*t) < RETRY_STASH_SECONDS);
            if self.entries.len() >= MAX_ENTRIES {
                self.entries.clear();
            }
        }
        self.entries.insert(
            request_id.to_string(),
            (grant.to_string(), source.to_string(), now),
        );
    }

    /// The grant of an earlier attempt of this request, from the same caller.
    pub fn recall(&self, request_id: &str, source: &str, now: u64) -> Option<&str> {
        self.entries
            .get(request_id)
            .filter(|(_, src, t)| src == source && now.saturating_sub(*t) < RETRY_STASH_SECONDS)
            .map(|(g, _, _)| g.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_stash_is_per_request_and_caller() {
        let mut r = RetryStash::default();
        r.remember("req-1", "10.0.0.1:5000", "g", 100);
        assert_eq!(r.recall("req-1", "10.0.0.1:5000", 101), Some("g"));
        assert_eq!(
            r.recall("req-1", "10.0.0.2:5000", 101),
            None,
            "another caller"
        );
        assert_eq!(r.recall("req-2", "10.0.0.1:5000", 101), None);
        assert_eq!(
            r.recall("req-1", "10.0.0.1:5000", 100 + RETRY_STASH_SECONDS),
            None
        );
    }
}
