//! grant-sigv4: an Envoy proxy-wasm filter that signs outgoing AWS requests with SigV4,
//! using an access key fetched from a Vault-compatible store by grant id.
//!
//! The pure core (no proxy-wasm types, tested natively):
//! - [`sigv4`]: canonical request, string to sign, signing key, `Authorization`.
//! - [`aws_host`]: AWS service (signing name) and region from `:authority`.
//! - [`vault`]: grant id rules, the vault request path and the vault answer parser.
//! - [`config`]: the plugin configuration.
//! - [`cache`]: the per-grant credential cache policy.
//! - [`policy`]: what a grant may be used for (services, regions, methods, callers).
//! - [`request`]: what to do with one request: which headers to strip, which to sign,
//!   which payload hash to use, or which local error to answer.
//! - [`aws_response`]: whether an AWS answer refused the key it was signed with.
//! - [`audit`]: the audit record of a request.
//! - [`errors`]: local error replies.
//!
//! The glue ([`abi`]: the exported entry points, [`filter`], [`hostcalls`]) only moves bytes
//! between Envoy and that core.

pub mod abi;
pub mod audit;
pub mod aws_host;
pub mod aws_response;
pub mod cache;
pub mod config;
mod endpoints_table;
pub mod errors;
pub mod filter;
pub mod hostcalls;
mod metrics;
pub mod policy;
pub mod request;
pub mod sigv4;
pub mod vault;
