//! The proxy-wasm ABI (0.2.1) entry points: what Envoy calls into this module.
//!
//! Envoy (proxy-wasm-cpp-host) enters the VM only for the callbacks a module exports and skips
//! the others. The SDK crate exports all of them, so every request paid VM entries for
//! callbacks the filter does not use (response body, `on_done`, `on_log`, and one per body
//! chunk of every upload). This module exports only what the filter needs:
//!
//! - per request: `proxy_on_context_create`, `proxy_on_request_headers`,
//!   `proxy_on_response_headers`, `proxy_on_delete`;
//! - per plugin: `proxy_on_vm_start`, `proxy_on_configure`, `proxy_on_tick`;
//! - per vault answer: `proxy_on_http_call_response`;
//! - memory and ABI: `proxy_on_memory_allocate`, `proxy_abi_version_0_2_1`, `_initialize`.
//!
//! It only routes each call to the root context ([`Root`]) or to the request
//! ([`crate::filter`]'s per-request functions) it is for; no state of its own is held while the
//! filter runs, so the filter may call the host (which may call back) freely.

use crate::filter::{self, Root, Shared};
use std::cell::RefCell;
use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

/// Maps keyed by context id or callout token. The ids are Envoy's own sequential
/// numbers, not request data, so a plain multiplicative hash does (SipHash, the default,
/// costs more than the rest of a lookup in the VM).
pub type IdMap<V> = HashMap<u32, V, BuildHasherDefault<IdHasher>>;

#[derive(Default)]
pub struct IdHasher(u64);

impl Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
        }
    }

    fn write_u32(&mut self, n: u32) {
        self.0 = u64::from(n).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    }
}

/// What a headers callback tells Envoy.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u32)]
pub enum Action {
    Continue = 0,
    /// Stop iteration until the filter resumes the request (or answers it).
    Pause = 1,
}

/// Root contexts (one per plugin configuration in this VM) and the requests under way.
#[derive(Default)]
#[cfg_attr(not(target_arch = "wasm32"), allow(dead_code))]
struct Contexts {
    roots: Vec<(u32, Root)>,
    /// Request context id -> the state of the root it belongs to.
    requests: IdMap<Shared>,
    /// Vault callouts started by requests: token -> request context id. Envoy makes every
    /// callout on the root context and delivers its answer there.
    callouts: IdMap<u32>,
}

thread_local! {
    static CONTEXTS: RefCell<Contexts> = RefCell::new(Contexts::default());
}

/// The worker state of request context `context_id`.
#[cfg_attr(not(target_arch = "wasm32"), allow(dead_code))]
fn worker_of(context_id: u32) -> Option<Shared> {
    CONTEXTS.with(|c| c.try_borrow().ok()?.requests.get(&context_id).cloned())
}

/// Run `f` on the root context `root_id`, if there is one.
#[cfg_attr(not(target_arch = "wasm32"), allow(dead_code))]
fn with_root<T>(root_id: u32, f: impl FnOnce(&mut Root) -> T) -> Option<T> {
    // The root is moved out while `f` runs, so that `f` may reach this table again.
    let mut root = CONTEXTS.with(|c| {
        let mut c = c.try_borrow_mut().ok()?;
        let i = c.roots.iter().position(|(id, _)| *id == root_id)?;
        Some(c.roots.swap_remove(i).1)
    })?;
    let out = f(&mut root);
    CONTEXTS.with(|c| {
        if let Ok(mut c) = c.try_borrow_mut() {
            c.roots.push((root_id, root));
        }
    });
    Some(out)
}

#[cfg_attr(not(target_arch = "wasm32"), allow(dead_code))]
fn context_create(context_id: u32, parent_id: u32) {
    CONTEXTS.with(|c| {
        let Ok(mut c) = c.try_borrow_mut() else {
            return;
        };
        if parent_id == 0 {
            c.roots.push((context_id, Root::default()));
        } else if let Some(w) = c
            .roots
            .iter()
            .find(|(id, _)| *id == parent_id)
            .map(|(_, r)| r.worker())
        {
            c.requests.insert(context_id, w);
        }
    });
}

#[cfg_attr(not(target_arch = "wasm32"), allow(dead_code))]
fn delete(context_id: u32) {
    let worker = CONTEXTS.with(|c| {
        let mut c = c.try_borrow_mut().ok()?;
        if let Some(w) = c.requests.remove(&context_id) {
            return Some(w);
        }
        c.roots.retain(|(id, _)| *id != context_id);
        None
    });
    if let Some(w) = worker {
        filter::request_done(&w, context_id);
    }
}

/// A request (context `request_id`) started the callout `token`: its answer goes to it.
pub fn callout_started(token: u32, request_id: u32) {
    CONTEXTS.with(|c| {
        if let Ok(mut c) = c.try_borrow_mut() {
            c.callouts.insert(token, request_id);
        }
    });
}

