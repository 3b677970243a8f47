//! Vault callouts that no request carries: background refreshes, and the fetches whose
//! carrier went away. Envoy cancels a stream's callouts when the stream is destroyed, and a
//! refresh outlives the request whose event started it; so these are made by the filter
//! configuration on the main thread (a configuration callout), and their answers come back
//! to the worker through its [`Mailbox`]:
//!
//! 1. the worker queues a [`Job`] on its configuration's [`MainThread`] and commits the
//!    configuration scheduler;
//! 2. on the main thread, `on_http_filter_config_scheduled` starts the queued callouts;
//! 3. `on_http_filter_config_http_callout_done` puts the answer into the worker's mailbox and
//!    wakes the worker through its waker (the scheduler of one of its live requests), if it
//!    has one;
//! 4. the worker hands the answers to its engine at the start of its next event (the waker's
//!    `on_http_filter_scheduled`, or any other).
//!
//! A worker keeps a waker while such callouts are pending and it has a live request, so a
//! request paused on one of them is resumed when the answer comes, not at the next request.

use crate::envoy::{ConfigRef, ConfigScheduler, FilterScheduler};
use grant_sigv4_core::engine::{CalloutToken, RequestId};
use log::warn;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

/// The event id of a wake-up on a worker's waker.
pub const WAKE: u64 = 1;

/// A vault answer: the worker's callout token, `:status` (none: no answer) and body.
pub struct Answer {
    pub token: CalloutToken,
    pub status: Option<u32>,
    pub body: Vec<u8>,
}

#[derive(Default)]
struct Inbox {
    answers: Vec<Answer>,
    /// Callouts of this worker on the main thread, not answered yet.
    pending: usize,
    /// The scheduler of one live request of the worker, and its id.
    waker: Option<(RequestId, FilterScheduler)>,
    /// A request of the worker is paused: the ticker wakes the worker every second
    /// (`ticker`), since the engine work it may wait for starts at a tick.
    wants_ticks: bool,
}

/// One worker's answers from the main thread.
#[derive(Default)]
pub struct Mailbox {
    inbox: Mutex<Inbox>,
    /// Answers are waiting (checked without the lock at every event).
    ready: AtomicBool,
}

impl Mailbox {
    fn lock(&self) -> MutexGuard<'_, Inbox> {
        // Every update is a push, a take or a counter step: a poisoned lock is still sound.
        self.inbox.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A callout of this worker went to the main thread.
    pub fn sent(&self) {
        self.lock().pending += 1;
    }

    fn deliver(&self, answer: Answer) {
        let mut inbox = self.lock();
        inbox.answers.push(answer);
        inbox.pending = inbox.pending.saturating_sub(1);
        self.ready.store(true, Ordering::Release);
        if let Some((_, waker)) = &inbox.waker {
            waker.commit(WAKE);
        }
    }

    /// A callout of this worker could not be sent: its answer is a failure.
    pub fn failed(&self, token: CalloutToken) {
        let mut inbox = self.lock();
        inbox.answers.push(Answer {
            token,
            status: None,
            body: Vec::new(),
        });
        self.ready.store(true, Ordering::Release);
        if let Some((_, waker)) = &inbox.waker {
            waker.commit(WAKE);
        }
    }

    /// The answers that came since the last call (cheap when there are none).
    pub fn take(&self) -> Vec<Answer> {
        if !self.ready.load(Ordering::Acquire) {
            return Vec::new();
        }
        let mut inbox = self.lock();
        self.ready.store(false, Ordering::Release);
        std::mem::take(&mut inbox.answers)
    }

    /// Answers taken but not handed to their engine yet, kept for a later event. Answers of
    /// callouts the worker forgot (their configuration is gone) are dropped when taken again.
    pub fn put_back(&self, answers: Vec<Answer>) {
        if answers.is_empty() {
            return;
        }
        let mut inbox = self.lock();
        inbox.answers.extend(answers);
        self.ready.store(true, Ordering::Release);
    }

    /// Whether callouts are pending or ticks wanted, and the worker has no waker: then it
    /// should make one.
    pub fn needs_waker(&self) -> bool {
        let inbox = self.lock();
        (inbox.pending > 0 || inbox.wants_ticks) && inbox.waker.is_none()
    }

