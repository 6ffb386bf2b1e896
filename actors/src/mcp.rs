//! Tools over MCP (Model Context Protocol): the stdio servers a task configures
//! (`[[task.tools]]`, [`config`]), started by the node that hosts the executors, each a
//! restartable client with a deadline per call ([`server`]), gathered into one tool box that
//! turns a sub-agent's call into its observation ([`toolbox`]).
//!
//! Why here and not in env/: a server is a child process and its calls are I/O on the tokio
//! runtime; env/ stays pure and only parses and binds calls (`mgrpo_env::tool_call`). The
//! lockstep driver runs a turn's calls between two sampling batches, as it runs delegations.
//! See docs/tools.md.
pub mod config;
pub mod server;
pub mod toolbox;

pub use config::{McpCommand, ToolServerConfig};
pub use server::{CallFailure, McpServer, StartError};
pub use toolbox::{CallStatus, McpTools, ToolBoxError, ToolUse, list_tools};
