//! Credential cache policy per plugin instance: how long a grant's key is used, served
//! stale, refreshed, remembered as absent, and when a refusal by AWS drops it.
//!
//! Time is passed in (seconds since the Unix epoch) so the policy is tested without a clock.

use crate::config::CacheConfig;
use crate::policy::Policy;
use crate::vault::{Credentials, DynamicSource};
use std::collections::HashMap;
use std::rc::Rc;

/// Most entries of a per-worker table that has no configured bound (the retry stash).
pub const MAX_ENTRIES: usize = 4096;

/// Seconds before a dynamic lease's end after which its key is no longer used (clock skew).
pub const LEASE_SAFETY_SECONDS: u64 = 10;

/// What signing needs for one grant, with its time limits (seconds since the Unix epoch).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CachedGrant {
    pub creds: Credentials,
    pub policy: Policy,
    pub fetched_at: u64,
    /// Used without asking the vault until then.
    pub fresh_until: u64,
    /// Never used after this: the end of a dynamic lease, or for a static key the end of
    /// the time it may be served stale while the vault is down.
    pub usable_until: u64,
    /// Refreshed in the background from then on, so no request waits on the refresh.
    pub refresh_at: u64,
    /// Where a dynamic key is issued (refreshes read the grant record again, then this).
    pub dynamic: Option<DynamicSource>,
}

impl CachedGrant {
    /// A static key: fresh for `ttl_seconds`, then served stale for at most
    /// `max_stale_seconds` while the vault cannot be read.
    pub fn new_static(creds: Credentials, policy: Policy, now: u64, cfg: &CacheConfig) -> Self {
        let fresh_until = now.saturating_add(cfg.ttl_seconds);
        CachedGrant {
            creds,
            policy,
            fetched_at: now,
            fresh_until,
            usable_until: fresh_until.saturating_add(cfg.max_stale_seconds),
            refresh_at: fresh_until.saturating_sub(cfg.refresh_ahead_seconds),
            dynamic: None,
        }
    }

    /// A key issued with a lease of `lease_seconds` (0: no lease given, use `ttl_seconds`).
    /// It is never used past the lease's end, and is refreshed `refresh_ahead_seconds`
    /// before (or half-way through a shorter lease).
    pub fn new_dynamic(
        creds: Credentials,
        policy: Policy,
        source: DynamicSource,
        lease_seconds: u64,
        now: u64,
        cfg: &CacheConfig,
    ) -> Self {
        let lease = if lease_seconds == 0 {
            cfg.ttl_seconds
        } else {
            lease_seconds
        };
        let end = now.saturating_add(lease.saturating_sub(LEASE_SAFETY_SECONDS.min(lease / 4)));
        let ahead = if cfg.refresh_ahead_seconds * 2 <= lease {
            cfg.refresh_ahead_seconds
        } else {
            lease / 2
        };
        CachedGrant {
            creds,
            policy,
            fetched_at: now,
            fresh_until: end,
            usable_until: end,
            refresh_at: now.saturating_add(lease.saturating_sub(ahead)),
            dynamic: Some(source),
        }
    }
}

/// What the cache knows about a grant at a time.
#[derive(Debug, PartialEq, Eq)]
pub enum Lookup {
    /// Use it.
    Fresh(Rc<CachedGrant>),
    /// Past its TTL: fetch again, but it may still be used if the vault cannot be read.
    Stale(Rc<CachedGrant>),
    /// The vault said recently that there is no such grant.
    NotFound,
    Miss,
}

struct Entry {
    grant: Rc<CachedGrant>,
    used: bool,
    /// A background fetch of it is under way.
    refreshing: bool,
    /// No background fetch before this (s): the vault is backing off, or another worker
    /// holds the fetch.
    retry_at: u64,
    /// When it was last looked up or stored, in lookups (least recently used goes first).
    last_used: u64,
}

/// Grants per worker, with "no such grant" remembered for a short while; both bounded,
/// the least recently used dropped first.
pub struct GrantCache {
    entries: HashMap<String, Entry>,
    /// Until when, and when last used.
    not_found: HashMap<String, (u64, u64)>,
    /// The last key AWS refused per grant, and when.
    refused: HashMap<String, (String, u64)>,
    max_grants: usize,
    max_unknown: usize,
    /// Lookups and stores so far (the LRU clock).
    uses: u64,
}

