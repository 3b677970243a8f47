//! Credential cache policy and single-flight bookkeeping, per Envoy worker.
//!
//! Time is passed in (seconds since the Unix epoch) so the policy is tested without a clock.

use crate::audit::JsonWriter;
use crate::config::CacheConfig;
use crate::policy::{Cidr, Policy};
use crate::vault::{json_fields, Credentials, DynamicKind, DynamicSource};
use serde_json::Value;
use std::collections::HashMap;
use std::rc::Rc;

/// Most grants kept per worker; past this, expired entries are dropped first, then the
/// entry closest to expiry.
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

    /// Bytes for Envoy's shared data (shared by every worker of the process): compact JSON,
    /// the fields in declaration order (the layout `#[derive(Serialize)]` gave), e.g.
    /// `{"creds":{"access_key_id":..,"secret_access_key":..,"session_token":null},
    /// "policy":{"services":null,..,"source_cidrs":[{"addr":"10.0.0.0","prefix":8}]},
    /// "fetched_at":1,"fresh_until":2,"usable_until":3,"refresh_at":4,
    /// "dynamic":{"mount":"aws","role":"r","kind":"Creds"}}`.
    pub fn encode(&self) -> Vec<u8> {
        let mut j = JsonWriter::default();
        j.begin();
        j.key("creds");
        j.begin();
        j.str("access_key_id", &self.creds.access_key_id);
        j.str("secret_access_key", &self.creds.secret_access_key);
        j.opt_str("session_token", self.creds.session_token.as_deref());
        j.end();
        j.key("policy");
        let p = &self.policy;
        j.begin();
        j.opt_str_list("services", p.services.as_deref());
        j.opt_str_list("regions", p.regions.as_deref());
        j.opt_str_list("methods", p.methods.as_deref());
        j.opt_str_list("principals", p.principals.as_deref());
        j.key("source_cidrs");
        match &p.source_cidrs {
            None => j.out.push_str("null"),
            Some(cidrs) => {
                j.out.push('[');
                for (i, c) in cidrs.iter().enumerate() {
                    if i > 0 {
                        j.out.push(',');
                    }
                    j.begin();
                    j.str("addr", &c.addr.to_string());
                    j.u64("prefix", u64::from(c.prefix));
                    j.end();
                }
                j.out.push(']');
            }
        }
        j.end();
        j.u64("fetched_at", self.fetched_at);
        j.u64("fresh_until", self.fresh_until);
        j.u64("usable_until", self.usable_until);
        j.u64("refresh_at", self.refresh_at);
        j.key("dynamic");
        match &self.dynamic {
            None => j.out.push_str("null"),
            Some(d) => {
                j.begin();
                j.str("mount", &d.mount);
                j.str("role", &d.role);
                j.str(
                    "kind",
                    match d.kind {
                        DynamicKind::Creds => "Creds",
                        DynamicKind::Sts => "Sts",
                    },
                );
                j.end();
            }
        }
        j.end();
        j.out.into_bytes()
    }

    /// Read [`encode`](Self::encode)'s bytes back; `None` for anything else. Accepts what
    /// `#[derive(Deserialize)]` accepted (members in any order, unknown members ignored,
    /// `null` or absent for `None`).
    pub fn decode(bytes: &[u8]) -> Option<CachedGrant> {
        let v: Value = serde_json::from_slice(bytes).ok()?;
        let [creds, policy, fetched_at, fresh_until, usable_until, refresh_at, dynamic] =
            json_fields(
                &v,
                [
                    "creds",
                    "policy",
                    "fetched_at",
                    "fresh_until",
                    "usable_until",
                    "refresh_at",
                    "dynamic",
                ],
            )?;
        let [akid, secret, token] = json_fields(
            creds?,
            ["access_key_id", "secret_access_key", "session_token"],
        )?;
        let creds = Credentials {
            access_key_id: json_string(akid?)?,
            secret_access_key: json_string(secret?)?,
            session_token: optional(token, json_string)?,
        };
        let [services, regions, methods, principals, source_cidrs] = json_fields(
            policy?,
            [
                "services",
                "regions",
                "methods",
                "principals",
                "source_cidrs",
            ],
        )?;
        let policy = Policy {
            services: optional(services, json_strings)?,
            regions: optional(regions, json_strings)?,
            methods: optional(methods, json_strings)?,
            principals: optional(principals, json_strings)?,
            source_cidrs: optional(source_cidrs, |c| {
                c.as_array()?.iter().map(json_cidr).collect()
            })?,
        };
        let dynamic = match dynamic {
            None => None,
            Some(d) => {
                let [mount, role, kind] = json_fields(d, ["mount", "role", "kind"])?;
                Some(DynamicSource {
                    mount: json_string(mount?)?,
                    role: json_string(role?)?,
                    kind: json_kind(kind?)?,
                })
            }
        };
        Some(CachedGrant {
            creds,
            policy,
            fetched_at: fetched_at?.as_u64()?,
            fresh_until: fresh_until?.as_u64()?,
            usable_until: usable_until?.as_u64()?,
            refresh_at: refresh_at?.as_u64()?,
            dynamic,
        })
    }
}

