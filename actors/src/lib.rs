//! The actors of the M-GRPO system and the training loop they run.
//!
//! One supervision tree per node (see [`node`]): a store actor over sled, a judge, a learner
//! per trained role, a pool of executors (sub-agents), planners (main agents) and the
//! coordinator. Roles find each other through `ractor::pg` groups scoped to the run
//! ([`groups`]); every request carries a timeout and is idempotent, so a retry after a crash
//! cannot double-count. Each actor's file holds its state, its messages and its handler.
#![warn(missing_docs)]

pub mod cluster;
pub mod config;
pub mod context;
pub mod coordinator;
pub mod executor;
pub mod groups;
pub mod judge;
pub mod learner;
pub mod node;
pub mod offline_eval;
pub mod placement;
pub mod planner;
pub mod policy_transfer;
pub mod rollout;
pub mod run_dir;
pub mod store_actor;
pub mod tls;
pub mod train;
pub mod warmup;
pub mod wire;

pub use config::{Config, ConfigError};
pub use context::NodeContext;
pub use coordinator::Progress;
pub use run_dir::RunDir;
pub use train::{
    Node, NodeSpec, TrainError, cluster_scope, prepare, prepare_node, run_steps, start_node,
    start_placed_node,
};
