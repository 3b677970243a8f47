//! grant-sigv4 as a proxy-wasm module: the ABI (0.2.1) entry points, which turn what Envoy
//! calls into engine events ([`grant_sigv4_core::engine`]), the host calls ([`hostcalls`])
//! and the engine's host on them ([`host`]). No filter logic lives here.
//!
//! Envoy (proxy-wasm-cpp-host) enters the VM only for the callbacks a module exports and skips
//! the others. The SDK crate exports all of them, so every request paid VM entries for
//! callbacks the filter does not use (response body, `on_done`, `on_log`, and one per body
//! chunk of every upload). This module exports only what the filter needs:
//!
//! - per request: `proxy_on_context_create`, `proxy_on_request_headers`,
//!   `proxy_on_response_headers`, `proxy_on_delete`;
//! - per plugin: `proxy_on_vm_start`, `proxy_on_configure`, `proxy_on_tick`;
//! - per vault answer: `proxy_on_http_call_response` (Envoy makes every callout on the root
//!   context and delivers its answer there, whatever became of the request that started it);
//! - memory and ABI: `proxy_on_memory_allocate`, `proxy_abi_version_0_2_1`, `_initialize`.

#[cfg_attr(not(target_arch = "wasm32"), allow(dead_code))]
mod pairs;

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod header_map_fuzz;

#[cfg(target_arch = "wasm32")]
mod host;
#[cfg(target_arch = "wasm32")]
mod hostcalls;

#[cfg(target_arch = "wasm32")]
mod exports {
    use crate::host::WasmHost;
    use crate::hostcalls::{self, Buffer, HeaderMap};
    use grant_sigv4_core::engine::{Action, Engine, IdMap};
    use grant_sigv4_core::retry_stash::RetryStash;
    use std::cell::RefCell;
    use std::rc::Rc;

    /// A plugin instance's engine, shared by its root context and its requests.
    type EngineRef = Rc<RefCell<Engine>>;

    /// The plugin instances of this VM (one per root context) and the requests under way.
    #[derive(Default)]
    struct Vm {
        roots: Vec<(u32, EngineRef)>,
        /// Request context id -> the engine of the root it belongs to.
        requests: IdMap<EngineRef>,
        /// EngineRef by the plugin instances of this VM (precheck and signing instances).
        retries: Rc<RefCell<RetryStash>>,
        /// Requests that ended while their engine was busy (a host call of the engine made
        /// Envoy call back): told to the engine once it is free.
        ended_while_busy: Vec<(u32, EngineRef)>,
    }

    thread_local! {
        static VM: RefCell<Vm> = RefCell::new(Vm::default());
    }

    fn engine_of_request(id: u32) -> Option<EngineRef> {
        VM.with(|vm| vm.try_borrow().ok()?.requests.get(&id).cloned())
    }

    fn engine_of_root(id: u32) -> Option<EngineRef> {
        VM.with(|vm| {
            let vm = vm.try_borrow().ok()?;
            vm.roots
                .iter()
                .find(|(r, _)| *r == id)
                .map(|(_, e)| Rc::clone(e))
        })
    }

    /// Run one event on `engine` for context `current`; `None` when the engine is busy (the
    /// event re-entered the module from one of its host calls).
    fn run<T>(
        engine: &EngineRef,
        current: u32,
        f: impl FnOnce(&mut Engine, &mut WasmHost) -> T,
    ) -> Option<T> {
        let out = {
            let mut e = engine.try_borrow_mut().ok()?;
            let mut host = WasmHost::new(current);
            let out = f(&mut e, &mut host);
            host.finish();
            out
        };
        let ended: Vec<(u32, EngineRef)> = VM.with(|vm| {
            vm.try_borrow_mut()
                .map(|mut vm| std::mem::take(&mut vm.ended_while_busy))
                .unwrap_or_default()
        });
        for (id, e) in ended {
            if let Ok(mut engine) = e.try_borrow_mut() {
                let mut host = WasmHost::new(id);
                engine.on_request_done(&mut host, id);
                host.finish();
            }
        }
        Some(out)
    }

    /// Format log messages only at the level Envoy's `wasm` logger shows: a debug message
    /// that Envoy drops would still cost formatting and a host call on every request.
    fn follow_envoy_log_level() {
        let level = match hostcalls::log_level() {
            Ok(0) => log::LevelFilter::Trace,
            Ok(1) => log::LevelFilter::Debug,
            Ok(2) => log::LevelFilter::Info,
            Ok(3) => log::LevelFilter::Warn,
            Ok(_) => log::LevelFilter::Error,
            Err(_) => log::LevelFilter::Info,
        };
        if log::max_level() != level {
            log::set_max_level(level);
        }
    }

    #[cfg(target_os = "wasi")]
    extern "C" {
        fn __wasm_call_ctors();
    }

    /// Module start: constructors, the logger.
    #[no_mangle]
    pub extern "C" fn _initialize() {
        #[cfg(target_os = "wasi")]
        // SAFETY: the WASI start-up function, called once by the host before any other export.
        unsafe {
            __wasm_call_ctors();
        }
        hostcalls::install_logger();
    }