impl Default for GrantCache {
    fn default() -> Self {
        GrantCache::new(&CacheConfig::default())
    }
}

/// The key of the least recently used of `items` (by `last_used`), preferring those no
/// longer usable (`usable` false).
fn least_recently_used<'a, V>(
    items: impl Iterator<Item = (&'a String, &'a V)>,
    key: impl Fn(&V) -> (bool, u64),
) -> Option<String>
where
    V: 'a,
{
    items.min_by_key(|(_, v)| key(v)).map(|(k, _)| k.clone())
}

impl GrantCache {
    /// A cache with the bounds of `cfg`.
    pub fn new(cfg: &CacheConfig) -> GrantCache {
        GrantCache {
            entries: HashMap::new(),
            not_found: HashMap::new(),
            refused: HashMap::new(),
            max_grants: usize::try_from(cfg.max_grants).unwrap_or(usize::MAX).max(1),
            max_unknown: usize::try_from(cfg.max_unknown_grants)
                .unwrap_or(usize::MAX)
                .max(1),
            uses: 0,
        }
    }

    fn tick(&mut self) -> u64 {
        self.uses += 1;
        self.uses
    }

    pub fn lookup(&mut self, grant: &str, now: u64) -> Lookup {
        let t = self.tick();
        if let Some(e) = self.entries.get_mut(grant) {
            if now < e.grant.usable_until {
                e.used = true;
                e.last_used = t;
                if now < e.grant.fresh_until {
                    return Lookup::Fresh(Rc::clone(&e.grant));
                }
                return Lookup::Stale(Rc::clone(&e.grant));
            }
        }
        match self.not_found.get_mut(grant) {
            Some((until, used)) if now < *until => {
                *used = t;
                Lookup::NotFound
            }
            _ => Lookup::Miss,
        }
    }

    /// The freshest of the worker's entry and `other` (from shared data) wins.
    pub fn insert(&mut self, grant: &str, g: CachedGrant) -> Rc<CachedGrant> {
        self.not_found.remove(grant);
        if let Some(e) = self.entries.get(grant) {
            // The same key again (from shared data) keeps the entry and its state.
            if e.grant.fetched_at >= g.fetched_at {
                return Rc::clone(&e.grant);
            }
        }
        if self.entries.len() >= self.max_grants && !self.entries.contains_key(grant) {
            let now = g.fetched_at;
            let lru = least_recently_used(self.entries.iter(), |e| {
                (now < e.grant.usable_until, e.last_used)
            });
            if let Some(k) = lru {
                self.entries.remove(&k);
            }
        }
        let last_used = self.tick();
        let g = Rc::new(g);
        self.entries.insert(
            grant.to_string(),
            Entry {
                grant: Rc::clone(&g),
                used: false,
                refreshing: false,
                retry_at: 0,
                last_used,
            },
        );
        g
    }

    /// The vault said at `now` there is no such grant: remembered until `until`.
    pub fn remember_not_found(&mut self, grant: &str, now: u64, until: u64) {
        if self.not_found.len() >= self.max_unknown && !self.not_found.contains_key(grant) {
            let lru = least_recently_used(self.not_found.iter(), |(u, used)| (now < *u, *used));
            if let Some(k) = lru {
                self.not_found.remove(&k);
            }
        }
        self.entries.remove(grant);
        let t = self.tick();
        self.not_found.insert(grant.to_string(), (until, t));
    }

    /// AWS refused the key fetched at `fetched_at`: forget it so the next request fetches
    /// the grant again. When the vault gave the same key again after a refusal (the refusal
    /// is not about the key, e.g. a 403 AccessDenied), the grant is fetched again at most
    /// once per `min_refetch` seconds, so such refusals do not turn every request into a
    /// vault call. Returns whether the entry was dropped.
    pub fn invalidate(&mut self, grant: &str, fetched_at: u64, now: u64, min_refetch: u64) -> bool {
        let Some(e) = self.entries.get(grant) else {
            return false;
        };
        if e.grant.fetched_at != fetched_at {
            // An older key's refusal does not drop a newer key.
            return false;
        }
        let akid = &e.grant.creds.access_key_id;
        if let Some((last, at)) = self.refused.get(grant) {
            if last == akid && now.saturating_sub(*at) < min_refetch {
                return false;
            }
        }
        if self.refused.len() >= self.max_grants {
            self.refused.clear();
        }
        self.refused.insert(grant.to_string(), (akid.clone(), now));
        self.entries.remove(grant);
        true
    }

