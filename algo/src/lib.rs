//! M-GRPO maths with no I/O.
pub mod batch;
pub use batch::TrainBatch;
