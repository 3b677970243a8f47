//! grant-sigv4 as a native Envoy dynamic module (`envoy.filters.http.dynamic_modules`): a
//! thin host of the core's engine, with the same plugin configuration, request planning,
//! caches, vault records, signing, local errors, audit record and metrics as the proxy-wasm
//! filter, in Envoy's own process.
//!
//! - `envoy`: the raw ABI declarations of the callbacks used, each behind a safe wrapper.
//! - `hooks`: the event hooks Envoy calls, turned into engine events.
//! - `worker`: each worker's engines, live requests and vault callouts.
//! - `native_host`: the engine's host on the ABI, for one event.
//! - `generic_secret`: Envoy's SDS secrets (the vault token of `vault.token_sds`).
//! - `filter_config`: one filter configuration (its metrics, its shared-data namespace).
//! - `main_engine`: each configuration's engine on the main thread (the vault token with no
//!   request).
//! - `background`: the callouts no request carries, made on the main thread.
//! - `shared_data`: the data shared by all workers of the process.
//! - `ticker`: the thread that wakes idle workers whose paused requests may wait for a tick.
//!
//! Tests only: `fake_envoy` defines Envoy's callbacks in Rust, so that `hook_fuzz` drives the
//! exported hooks natively as Envoy would, with hostile inputs and events out of order.

mod background;
mod envoy;
mod filter_config;
mod generic_secret;
mod hooks;
mod main_engine;
mod native_host;
mod shared_data;
mod ticker;
mod worker;

#[cfg(test)]
mod fake_envoy;
#[cfg(test)]
mod hook_fuzz;
#[cfg(test)]
mod main_engine_tests;
#[cfg(test)]
mod token_sds_tests;