    /// Grants to refresh in the background now: used since they were fetched, past their
    /// refresh time, still usable, and not already being refreshed. They are marked.
    pub fn due_for_refresh(&mut self, now: u64) -> Vec<String> {
        let mut due = Vec::new();
        for (k, e) in self.entries.iter_mut() {
            if e.used
                && !e.refreshing
                && now >= e.retry_at
                && now >= e.grant.refresh_at
                && now < e.grant.usable_until
            {
                e.refreshing = true;
                due.push(k.clone());
            }
        }
        due
    }

    /// Whether a background fetch of a stale `grant` may start now; if so it is marked.
    pub fn start_revalidation(&mut self, grant: &str, now: u64) -> bool {
        match self.entries.get_mut(grant) {
            Some(e) if !e.refreshing && now >= e.retry_at => {
                e.refreshing = true;
                true
            }
            _ => false,
        }
    }

    /// A background refresh ended without a new key: it may be tried again later.
    pub fn refresh_failed(&mut self, grant: &str) {
        if let Some(e) = self.entries.get_mut(grant) {
            e.refreshing = false;
        }
    }

    /// No background fetch of `grant` before `at` (s).
    pub fn retry_at(&mut self, grant: &str, at: u64) {
        if let Some(e) = self.entries.get_mut(grant) {
            e.refreshing = false;
            e.retry_at = at;
        }
    }

