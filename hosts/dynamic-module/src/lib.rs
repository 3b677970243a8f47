//! grant-sigv4 as a native Envoy dynamic module (`envoy.filters.http.dynamic_modules`): the
//! same plugin configuration, request planning, vault records, signing and local errors as
//! the proxy-wasm filter, from the core crate, in Envoy's own process.
//!
//! - `envoy`: the raw ABI declarations of the callbacks used, each behind a safe wrapper.
//! - `hooks`: the event hooks Envoy calls, translated into events, their effects applied.
//! - `interim_engine`: TEMPORARY request state machine and process-wide grant cache, until
//!   the core's engine replaces it.

mod envoy;
mod hooks;
mod interim_engine;
