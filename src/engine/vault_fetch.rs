//! Vault fetches: the callouts that read a grant (its KV record, then for a dynamic grant
//! the AWS secrets engine), and what each answer means.

use crate::config::{Config, VaultConfig};
use crate::grant_cache::CachedGrant;
use crate::policy::Policy;
use crate::vault::{self, DynamicSource, Source, VaultError};

/// Which read of a fetch a callout is.
#[derive(Clone, Debug)]
pub(super) enum Stage {
    /// The grant record in KV.
    Record,
    /// The AWS secrets engine, for a dynamic grant whose record said so.
    Dynamic {
        source: DynamicSource,
        policy: Policy,
    },
}

/// A callout under way.
#[derive(Clone, Debug)]
pub(super) struct Callout {
    pub grant: String,
    pub stage: Stage,
    /// When it started (ms), for the latency histogram.
    pub started_ms: Option<u64>,
}

/// One fetch of a grant under way (single flight: at most one per grant and plugin instance).
#[derive(Default, Debug)]
pub(super) struct GrantFetch {
    /// Requests paused until it ends, in arrival order.
    pub waiters: Vec<u32>,
    /// Started by the tick to refresh a cached grant ahead of its expiry.
    pub refresh: bool,
}

/// What one callout answer says.
pub(super) enum Answer {
    /// Another read is needed (the AWS secrets engine).
    Next(Stage),
    /// The grant's key, or why there is none.
    Fetched(Result<CachedGrant, VaultError>),
}

/// The vault path a callout of `stage` reads.
pub(super) fn path(vault_cfg: &VaultConfig, grant: &str, stage: &Stage) -> String {
    match stage {
        Stage::Record => vault::grant_path(vault_cfg, grant),
        Stage::Dynamic { source, .. } => vault::dynamic_path(source),
    }
}

/// Digest the answer (`status`, `body`) to a callout of `stage`, received at `now` (s).
pub(super) fn digest(
    cfg: &Config,
    stage: Stage,
    status: Option<u32>,
    body: &[u8],
    now: u64,
) -> Answer {
    match stage {
        Stage::Record => match vault::parse_grant_response(status, body) {
            Ok(rec) => match rec.source {
                Source::Static(creds) => Answer::Fetched(Ok(CachedGrant::new_static(
                    creds, rec.policy, now, &cfg.cache,
                ))),
                Source::Dynamic(source) => Answer::Next(Stage::Dynamic {
                    source,
                    policy: rec.policy,
                }),
            },
            Err(e) => Answer::Fetched(Err(e)),
        },
        Stage::Dynamic { source, policy } => Answer::Fetched(
            vault::parse_dynamic_response(status, body).map(|(creds, lease)| {
                CachedGrant::new_dynamic(creds, policy, source, lease, now, &cfg.cache)
            }),
        ),
    }
}
