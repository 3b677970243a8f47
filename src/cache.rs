//! Credential cache policy and single-flight bookkeeping, per Envoy worker.
//!
//! Time is passed in (seconds since the Unix epoch) so the policy is tested without a clock.

use crate::vault::Credentials;
use std::collections::HashMap;
use std::rc::Rc;

/// Most grants kept per worker; past this, expired entries are dropped first, then the
/// entry closest to expiry.
pub const MAX_ENTRIES: usize = 4096;

struct Entry {
    creds: Rc<Credentials>,
    expires_at: u64,
}

/// Credentials per grant id, each used until its TTL ends.
#[derive(Default)]
pub struct GrantCache {
    entries: HashMap<String, Entry>,
}

impl GrantCache {
    /// The cached credential for `grant`, if it has not expired at `now`.
    pub fn get(&self, grant: &str, now: u64) -> Option<Rc<Credentials>> {
        self.entries
            .get(grant)
            .filter(|e| now < e.expires_at)
            .map(|e| Rc::clone(&e.creds))
    }

    /// Store a freshly fetched credential for `ttl` seconds from `now`.
    pub fn insert(
        &mut self,
        grant: &str,
        creds: Credentials,
        now: u64,
        ttl: u64,
    ) -> Rc<Credentials> {
        if self.entries.len() >= MAX_ENTRIES && !self.entries.contains_key(grant) {
            self.entries.retain(|_, e| now < e.expires_at);
            if self.entries.len() >= MAX_ENTRIES {
                if let Some(k) = self
                    .entries
                    .iter()
                    .min_by_key(|(_, e)| e.expires_at)
                    .map(|(k, _)| k.clone())
                {
                    self.entries.remove(&k);
                }
            }
        }
        let creds = Rc::new(creds);
        self.entries.insert(
            grant.to_string(),
            Entry {
                creds: Rc::clone(&creds),
                expires_at: now.saturating_add(ttl),
            },
        );
        creds
    }

    /// Forget a grant (for example after AWS refused its key).
    pub fn invalidate(&mut self, grant: &str) {
        self.entries.remove(grant);
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

/// What a request for an uncached grant should do.
#[derive(Debug, PartialEq, Eq)]
pub enum Begin {
    /// No fetch is under way: this request fetches.
    Fetch,
    /// A fetch is under way: wait for it.
    Wait,
}

struct Fetch {
    owner: u32,
    waiters: Vec<u32>,
}

/// Vault fetches under way on this worker, so that a burst of requests for one grant costs
/// one callout: the first request fetches, the others wait and are resumed by its answer.
#[derive(Default)]
pub struct Inflight {
    by_grant: HashMap<String, Fetch>,
}

impl Inflight {
    /// Register request `ctx` as needing `grant`.
    pub fn begin(&mut self, grant: &str, ctx: u32) -> Begin {
        match self.by_grant.get_mut(grant) {
            Some(f) => {
                if f.owner != ctx && !f.waiters.contains(&ctx) {
                    f.waiters.push(ctx);
                }
                Begin::Wait
            }
            None => {
                self.by_grant.insert(
                    grant.to_string(),
                    Fetch {
                        owner: ctx,
                        waiters: Vec::new(),
                    },
                );
                Begin::Fetch
            }
        }
    }

    /// The fetch for `grant` ended: returns the requests that waited for it.
    pub fn finish(&mut self, grant: &str) -> Vec<u32> {
        self.by_grant
            .remove(grant)
            .map(|f| f.waiters)
            .unwrap_or_default()
    }

    /// Request `ctx` is gone (client went away, or it was answered). If it owned a fetch,
    /// that fetch is abandoned: returns the grant and the requests that waited for it,
    /// which must be answered now since no answer will come.
    pub fn forget(&mut self, ctx: u32) -> Option<(String, Vec<u32>)> {
        let mut owned = None;
        for (grant, f) in self.by_grant.iter_mut() {
            if f.owner == ctx {
                owned = Some(grant.clone());
            } else {
                f.waiters.retain(|&w| w != ctx);
            }
        }
        let grant = owned?;
        let waiters = self.finish(&grant);
        Some((grant, waiters))
    }

    pub fn len(&self) -> usize {
        self.by_grant.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_grant.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn creds(k: &str) -> Credentials {
        Credentials {
            access_key_id: k.into(),
            secret_access_key: "s".into(),
            session_token: None,
        }
    }

    #[test]
    fn ttl_is_respected() {
        let mut c = GrantCache::default();
        c.insert("g", creds("A"), 100, 300);
        assert_eq!(c.get("g", 100).unwrap().access_key_id, "A");
        assert!(c.get("g", 399).is_some());
        assert!(c.get("g", 400).is_none());
        assert!(c.get("other", 100).is_none());
    }

    #[test]
    fn invalidate_and_replace() {
        let mut c = GrantCache::default();
        c.insert("g", creds("A"), 0, 10);
        c.insert("g", creds("B"), 0, 10);
        assert_eq!(c.get("g", 1).unwrap().access_key_id, "B");
        c.invalidate("g");
        assert!(c.get("g", 1).is_none());
    }

    #[test]
    fn bounded() {
        let mut c = GrantCache::default();
        for i in 0..MAX_ENTRIES + 10 {
            c.insert(&format!("g{i}"), creds("A"), 0, 10 + i as u64);
        }
        assert_eq!(c.len(), MAX_ENTRIES);
        // the newest survive
        assert!(c.get(&format!("g{}", MAX_ENTRIES + 9), 0).is_some());
        assert!(c.get("g0", 0).is_none());
    }

    #[test]
    fn single_flight() {
        let mut f = Inflight::default();
        assert_eq!(f.begin("g", 1), Begin::Fetch);
        assert_eq!(f.begin("g", 2), Begin::Wait);
        assert_eq!(f.begin("g", 3), Begin::Wait);
        assert_eq!(f.begin("g", 3), Begin::Wait);
        assert_eq!(f.begin("h", 4), Begin::Fetch);
        assert_eq!(f.forget(2), None);
        assert_eq!(f.finish("g"), vec![3]);
        assert_eq!(f.begin("g", 5), Begin::Fetch);
        assert_eq!(f.len(), 2);
    }

    #[test]
    fn abandoned_fetch_hands_back_waiters() {
        let mut f = Inflight::default();
        f.begin("g", 1);
        f.begin("g", 2);
        assert_eq!(f.forget(1), Some(("g".to_string(), vec![2])));
        assert!(f.is_empty());
        assert_eq!(f.begin("g", 2), Begin::Fetch);
    }
}
