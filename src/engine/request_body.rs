//! Bodies hashed by the host: for a host that can read a whole request body and still change
//! its headers (the native Envoy module), a request whose payload hash is not known when its
//! headers arrive is not refused with `PayloadHashRequired`. Its headers event answers
//! [`Action::BufferBody`]; the host buffers the body (at most `max_body_bytes`) and hands in
//! its SHA-256 ([`Engine::on_request_body`]), or tells that it grew past the limit
//! ([`Engine::on_request_body_too_large`]); the request is then signed (or waits for its
//! grant) as if the hash had come with the headers.
//!
//! A `content-length` over `max_body_bytes` is refused when the request is planned, before
//! anything is buffered.

use super::{no_clock, Action, Engine, Host, RequestId};
use crate::errors::{ErrorCode, LocalError};
use crate::request::Plan;

impl Engine {
    /// Let the host buffer and hash request bodies whose hash is not known at headers time
    /// (a host that cannot read a body before it forwards the headers must not call this).
    pub fn hash_bodies_in_host(&mut self) {
        self.body_hashing = true;
    }

    /// The most body bytes the host buffers for hashing (0 before configuration).
    pub fn max_body_bytes(&self) -> u64 {
        self.config.as_ref().map_or(0, |c| c.max_body_bytes)
    }

    /// Request `id` is planned and needs its body's hash.
    pub(super) fn await_body(&mut self, id: RequestId, plan: Plan) -> Action {
        self.state(id).awaiting_body = Some(Box::new(plan));
        Action::BufferBody
    }

    /// Whether request `id` waits for the hash of its body.
    pub fn awaits_body(&self, id: RequestId) -> bool {
        self.requests
            .get(&id)
            .is_some_and(|s| s.awaiting_body.is_some())
    }

    /// The whole body of request `id` is buffered: `sha256_hex` is its SHA-256, in lowercase
    /// hex. Signs the request ([`Action::Continue`]) or pauses it until its grant is fetched,
    /// as its headers event would have.
    pub fn on_request_body(
        &mut self,
        host: &mut impl Host,
        id: RequestId,
        sha256_hex: &str,
    ) -> Action {
        let Some(mut plan) = self
            .requests
            .get_mut(&id)
            .and_then(|s| s.awaiting_body.take())
        else {
            // Never forward what was not planned and signed.
            self.refuse(
                host,
                id,
                &LocalError::internal("a body that was not awaited"),
            );
            return Action::Pause;
        };
        let Some(cfg) = self.config.clone() else {
            self.refuse(
                host,
                id,
                &LocalError::internal("the filter is not configured"),
            );
            return Action::Pause;
        };
        let Some(now_ms) = host.now_ms() else {
            self.refuse_planned(host, id, &no_clock(), &plan);
            return Action::Pause;
        };
        plan.payload_hash = sha256_hex.to_ascii_lowercase();
        plan.payload_hash_as_sent = false;
        self.sign_planned(host, &cfg, id, *plan, now_ms)
    }

    /// The body of request `id` grew past `max_body_bytes` while it was buffered (it had no
    /// `content-length`, or a wrong one): it is answered 413 `BodyTooLarge`.
    pub fn on_request_body_too_large(&mut self, host: &mut impl Host, id: RequestId) {
        let limit = self.max_body_bytes();
        let e = LocalError::new(
            ErrorCode::BodyTooLarge,
            format!("the body is more than max_body_bytes ({limit})"),
        );
        match self
            .requests
            .get_mut(&id)
            .and_then(|s| s.awaiting_body.take())
        {
            Some(plan) => self.refuse_planned(host, id, &e, &plan),
            None => self.refuse(host, id, &e),
        }
    }
}
