//! The one way a message goes from one role to another.
//!
//! Roles find each other through `ractor::pg` groups scoped to the run ([`groups`]), never by
//! name. Every payload that may cross a node is a [`Wire`] value in the project's one versioned
//! codec ([`wire`]). Every request goes through [`request`]: it carries a request id and a
//! timeout, retries on another (or a restarted) member, and relies on the callee being
//! idempotent; casts and broadcasts go through the same file, so a fault hook placed there
//! ([`crate::faults`]) sees every message between roles.
pub mod error;
pub mod groups;
pub mod request;
pub mod wire;

pub use error::RequestError;
pub use groups::{join, members, present, wait_member};
pub use request::{
    RequestId, STOPPED_BEFORE_REPLY, broadcast, call_each, call_member, cast, request,
};
pub use wire::{Reply, Wire};