    /// Whether the ticker should wake the worker every second.
    pub fn want_ticks(&self, on: bool) {
        self.lock().wants_ticks = on;
    }

    /// From the ticker thread: wake the worker if it wants ticks.
    pub fn tick_wake(&self) {
        let inbox = self.lock();
        if let (true, Some((_, waker))) = (inbox.wants_ticks, &inbox.waker) {
            waker.commit(WAKE);
        }
    }

    pub fn set_waker(&self, id: RequestId, waker: FilterScheduler) {
        let mut inbox = self.lock();
        if inbox.waker.is_none() {
            inbox.waker = Some((id, waker));
        }
    }

    /// Request `id` is destroyed: if it was the waker, the waker is deleted. Returns whether
    /// a new one is needed.
    pub fn request_gone(&self, id: RequestId) -> bool {
        let mut inbox = self.lock();
        if inbox.waker.as_ref().is_some_and(|(w, _)| *w == id) {
            // Deleted on this worker, the stream's own, before the stream is.
            inbox.waker = None;
            return inbox.pending > 0 || inbox.wants_ticks;
        }
        false
    }
}

/// A callout for the main thread to make.
pub struct Job {
    pub mailbox: Arc<Mailbox>,
    pub token: CalloutToken,
    pub cluster: String,
    pub headers: Vec<(String, Vec<u8>)>,
    pub body: Vec<u8>,
    pub timeout_ms: u32,
}

/// A filter configuration's callouts on the main thread.
pub struct MainThread {
    /// Shared with the ticker thread, which commits [`crate::main_engine::TICK`] every second.
    scheduler: Option<Arc<ConfigScheduler>>,
    jobs: Mutex<Vec<Job>>,
    /// Configuration callouts under way, by Envoy's id: whose answer they are.
    in_flight: Mutex<HashMap<u64, (Arc<Mailbox>, CalloutToken)>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl MainThread {
    /// Made with the configuration, on the main thread.
    pub fn new(config: ConfigRef) -> MainThread {
        let scheduler = config.scheduler().map(Arc::new);
        if scheduler.is_none() {
            warn!("no configuration scheduler: background refreshes are made by requests");
        }
        MainThread {
            scheduler,
            jobs: Mutex::new(Vec::new()),
            in_flight: Mutex::new(HashMap::new()),
        }
    }

    /// The configuration's scheduler, for the ticker thread to commit ticks on.
    pub fn scheduler(&self) -> Option<&Arc<ConfigScheduler>> {
        self.scheduler.as_ref()
    }

    /// Run the main engine's first tick as soon as the main thread is free (the ticker
    /// commits the next ones); false without a scheduler.
    pub fn tick_soon(&self) -> bool {
        match &self.scheduler {
            Some(s) => {
                s.commit(crate::main_engine::TICK);
                true
            }
            None => false,
        }
    }

    /// From a worker: have the main thread make this callout. False when it cannot.
    pub fn submit(&self, job: Job) -> bool {
        let Some(s) = &self.scheduler else {
            return false;
        };
        job.mailbox.sent();
        lock(&self.jobs).push(job);
        s.commit(0);
        true
    }

    /// On the main thread (`on_http_filter_config_scheduled`): start the queued callouts.
    pub fn start_jobs(&self, config: ConfigRef) {
        let jobs = std::mem::take(&mut *lock(&self.jobs));
        for job in jobs {
            let hs: Vec<(&str, &[u8])> = job
                .headers
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_slice()))
                .collect();
            match config.http_callout(&job.cluster, &hs, &job.body, u64::from(job.timeout_ms)) {
                Ok(id) => {
                    lock(&self.in_flight).insert(id, (job.mailbox, job.token));
                }
                Err(code) => {
                    warn!(
                        "vault callout to cluster {} failed to start (result {code})",
                        job.cluster
                    );
                    job.mailbox.deliver(Answer {
                        token: job.token,
                        status: None,
                        body: Vec::new(),
                    });
                }
            }
        }
    }

    /// On the main thread (`on_http_filter_config_http_callout_done`): hand the answer of
    /// callout `id` to its worker.
    pub fn answered(&self, id: u64, status: Option<u32>, body: Vec<u8>) {
        if let Some((mailbox, token)) = lock(&self.in_flight).remove(&id) {
            mailbox.deliver(Answer {
                token,
                status,
                body,
            });
        }
    }
}
