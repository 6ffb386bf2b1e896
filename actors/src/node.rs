//! One node's supervision tree: the supervisor with its restart policy ([`supervisor`]) and the
//! children a node's placement gives it ([`tree`]).
//!
//! ```text
//! NodeSupervisor (restarts children with backoff, meltdown cap)
//!  ├─ NodeAgent       what runs here, link counters, faults, shutdown
//!  ├─ StoreActor      owns the sled store; all writes go through it
//!  ├─ Judge           rewards: format, correctness, expert score
//!  ├─ MainLearner     trains M; publishes versions to planners (and executors when shared)
//!  ├─ SubLearner      trains S; publishes versions to executors
//!  ├─ Executor ×m     sub-agent inference + tools
//!  ├─ Planner ×n      main-agent inference; K rollouts per query
//!  └─ Coordinator     drives the steps
//! ```
pub mod supervisor;
pub mod tree;

pub use supervisor::{NodeEvent, NodeMsg, NodeSupervisor, RestartPolicy};
pub use tree::{Node, NodeSpec, TreeError, start_placed_node};
