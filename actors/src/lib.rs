//! The actors of the M-GRPO system and the training loop they run.
//!
//! One supervision tree per node ([`node`]): a node agent, a store actor over sled, a judge, a
//! learner per model, a pool of executors (sub-agents), planners (main agents) and the
//! coordinator, each placed by `[cluster]` ([`config::cluster`]). Roles find each other through
//! `ractor::pg` groups scoped to the run, and every message between roles goes through
//! [`rpc`] (request id, timeout, idempotent retry), where faults ([`faults`]) can be injected.
//!
//! Layout, by concern (no two files import each other, directly or through a circle):
//!
//! | module | what it holds |
//! |---|---|
//! | [`role`] | roles, learners, their groups and what each variant runs (a leaf) |
//! | [`config`] | `cluster.toml`; [`config::cluster`] the `[cluster]` table |
//! | [`context`], [`run_dir`], [`staged_dir`] | what a node's actors share; the run directory's layout; directories written whole or not at all |
//! | [`rpc`] | the one send path: groups, requests, casts, the wire codec |
//! | [`policy`] | versions on the wire, who receives them, replicas, checkpoints |
//! | [`rollout`] | the one lockstep driver and the one per-variant dispatch |
//! | [`mcp`] | the task's MCP tool servers: config, restartable clients, the tool box |
//! | [`coordinator`], [`planner`], [`executor`], [`judge`], [`learner`], [`store_actor`] | the actors: state + messages + handler |
//! | [`node`] | the supervision tree of a node |
//! | [`cluster`] | links, membership, node agent, TLS |
//! | [`control`] | what `mgrpo status` asks |
//! | [`faults`] | faults armed on a node and where they strike |
//! | [`scoring`], [`scorer`] | the task's rewards: the world's judge, metrics, scorer commands |
//! | [`run`], [`warmup`], [`eval`] | run entry points, warm start, evaluation |
#![warn(missing_docs)]

pub mod cluster;
pub mod config;
pub mod context;
pub mod control;
pub mod coordinator;
pub mod eval;
pub mod executor;
pub mod faults;
pub mod judge;
pub mod learner;
pub mod mcp;
pub mod node;
pub mod planner;
pub mod policy;
pub mod role;
pub mod role_codec;
pub mod rollout;
pub mod rpc;
pub mod run;
pub mod run_dir;
pub mod scorer;
pub mod scoring;
pub mod staged_dir;
pub mod store_actor;
pub mod swap;
pub mod warmup;

pub use config::{Config, ConfigError};
pub use context::NodeContext;
pub use coordinator::Progress;
pub use node::{Node, NodeSpec, start_placed_node};
pub use run::{TrainError, cluster_scope, prepare, prepare_node, run_steps, start_node};
pub use run_dir::RunDir;