    /// "No such grant" answers kept.
    pub fn unknown_len(&self) -> usize {
        self.not_found.len()
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

/// Grants and cache settings for the tests of the cache and of its shared-data codec.
#[cfg(test)]
pub(crate) mod fixtures {
    use super::*;

    pub(crate) fn creds(k: &str) -> Credentials {
        Credentials {
            access_key_id: k.into(),
            secret_access_key: "s".into(),
            session_token: None,
        }
    }

    pub(crate) fn cfg() -> CacheConfig {
        CacheConfig {
            ttl_seconds: 300,
            max_stale_seconds: 600,
            negative_ttl_seconds: 10,
            refresh_ahead_seconds: 60,
            min_refetch_seconds: 5,
            max_grants: 4096,
            max_unknown_grants: 4096,
        }
    }

    /// A static grant with key id `k`, fetched at `now`.
    pub(crate) fn stat(k: &str, now: u64) -> CachedGrant {
        CachedGrant::new_static(creds(k), Policy::default(), now, &cfg())
    }
}

#[cfg(test)]
mod tests {
    use super::fixtures::{cfg, creds, stat};
    use super::*;

    fn key(l: Lookup) -> Option<(bool, String)> {
        match l {
            Lookup::Fresh(g) => Some((true, g.creds.access_key_id.clone())),
            Lookup::Stale(g) => Some((false, g.creds.access_key_id.clone())),
            _ => None,
        }
    }

    #[test]
    fn static_ttl_then_stale_then_gone() {
        let mut c = GrantCache::default();
        c.insert("g", stat("A", 100));
        assert_eq!(key(c.lookup("g", 100)), Some((true, "A".into())));
        assert_eq!(key(c.lookup("g", 399)), Some((true, "A".into())));
        assert_eq!(key(c.lookup("g", 400)), Some((false, "A".into())));
        assert_eq!(key(c.lookup("g", 999)), Some((false, "A".into())));
        assert_eq!(c.lookup("g", 1000), Lookup::Miss);
        assert_eq!(c.lookup("other", 100), Lookup::Miss);
    }

    #[test]
    fn dynamic_lease_is_never_exceeded() {
        let src = DynamicSource {
            mount: "aws".into(),
            role: "r".into(),
            kind: crate::vault::DynamicKind::Creds,
        };
        let g = CachedGrant::new_dynamic(
            creds("D"),
            Policy::default(),
            src.clone(),
            900,
            1000,
            &cfg(),
        );
        assert_eq!(g.usable_until, 1000 + 900 - LEASE_SAFETY_SECONDS);
        assert_eq!(g.fresh_until, g.usable_until);
        assert_eq!(g.refresh_at, 1000 + 900 - 60);
        // a short lease is refreshed half-way
        let s = CachedGrant::new_dynamic(creds("D"), Policy::default(), src, 60, 1000, &cfg());
        assert_eq!(s.refresh_at, 1030);
        assert!(s.usable_until <= 1060);
        let back = crate::shared_grant::decode(&crate::shared_grant::encode(&g)).unwrap();
        assert_eq!(back, g);
    }

    #[test]
    fn newer_wins_and_invalidate_respects_min_refetch() {
        let mut c = GrantCache::default();
        c.insert("g", stat("B", 200));
        c.insert("g", stat("A", 100));
        assert_eq!(key(c.lookup("g", 201)), Some((true, "B".into())));
        assert!(
            !c.invalidate("g", 100, 300, 5),
            "an older key's refusal does not drop a newer one"
        );
        assert!(
            c.invalidate("g", 200, 201, 5),
            "a first refusal drops the key at once"
        );
        assert_eq!(c.lookup("g", 202), Lookup::Miss);
        // The vault gave the same key again and AWS refused it again: not within 5 s.
        c.insert("g", stat("B", 202));
        assert!(!c.invalidate("g", 202, 203, 5));
        assert!(c.invalidate("g", 202, 207, 5));
        // A different key is dropped at once.
        c.insert("g", stat("C", 208));
        assert!(c.invalidate("g", 208, 208, 5));
    }

    #[test]
    fn not_found_is_remembered_briefly() {
        let mut c = GrantCache::default();
        c.insert("g", stat("A", 0));
        c.remember_not_found("g", 0, 10);
        assert_eq!(c.lookup("g", 5), Lookup::NotFound);
        assert_eq!(c.lookup("g", 10), Lookup::Miss);
        c.remember_not_found("h", 0, 10);
        c.insert("h", stat("A", 1));
        assert!(matches!(c.lookup("h", 2), Lookup::Fresh(_)));
    }

    #[test]
    fn refresh_only_used_entries_once() {
        let mut c = GrantCache::default();
        c.insert("used", stat("A", 0));
        c.insert("idle", stat("B", 0));
        let _ = c.lookup("used", 1);
        assert!(c.due_for_refresh(100).is_empty());
        assert_eq!(c.due_for_refresh(240), vec!["used".to_string()]);
        assert!(c.due_for_refresh(241).is_empty(), "already refreshing");
        c.refresh_failed("used");
        assert_eq!(c.due_for_refresh(242), vec!["used".to_string()]);
    }

    #[test]
    fn bounded_the_least_recently_used_goes_first() {
        let mut bounds = cfg();
        bounds.max_grants = 3;
        bounds.max_unknown_grants = 2;
        let mut c = GrantCache::new(&bounds);
        for g in ["a", "b", "c"] {
            c.insert(g, stat("A", 0));
        }
        // "a" is used: "b" is now the least recently used.
        assert!(matches!(c.lookup("a", 1), Lookup::Fresh(_)));
        c.insert("d", stat("A", 1));
        assert_eq!(c.len(), 3);
        assert_eq!(c.lookup("b", 1), Lookup::Miss);
        for g in ["a", "c", "d"] {
            assert!(matches!(c.lookup(g, 1), Lookup::Fresh(_)), "{g}");
        }
        // An entry no longer usable goes before any usable one.
        let mut old = stat("A", 0);
        old.usable_until = 2;
        c.insert("e", stat("A", 1));
        c.insert("old", old);
        assert!(matches!(c.lookup("old", 1), Lookup::Fresh(_)));
        c.insert("f", stat("A", 5));
        assert_eq!(
            c.lookup("old", 1),
            Lookup::Miss,
            "unusable at 5: dropped first"
        );
        assert_eq!(c.len(), 3);
        // Unknown grants: bounded the same way.
        c.remember_not_found("x", 0, 10);
        c.remember_not_found("y", 0, 10);
        assert_eq!(c.lookup("x", 1), Lookup::NotFound);
        c.remember_not_found("z", 1, 10);
        assert_eq!(c.unknown_len(), 2);
        assert_eq!(c.lookup("y", 1), Lookup::Miss);
        assert_eq!(c.lookup("x", 1), Lookup::NotFound);
        assert_eq!(c.lookup("z", 1), Lookup::NotFound);
    }
}