    #[no_mangle]
    pub extern "C" fn proxy_abi_version_0_2_1() {}

    /// Envoy allocates here the memory for what it hands to the module (header maps, buffers).
    #[no_mangle]
    pub extern "C" fn proxy_on_memory_allocate(size: usize) -> *mut u8 {
        let mut v: Vec<u8> = Vec::with_capacity(size);
        let p = v.as_mut_ptr();
        std::mem::forget(v);
        p
    }

    #[no_mangle]
    pub extern "C" fn proxy_on_context_create(context_id: u32, parent_id: u32) {
        VM.with(|vm| {
            let Ok(mut vm) = vm.try_borrow_mut() else {
                return;
            };
            if parent_id == 0 {
                let engine = Engine::new(Rc::clone(&vm.retries));
                vm.roots.push((context_id, Rc::new(RefCell::new(engine))));
            } else if let Some(e) = vm.roots.iter().find(|(r, _)| *r == parent_id) {
                let e = Rc::clone(&e.1);
                vm.requests.insert(context_id, e);
            }
        });
    }

    #[no_mangle]
    pub extern "C" fn proxy_on_vm_start(_root_id: u32, _size: usize) -> u32 {
        1
    }

    #[no_mangle]
    pub extern "C" fn proxy_on_configure(root_id: u32, size: usize) -> u32 {
        follow_envoy_log_level();
        let bytes = if size == 0 {
            Vec::new()
        } else {
            hostcalls::get_buffer(Buffer::PluginConfiguration, size).unwrap_or_default()
        };
        let ok = engine_of_root(root_id).and_then(|e| {
            run(&e, root_id, |e, host| {
                e.on_configure(host, &bytes, |name| std::env::var(name).ok())
            })
        });
        u32::from(ok.unwrap_or(false))
    }

    #[no_mangle]
    pub extern "C" fn proxy_on_tick(root_id: u32) {
        follow_envoy_log_level();
        if let Some(e) = engine_of_root(root_id) {
            run(&e, root_id, |e, host| e.on_tick(host));
        }
    }

    #[no_mangle]
    pub extern "C" fn proxy_on_request_headers(
        id: u32,
        _headers: usize,
        end_of_stream: u32,
    ) -> u32 {
        let Some(engine) = engine_of_request(id) else {
            return refuse_unhandled(id, "the request has no filter state");
        };
        let raw = hostcalls::get_map(HeaderMap::Request);
        let headers = raw.as_ref().ok().and_then(hostcalls::RawMap::pairs);
        #[cfg(feature = "crash-test")]
        if headers
            .as_ref()
            .is_some_and(|h| h.iter().any(|(k, _)| *k == "x-grant-sigv4-crash-test"))
        {
            std::process::abort();
        }
        let action = run(&engine, id, |e, host| match &headers {
            Some(h) => e.on_request_headers(host, id, h, end_of_stream != 0),
            None => e.on_request_headers_unreadable(host, id),
        });
        match action {
            Some(Action::Continue) => 0,
            // BufferBody: never asked of this host (it does not hash bodies itself).
            Some(Action::Pause | Action::BufferBody) => 1,
            None => refuse_unhandled(id, "the filter was busy"),
        }
    }

    /// Never forward a request the engine did not see: answer it 500 `InternalError`.
    fn refuse_unhandled(id: u32, why: &str) -> u32 {
        use grant_sigv4_core::engine::Host;
        let e = grant_sigv4_core::errors::LocalError::internal(why);
        let mut host = WasmHost::new(id);
        host.send_local_reply(id, &e);
        host.finish();
        1
    }

    #[no_mangle]
    pub extern "C" fn proxy_on_response_headers(id: u32, _headers: usize, _eos: u32) -> u32 {
        if let Some(e) = engine_of_request(id) {
            run(&e, id, |e, host| e.on_response_headers(host, id));
        }
        0
    }

    #[no_mangle]
    pub extern "C" fn proxy_on_http_call_response(
        root_id: u32,
        token: u32,
        _headers: usize,
        body_size: usize,
        _trailers: usize,
    ) {
        if let Some(e) = engine_of_root(root_id) {
            run(&e, root_id, |e, host| {
                e.on_callout_answer(host, token, body_size)
            });
        }
    }

    #[no_mangle]
    pub extern "C" fn proxy_on_delete(id: u32) {
        let request = VM.with(|vm| {
            let mut vm = vm.try_borrow_mut().ok()?;
            if let Some(e) = vm.requests.remove(&id) {
                return Some(e);
            }
            vm.roots.retain(|(r, _)| *r != id);
            None
        });
        if let Some(e) = request {
            if run(&e, id, |e, host| e.on_request_done(host, id)).is_none() {
                VM.with(|vm| {
                    if let Ok(mut vm) = vm.try_borrow_mut() {
                        vm.ended_while_busy.push((id, e));
                    }
                });
            }
        }
    }
}