/// An `Option` field: absent or `null` is `Some(None)`, a value `f` refuses is `None`.
fn optional<T>(v: Option<&Value>, f: impl Fn(&Value) -> Option<T>) -> Option<Option<T>> {
    match v {
        None => Some(None),
        Some(v) => f(v).map(Some),
    }
}

fn json_string(v: &Value) -> Option<String> {
    v.as_str().map(str::to_string)
}

fn json_strings(v: &Value) -> Option<Vec<String>> {
    v.as_array()?.iter().map(json_string).collect()
}

fn json_cidr(v: &Value) -> Option<Cidr> {
    let [addr, prefix] = json_fields(v, ["addr", "prefix"])?;
    Some(Cidr {
        addr: addr?.as_str()?.parse().ok()?,
        prefix: u8::try_from(prefix?.as_u64()?).ok()?,
    })
}

/// A unit variant: `"Creds"`, or `{"Creds": null}` as serde also reads it.
fn json_kind(v: &Value) -> Option<DynamicKind> {
    let name = match v {
        Value::String(s) => s.as_str(),
        Value::Object(m) if m.len() == 1 => match m.iter().next() {
            Some((k, Value::Null)) => k.as_str(),
            _ => return None,
        },
        _ => return None,
    };
    match name {
        "Creds" => Some(DynamicKind::Creds),
        "Sts" => Some(DynamicKind::Sts),
        _ => None,
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
    refreshing: bool,
}

/// Grants per worker, with "no such grant" remembered for a short while.
#[derive(Default)]
pub struct GrantCache {
    entries: HashMap<String, Entry>,
    not_found: HashMap<String, u64>,
    /// The last key AWS refused per grant, and when.
    refused: HashMap<String, (String, u64)>,
}

impl GrantCache {
    pub fn lookup(&mut self, grant: &str, now: u64) -> Lookup {
        if let Some(e) = self.entries.get_mut(grant) {
            if now < e.grant.fresh_until {
                e.used = true;
                return Lookup::Fresh(Rc::clone(&e.grant));
            }
            if now < e.grant.usable_until {
                return Lookup::Stale(Rc::clone(&e.grant));
            }
        }
        match self.not_found.get(grant) {
            Some(&until) if now < until => Lookup::NotFound,
            _ => Lookup::Miss,
        }
    }

    /// The freshest of the worker's entry and `other` (from shared data) wins.
    pub fn insert(&mut self, grant: &str, g: CachedGrant) -> Rc<CachedGrant> {
        self.not_found.remove(grant);
        if let Some(e) = self.entries.get(grant) {
            if e.grant.fetched_at > g.fetched_at {
                return Rc::clone(&e.grant);
            }
        }
        if self.entries.len() >= MAX_ENTRIES && !self.entries.contains_key(grant) {
            let now = g.fetched_at;
            self.entries.retain(|_, e| now < e.grant.usable_until);
            if self.entries.len() >= MAX_ENTRIES {
                if let Some(k) = self
                    .entries
                    .iter()
                    .min_by_key(|(_, e)| e.grant.usable_until)
                    .map(|(k, _)| k.clone())
                {
                    self.entries.remove(&k);
                }
            }
        }
        let g = Rc::new(g);
        self.entries.insert(
            grant.to_string(),
            Entry {
                grant: Rc::clone(&g),
                used: false,
                refreshing: false,
            },
        );
        g
    }

    pub fn remember_not_found(&mut self, grant: &str, until: u64) {
        if self.not_found.len() >= MAX_ENTRIES {
            self.not_found.clear();
        }
        self.entries.remove(grant);
        self.not_found.insert(grant.to_string(), until);
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
        if self.refused.len() >= MAX_ENTRIES {
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
            if e.used && !e.refreshing && now >= e.grant.refresh_at && now < e.grant.usable_until {
                e.refreshing = true;
                due.push(k.clone());
            }
        }
        due
    }

    /// A background refresh ended without a new key: it may be tried again later.
    pub fn refresh_failed(&mut self, grant: &str) {
        if let Some(e) = self.entries.get_mut(grant) {
            e.refreshing = false;
        }
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

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

    fn cfg() -> CacheConfig {
        CacheConfig {
            ttl_seconds: 300,
            max_stale_seconds: 600,
            negative_ttl_seconds: 10,
            refresh_ahead_seconds: 60,
            min_refetch_seconds: 5,
        }
    }

    fn stat(k: &str, now: u64) -> CachedGrant {
        CachedGrant::new_static(creds(k), Policy::default(), now, &cfg())
    }

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
        let back = CachedGrant::decode(&g.encode()).unwrap();
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
        c.remember_not_found("g", 10);
        assert_eq!(c.lookup("g", 5), Lookup::NotFound);
        assert_eq!(c.lookup("g", 10), Lookup::Miss);
        c.remember_not_found("h", 10);
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
    fn bounded() {
        let mut c = GrantCache::default();
        for i in 0..MAX_ENTRIES + 10 {
            let mut g = stat("A", 0);
            g.usable_until = 10 + i as u64;
            c.insert(&format!("g{i}"), g);
        }
        assert_eq!(c.len(), MAX_ENTRIES);
        assert!(matches!(
            c.lookup(&format!("g{}", MAX_ENTRIES + 9), 0),
            Lookup::Fresh(_)
        ));
        assert_eq!(c.lookup("g0", 0), Lookup::Miss);
    }

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

    /// The layout `#[derive(Serialize, Deserialize)]` gave before the JSON was hand-written.
    mod derived {
        use serde::{Deserialize, Serialize};
        use std::net::IpAddr;

        #[derive(Serialize, Deserialize, PartialEq, Debug)]
        pub struct Creds {
            pub access_key_id: String,
            pub secret_access_key: String,
            pub session_token: Option<String>,
        }
        #[derive(Serialize, Deserialize, PartialEq, Debug)]
        pub struct Cidr {
            pub addr: IpAddr,
            pub prefix: u8,
        }
        #[derive(Serialize, Deserialize, PartialEq, Debug)]
        pub struct Policy {
            pub services: Option<Vec<String>>,
            pub regions: Option<Vec<String>>,
            pub methods: Option<Vec<String>>,
            pub principals: Option<Vec<String>>,
            pub source_cidrs: Option<Vec<Cidr>>,
        }
        #[derive(Serialize, Deserialize, PartialEq, Debug)]
        pub enum Kind {
            Creds,
            Sts,
        }
        #[derive(Serialize, Deserialize, PartialEq, Debug)]
        pub struct Dynamic {
            pub mount: String,
            pub role: String,
            pub kind: Kind,
        }
        #[derive(Serialize, Deserialize, PartialEq, Debug)]
        pub struct Grant {
            pub creds: Creds,
            pub policy: Policy,
            pub fetched_at: u64,
            pub fresh_until: u64,
            pub usable_until: u64,
            pub refresh_at: u64,
            pub dynamic: Option<Dynamic>,
        }
    }

    fn to_derived(g: &CachedGrant) -> derived::Grant {
        let p = &g.policy;
        derived::Grant {
            creds: derived::Creds {
                access_key_id: g.creds.access_key_id.clone(),
                secret_access_key: g.creds.secret_access_key.clone(),
                session_token: g.creds.session_token.clone(),
            },
            policy: derived::Policy {
                services: p.services.clone(),
                regions: p.regions.clone(),
                methods: p.methods.clone(),
                principals: p.principals.clone(),
                source_cidrs: p.source_cidrs.as_ref().map(|v| {
                    v.iter()
                        .map(|c| derived::Cidr {
                            addr: c.addr,
                            prefix: c.prefix,
                        })
                        .collect()
                }),
            },
            fetched_at: g.fetched_at,
            fresh_until: g.fresh_until,
            usable_until: g.usable_until,
            refresh_at: g.refresh_at,
            dynamic: g.dynamic.as_ref().map(|d| derived::Dynamic {
                mount: d.mount.clone(),
                role: d.role.clone(),
                kind: match d.kind {
                    DynamicKind::Creds => derived::Kind::Creds,
                    DynamicKind::Sts => derived::Kind::Sts,
                },
            }),
        }
    }

    #[test]
    fn encoding_is_the_derived_layout() {
        let full = CachedGrant {
            creds: Credentials {
                access_key_id: "AKIAIOSFODNN7EXAMPLE".into(),
                secret_access_key: "s\"\\/\u{1}é".into(),
                session_token: Some("tok".into()),
            },
            policy: Policy {
                services: Some(vec!["s3".into(), "sts".into()]),
                regions: Some(vec![]),
                methods: Some(vec!["GET".into()]),
                principals: Some(vec!["spiffe://a/*".into()]),
                source_cidrs: Some(vec![
                    Cidr::parse("10.0.0.0/8").unwrap(),
                    Cidr::parse("fd00::1:0/112").unwrap(),
                    Cidr::parse("::ffff:1.2.3.4").unwrap(),
                ]),
            },
            fetched_at: 0,
            fresh_until: u64::MAX,
            usable_until: 3,
            refresh_at: 4,
            dynamic: Some(DynamicSource {
                mount: "aws/x".into(),
                role: "r".into(),
                kind: DynamicKind::Sts,
            }),
        };
        let mut creds_kind = full.clone();
        creds_kind.dynamic = Some(DynamicSource {
            mount: "aws".into(),
            role: "r".into(),
            kind: DynamicKind::Creds,
        });
        for g in [full, creds_kind, stat("A", 100)] {
            let derived_bytes = serde_json::to_vec(&to_derived(&g)).unwrap();
            assert_eq!(
                String::from_utf8(g.encode()).unwrap(),
                String::from_utf8(derived_bytes.clone()).unwrap()
            );
            assert_eq!(CachedGrant::decode(&derived_bytes), Some(g));
        }
    }

    /// `decode` accepts and refuses what the derived `Deserialize` did.
    #[test]
    fn decoding_is_the_derived_one() {
        let base = String::from_utf8(stat("A", 100).encode()).unwrap();
        let creds = r#"{"access_key_id":"A","secret_access_key":"s"}"#;
        let pol = r#"{"services":["s3"],"source_cidrs":[{"addr":"::1","prefix":128}]}"#;
        let cases: Vec<String> = vec![
            base.clone(),
            base.replace(
                r#""dynamic":null"#,
                r#""dynamic":{"mount":"m","role":"r","kind":"Sts"}"#,
            ),
            base.replace(
                r#""dynamic":null"#,
                r#""dynamic":{"kind":{"Creds":null},"role":"r","mount":"m"}"#,
            ),
            base.replace(r#""dynamic":null"#, r#""dynamic":["m","r","Creds"]"#),
            base.replace(r#""dynamic":null"#, r#""dynamic":["m","r"]"#),
            base.replace(
                r#""dynamic":null"#,
                r#""dynamic":{"mount":"m","role":"r","kind":"creds"}"#,
            ),
            base.replace(
                r#""dynamic":null"#,
                r#""dynamic":{"mount":"m","role":"r","kind":{"Sts":1}}"#,
            ),
            base.replace(
                r#""dynamic":null"#,
                r#""dynamic":{"mount":"m","kind":"Sts"}"#,
            ),
            base.replace(r#","dynamic":null"#, ""),
            base.replace(r#""fetched_at":100"#, r#""fetched_at":-1"#),
            base.replace(r#""fetched_at":100"#, r#""fetched_at":1.0"#),
            base.replace(r#""fetched_at":100"#, r#""fetched_at":null"#),
            base.replace(
                r#""fetched_at":100"#,
                r#""fetched_at":18446744073709551615"#,
            ),
            base.replace(
                r#""fetched_at":100"#,
                r#""fetched_at":18446744073709551616"#,
            ),
            base.replace(r#""fetched_at":100,"#, ""),
            base.replace(r#""session_token":null"#, r#""session_token":"t""#),
            base.replace(r#""session_token":null"#, r#""session_token":7"#),
            base.replace(r#""session_token":null"#, r#""extra":{"x":[1,2]}"#),
            base.replace(r#""services":null"#, r#""services":["a",null]"#),
            base.replace(r#""services":null"#, r#""services":"a""#),
            base.replace(
                r#""source_cidrs":null"#,
                r#""source_cidrs":[{"addr":"1.2.3.4","prefix":24}]"#,
            ),
            base.replace(
                r#""source_cidrs":null"#,
                r#""source_cidrs":[{"addr":"1.2.3.4","prefix":256}]"#,
            ),
            base.replace(
                r#""source_cidrs":null"#,
                r#""source_cidrs":[{"addr":"1.2.3","prefix":2}]"#,
            ),
            base.replace(r#""source_cidrs":null"#, r#""source_cidrs":[["::1",3]]"#),
            format!(r#"[{creds},{pol},1,2,3,4,null]"#),
            format!(r#"[{creds},{pol},1,2,3,4]"#),
            format!(r#"[{creds},{pol},1,2,3,4,null,5]"#),
            format!(
                r#"{{"policy":{pol},"creds":{creds},"refresh_at":4,"usable_until":3,"fresh_until":2,"fetched_at":1}}"#
            ),
            "null".into(),
            "{}".into(),
            "[]".into(),
            "\"x\"".into(),
            format!("{base} x"),
        ];
        for c in cases {
            let derived = serde_json::from_str::<derived::Grant>(&c).ok();
            let ours = CachedGrant::decode(c.as_bytes());
            assert_eq!(ours.as_ref().map(to_derived), derived, "{c}");
        }
    }
}
