//! Envoy's generic secrets (SDS) for a filter configuration: the three callbacks of Envoy
//! 1.40's ABI, and the vault token (`vault.token_sds`) read through them.
//!
//! The signatures are those of Envoy 1.40.0's `abi.h`, checked against the exported
//! functions of the 1.40.0 binary:
//!
//! - `size_t envoy_dynamic_module_callback_http_filter_config_generic_secret_subscribe(
//!   config_envoy_ptr, module_buffer name, module_buffer config_source_json)`: only while
//!   the configuration is created (`on_http_filter_config_new`; later it fails, logging
//!   "secrets can only be subscribed during config initialization"). With an empty config
//!   source, the static secret of that name in the bootstrap (`static_resources.secrets`);
//!   else the secret from that SDS `ConfigSource` (JSON), which Envoy keeps up to date and
//!   waits for before the listener is ready. Returns a handle (1, 2, ...), or 0 when it failed
//!   (Envoy logs why: no such static secret, a config source that is not a `ConfigSource`).
//! - `bool ..._http_filter_config_get_generic_secret(config_envoy_ptr, size_t handle,
//!   envoy_buffer* value)` on the main thread, and `bool ..._http_filter_get_generic_secret(
//!   filter_envoy_ptr, size_t handle, envoy_buffer* value)` on a stream's worker: the
//!   secret's current value, a view valid during the hook (Envoy keeps a copy per thread and
//!   replaces it when SDS updates the secret).
//!
//! Envoy 1.39 has none of them: they are looked up in the process when the module first
//! needs them (`dlsym`), not linked, so that a module without `vault.token_sds` still loads
//! on 1.39; a configuration with it is refused there with a log line naming the key.

use crate::envoy::{ConfigEnvoyPtr, ConfigRef, EnvoyBuffer, FilterEnvoyPtr, ModuleBuffer, Stream};
use std::sync::OnceLock;

type SubscribeFn = unsafe extern "C" fn(ConfigEnvoyPtr, ModuleBuffer, ModuleBuffer) -> usize;
type ConfigGetFn = unsafe extern "C" fn(ConfigEnvoyPtr, usize, *mut EnvoyBuffer) -> bool;
type FilterGetFn = unsafe extern "C" fn(FilterEnvoyPtr, usize, *mut EnvoyBuffer) -> bool;

struct Fns {
    subscribe: SubscribeFn,
    config_get: ConfigGetFn,
    filter_get: FilterGetFn,
}

#[cfg(not(test))]
fn lookup() -> Option<Fns> {
    use std::ffi::c_void;
    extern "C" {
        fn dlsym(handle: *mut c_void, symbol: *const std::ffi::c_char) -> *mut c_void;
    }
    let find = |name: &[u8]| {
        // SAFETY: `name` is NUL-terminated; a null handle is RTLD_DEFAULT (every object of
        // the process, Envoy's binary, whose dynamic symbols hold the callbacks, included).
        let p = unsafe { dlsym(std::ptr::null_mut(), name.as_ptr().cast()) };
        (!p.is_null()).then_some(p)
    };
    let s = find(b"envoy_dynamic_module_callback_http_filter_config_generic_secret_subscribe\0")?;
    let c = find(b"envoy_dynamic_module_callback_http_filter_config_get_generic_secret\0")?;
    let f = find(b"envoy_dynamic_module_callback_http_filter_get_generic_secret\0")?;
    // SAFETY: Envoy's functions of these names have these signatures (see the module's
    // comment); a data pointer from dlsym of a function is its address.
    unsafe {
        Some(Fns {
            subscribe: std::mem::transmute::<*mut c_void, SubscribeFn>(s),
            config_get: std::mem::transmute::<*mut c_void, ConfigGetFn>(c),
            filter_get: std::mem::transmute::<*mut c_void, FilterGetFn>(f),
        })
    }
}

#[cfg(test)]
fn lookup() -> Option<Fns> {
    use crate::fake_envoy as f;
    Some(Fns {
        subscribe: f::envoy_dynamic_module_callback_http_filter_config_generic_secret_subscribe,
        config_get: f::envoy_dynamic_module_callback_http_filter_config_get_generic_secret,
        filter_get: f::envoy_dynamic_module_callback_http_filter_get_generic_secret,
    })
}

fn fns() -> Option<&'static Fns> {
    static FNS: OnceLock<Option<Fns>> = OnceLock::new();
    FNS.get_or_init(lookup).as_ref()
}

/// A subscribed secret of a filter configuration.
#[derive(Clone, Copy, Debug)]
pub struct SecretHandle(usize);

/// Subscribe `config` to secret `name` (`config_source`: SDS `ConfigSource` JSON, or empty
/// for a static secret). Only in `on_http_filter_config_new`.
pub fn subscribe(
    config: ConfigRef,
    name: &str,
    config_source: &str,
) -> Result<SecretHandle, String> {
    let f = fns().ok_or_else(|| {
        String::from(
            "this Envoy gives dynamic modules no SDS secrets (Envoy 1.40 or later is needed)",
        )
    })?;
    // SAFETY: the configuration being created (the caller's contract), on the main thread;
    // both buffers are ours and live during the call, Envoy copies them.
    let h = unsafe {
        (f.subscribe)(
            config.ptr(),
            ModuleBuffer::of(name.as_bytes()),
            ModuleBuffer::of(config_source.as_bytes()),
        )
    };
    if h == 0 {
        Err(format!(
            "Envoy could not subscribe to secret \"{name}\" (Envoy's line above says why: no \
             such static secret in static_resources.secrets, a config_source that is not a \
             ConfigSource, or no node id and cluster for SDS)"
        ))
    } else {
        Ok(SecretHandle(h))
    }
}

/// On the main thread: `f` of the current value of `secret` of `config`.
pub fn with_config_secret<R>(
    config: ConfigRef,
    secret: SecretHandle,
    f: impl FnOnce(&[u8]) -> R,
) -> Option<R> {
    let fns = fns()?;
    let mut out = EnvoyBuffer::NULL;
    // SAFETY: a live configuration, on the main thread; `out` is ours to write.
    let ok = unsafe { (fns.config_get)(config.ptr(), secret.0, &mut out) };
    // SAFETY: Envoy's view of the value, valid during this hook; copied or read in `f` only.
    ok.then(|| f(unsafe { out.bytes() }))
}

/// On a stream's worker: `f` of the current value of `secret`, as this worker sees it.
pub fn with_stream_secret<R>(
    stream: Stream,
    secret: SecretHandle,
    f: impl FnOnce(&[u8]) -> R,
) -> Option<R> {
    let fns = fns()?;
    let mut out = EnvoyBuffer::NULL;
    // SAFETY: a live stream on its worker (see `Stream::new`); `out` is ours to write.
    let ok = unsafe { (fns.filter_get)(stream.ptr(), secret.0, &mut out) };
    // SAFETY: Envoy's view of the value, valid during this hook; read in `f` only.
    ok.then(|| f(unsafe { out.bytes() }))
}