#[cfg_attr(not(target_arch = "wasm32"), allow(dead_code))]
fn http_call_response(root_id: u32, token: u32, body_size: usize) {
    let request = CONTEXTS.with(|c| {
        let mut c = c.try_borrow_mut().ok()?;
        let id = c.callouts.remove(&token)?;
        Some((id, c.requests.get(&id).cloned()))
    });
    match request {
        // The request went away meanwhile: its `request_done` answered its waiters.
        Some((_, None)) => {}
        Some((id, Some(w))) => {
            if crate::hostcalls::set_effective_context(id).is_ok() {
                filter::request_callout_answer(&w, id, body_size);
            }
        }
        None => {
            with_root(root_id, |r| r.on_http_call_response(token, body_size));
        }
    }
}

#[cfg(target_arch = "wasm32")]
mod exports {
    use super::*;
    use crate::hostcalls;

    #[cfg(target_os = "wasi")]
    extern "C" {
        fn __wasm_call_ctors();
    }

    /// Module start: constructors, the logger.
    #[no_mangle]
    pub extern "C" fn _initialize() {
        #[cfg(target_os = "wasi")]
        // SAFETY: called once, by the host, before any other export runs: the constructors
        // have not run yet, as wasi-libc's reactor start requires.
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
        context_create(context_id, parent_id);
    }

    #[no_mangle]
    pub extern "C" fn proxy_on_vm_start(_root_id: u32, _size: usize) -> u32 {
        1
    }

    #[no_mangle]
    pub extern "C" fn proxy_on_configure(root_id: u32, size: usize) -> u32 {
        u32::from(with_root(root_id, |r| r.on_configure(size)).unwrap_or(false))
    }

    #[no_mangle]
    pub extern "C" fn proxy_on_tick(root_id: u32) {
        with_root(root_id, Root::on_tick);
    }

    #[no_mangle]
    pub extern "C" fn proxy_on_request_headers(
        context_id: u32,
        _headers: usize,
        end_of_stream: u32,
    ) -> u32 {
        match worker_of(context_id) {
            Some(w) => filter::request_headers(&w, context_id, end_of_stream != 0) as u32,
            None => Action::Continue as u32,
        }
    }

    #[no_mangle]
    pub extern "C" fn proxy_on_response_headers(
        context_id: u32,
        _headers: usize,
        _end_of_stream: u32,
    ) -> u32 {
        if let Some(w) = worker_of(context_id) {
            filter::response_headers(&w, context_id);
        }
        Action::Continue as u32
    }

    #[no_mangle]
    pub extern "C" fn proxy_on_http_call_response(
        context_id: u32,
        token: u32,
        _headers: usize,
        body_size: usize,
        _trailers: usize,
    ) {
        http_call_response(context_id, token, body_size);
    }

    #[no_mangle]
    pub extern "C" fn proxy_on_delete(context_id: u32) {
        delete(context_id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn counts() -> (usize, usize, usize) {
        CONTEXTS.with(|c| {
            let c = c.borrow();
            (c.roots.len(), c.requests.len(), c.callouts.len())
        })
    }

    #[test]
    fn requests_belong_to_their_root_and_are_forgotten_when_deleted() {
        context_create(1, 0);
        context_create(2, 0);
        context_create(10, 1);
        context_create(11, 2);
        // A request of an unknown root is not tracked (Envoy never sends one).
        context_create(12, 99);
        assert_eq!(counts(), (2, 2, 0));
        let w10 = worker_of(10).unwrap();
        assert!(Rc::ptr_eq(&w10, &with_root(1, |r| r.worker()).unwrap()));
        assert!(!Rc::ptr_eq(&w10, &worker_of(11).unwrap()));
        assert!(worker_of(12).is_none());
        delete(10);
        delete(11);
        assert_eq!(counts(), (2, 0, 0));
        delete(2);
        assert_eq!(counts(), (1, 0, 0));
        assert!(with_root(1, |_| ()).is_some() && with_root(2, |_| ()).is_none());
    }

    #[test]
    fn an_answer_for_a_request_that_went_away_is_dropped() {
        context_create(1, 0);
        context_create(20, 1);
        callout_started(7, 20);
        assert_eq!(counts().2, 1);
        delete(20);
        http_call_response(1, 7, 0);
        assert_eq!(counts(), (1, 0, 0));
    }

    #[test]
    fn id_maps_hold_many_sequential_ids() {
        let mut m: IdMap<u32> = IdMap::default();
        for id in 1..20_000u32 {
            m.insert(id, id * 2);
        }
        assert!((1..20_000u32).all(|id| m.get(&id) == Some(&(id * 2))));
        assert_eq!(m.remove(&7), Some(14));
        assert_eq!(m.get(&7), None);
        assert_eq!(m.len(), 19_998);
    }

    use std::rc::Rc;
}
