//! grant-sigv4's core: everything that makes Envoy sign outgoing AWS requests with SigV4,
//! using an access key fetched from a Vault-compatible store by grant id — with no host
//! types. Each host (`hosts/wasm`: the proxy-wasm ABI) only translates between its ABI and
//! the [`engine`].
//!
//! - [`sigv4`]: canonical request, string to sign, signing key, `Authorization`.
//! - [`aws_host`]: AWS service (signing name) and region from `:authority`.
//! - [`vault`]: grant id rules, the vault request path and the vault answer parser.
//! - [`config`]: the plugin configuration.
//! - [`policy`]: what a grant may be used for (services, regions, methods, callers).
//! - [`request`]: what to do with one request: which headers to strip, which to sign,
//!   which payload hash to use, or which local error to answer.
//! - [`vault_auth`]: the filter's own vault token: token-endpoint answers, renewal times,
//!   its shared-data codec.
//! - [`token_sds`]: `vault.token_sds`, the filter's vault token from an Envoy SDS secret.
//! - [`grant_cache`]: the per-grant credential cache policy.
//! - [`shared_grant`]: the shared-data codec of a cached grant.
//! - [`retry_stash`]: the grant of a request's first attempt, kept for its retries.
//! - [`aws_response`]: whether an AWS answer refused the key it was signed with.
//! - [`audit`]: the audit record of a request.
//! - [`errors`]: local error replies.
//! - [`json`]: JSON writing and reading helpers.
//! - [`engine`]: the per-plugin-instance state machine: events in, effects out; its
//!   metrics.

pub mod audit;
pub mod aws_host;
pub mod aws_response;
pub mod config;
mod endpoints_table;
pub mod engine;
pub mod errors;
pub mod grant_cache;
pub mod json;
pub mod policy;
pub mod request;
pub mod retry_stash;
pub mod shared_grant;
pub mod sigv4;
pub mod token_sds;
pub mod vault;
pub mod vault_auth;
