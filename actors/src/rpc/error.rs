//! Why a message between roles did not get its answer.
use std::time::Duration;

/// A request between roles that did not succeed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum RequestError {
    /// No member of the group appeared in time.
    #[error("no {group} is running (waited {waited:?})")]
    NoMember {
        /// The group.
        group: &'static str,
        /// How long.
        waited: Duration,
    },
    /// Every attempt failed.
    #[error("{group} did not answer after {attempts} attempts: {last}")]
    Exhausted {
        /// The group.
        group: &'static str,
        /// Attempts made.
        attempts: u32,
        /// The last failure.
        last: String,
    },
    /// The callee answered with an error.
    #[error("{group} failed: {message}")]
    Failed {
        /// The group.
        group: &'static str,
        /// Its message.
        message: String,
    },
    /// A cast could not be delivered.
    #[error("could not send to {group}: {message}")]
    Send {
        /// The group.
        group: &'static str,
        /// Why.
        message: String,
    },
}
