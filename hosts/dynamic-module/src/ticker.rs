//! Ticks for workers with nothing else to wake them. The engine's tick runs at the start of
//! a worker's events (`worker`); a request paused on work that only a tick starts (a grant
//! read waiting for the filter's login while it backs off, or for another worker's login)
//! would otherwise wait for the next event of its worker, on an idle worker until Envoy's
//! stream timeout. Envoy gives an HTTP filter no timer, so one thread per process wakes, once
//! a second, each worker that asked ([`Mailbox::want_ticks`]) through its waker, whose
//! `on_http_filter_scheduled` runs the tick.
//!
//! It also commits, once a second, a tick of each filter configuration's main-thread engine
//! (`main_engine`: the vault token kept alive with no request) on its scheduler.
//!
//! The thread runs while a filter configuration lives: started by the first, stopped and
//! joined when the last is dropped (before Envoy can unload the module).

use crate::background::Mailbox;
use crate::envoy::ConfigScheduler;
use log::warn;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, OnceLock, Weak};
use std::thread::JoinHandle;
use std::time::Duration;

const PERIOD: Duration = Duration::from_secs(1);

#[derive(Default)]
struct State {
    /// Live filter configurations.
    users: usize,
    stop: bool,
    mailboxes: Vec<Weak<Mailbox>>,
    /// The filter configurations' schedulers: each gets a tick of its main engine
    /// (`main_engine`) every period.
    configs: Vec<Weak<ConfigScheduler>>,
    thread: Option<JoinHandle<()>>,
}

fn ticker() -> &'static (Mutex<State>, Condvar) {
    static TICKER: OnceLock<(Mutex<State>, Condvar)> = OnceLock::new();
    TICKER.get_or_init(Default::default)
}

fn lock() -> MutexGuard<'static, State> {
    // Every update is a counter step or a push: a poisoned lock is still sound.
    ticker().0.lock().unwrap_or_else(|e| e.into_inner())
}

fn run() {
    let (_, cv) = ticker();
    let mut s = lock();
    while !s.stop {
        s = match cv.wait_timeout(s, PERIOD) {
            Ok((g, _)) => g,
            Err(e) => e.into_inner().0,
        };
        if s.stop {
            break;
        }
        s.mailboxes.retain(|m| m.strong_count() > 0);
        for m in s.mailboxes.iter().filter_map(Weak::upgrade) {
            m.tick_wake();
        }
        s.configs.retain(|c| c.strong_count() > 0);
        for c in s.configs.iter().filter_map(Weak::upgrade) {
            c.commit(crate::main_engine::TICK);
        }
    }
}

/// A filter configuration is made: the thread runs.
pub fn acquire() {
    let mut s = lock();
    s.users += 1;
    if s.thread.is_none() {
        s.stop = false;
        match std::thread::Builder::new()
            .name("grant-sigv4-ticker".into())
            .spawn(run)
        {
            Ok(t) => s.thread = Some(t),
            Err(e) => warn!("no ticker thread ({e}): idle workers tick at their next request"),
        }
    }
}

/// A filter configuration is gone: the last one stops the thread and waits for it.
pub fn release() {
    let thread = {
        let mut s = lock();
        s.users = s.users.saturating_sub(1);
        if s.users > 0 {
            return;
        }
        s.stop = true;
        s.thread.take()
    };
    ticker().1.notify_all();
    if let Some(t) = thread {
        if t.join().is_err() {
            warn!("the ticker thread ended with a panic");
        }
    }
}

/// Wake `mailbox`'s worker at each period while it wants ticks.
pub fn register(mailbox: &Arc<Mailbox>) {
    let mut s = lock();
    let w = Arc::downgrade(mailbox);
    if !s.mailboxes.iter().any(|m| m.ptr_eq(&w)) {
        s.mailboxes.push(w);
    }
}

/// Commit a tick of a filter configuration's main engine on `scheduler` at each period.
pub fn register_config(scheduler: &Arc<ConfigScheduler>) {
    lock().configs.push(Arc::downgrade(scheduler));
}
