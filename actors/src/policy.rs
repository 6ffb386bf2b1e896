//! Policies between learners and the actors that run them: versions on the wire ([`chunks`]),
//! who receives a model's versions ([`sink`]: the registry a learner publishes to), the copy
//! an inference actor serves from ([`replica`]), the versions a step is sampled with ([`pins`]),
//! checkpoint I/O ([`checkpoints`]) and the health
//! check of a swap's candidate ([`health`]) and the tokenizer check of outside weights
//! ([`tokenizer_check`]).
//!
//! The learner never names the inference actors' types: the node hands it a [`PolicySinks`]
//! registry built from the variant's role map, and each inference actor's message type
//! implements [`PolicySink`]; inference actors pull from a learner through [`PolicySource`].
pub mod checkpoints;
pub mod chunks;
pub mod health;
pub mod pins;
pub mod replica;
pub mod sink;
pub mod tokenizer_check;

pub use checkpoints::{TrainState, load_learner, save_learner};
pub use chunks::{Assembler, PolicyChunk, PolicyId};
pub use pins::Pins;
pub use replica::{PolicySource, Replica, fetch};
pub use sink::{PolicySink, PolicySinks};
