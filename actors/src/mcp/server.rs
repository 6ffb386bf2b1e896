//! One stdio MCP server: started as a child process, its tools listed at start, called with a
//! deadline, and restarted at the next call after it crashed or hung.
//!
//! Why restart lazily: a call in flight when the server dies (or past its deadline) gets an
//! error observation at once; restarting inside that call would make its latency, and whether
//! a half-done side effect repeats, depend on timing. The next call finds no live connection
//! and starts a fresh process first, so one bad call costs one error observation.
use std::time::{Duration, Instant};

use mgrpo_env::{ToolCall, ToolSpec};
use rmcp::model::{CallToolRequestParams, CallToolResult, ContentBlock};
use rmcp::service::{RoleClient, RunningService, ServiceError};
use rmcp::transport::TokioChildProcess;
use rmcp::{ClientHandler, ServiceExt};

use crate::mcp::config::ToolServerConfig;

/// Why a server could not be started.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The program could not be spawned.
    #[error("tool server {server}: cannot start {command:?}: {source}")]
    Spawn {
        /// The server's name.
        server: String,
        /// Its command.
        command: String,
        /// Why.
        source: std::io::Error,
    },
    /// The MCP handshake or the tool list failed.
    #[error("tool server {server}: {why} (is {command:?} an MCP server speaking stdio?)")]
    Handshake {
        /// The server's name.
        server: String,
        /// Its command.
        command: String,
        /// What failed.
        why: String,
    },
}

/// Why a call failed; its text is what the agent reads after `error :`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CallFailure {
    /// The tool ran and reported an error (`isError`).
    #[error("{0}")]
    Tool(String),
    /// The server answered with a JSON-RPC error (an unknown tool, invalid params).
    #[error("{0}")]
    Rejected(String),
    /// No answer within the deadline.
    #[error("timed out after {0} ms")]
    Timeout(u64),
    /// The server exited during the call.
    #[error("server failed : {0}")]
    Server(String),
    /// The server was down and could not be restarted.
    #[error("server failed : cannot restart : {0}")]
    Unavailable(String),
}

/// A client that does nothing but call: no sampling, no roots, no elicitation.
#[derive(Debug, Clone, Default)]
struct Caller;

impl ClientHandler for Caller {}

type Connection = RunningService<RoleClient, Caller>;

/// A connection to one server, and the tools it listed when it started.
pub struct McpServer {
    config: ToolServerConfig,
    connection: Option<Connection>,
    tools: Vec<ToolSpec>,
    restarts: u64,
}

impl std::fmt::Debug for McpServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("McpServer")
            .field("name", &self.config.name)
            .field("live", &self.connection.is_some())
            .field("restarts", &self.restarts)
            .finish()
    }
}

/// Spawns the server and runs the MCP handshake.
async fn connect(config: &ToolServerConfig) -> Result<Connection, StartError> {
    let mut cmd = tokio::process::Command::new(config.mcp.program());
    cmd.args(&config.mcp.args)
        .envs(&config.mcp.env)
        // Whatever happens to this node's handle, the child does not outlive it.
        .kill_on_drop(true);
    if let Some(dir) = &config.mcp.cwd {
        cmd.current_dir(dir);
    }
    let transport = TokioChildProcess::new(cmd).map_err(|source| StartError::Spawn {
        server: config.name.clone(),
        command: config.mcp.command.clone(),
        source,
    })?;
    let handshake = |why: String| StartError::Handshake {
        server: config.name.clone(),
        command: config.mcp.command.clone(),
        why,
    };
    let deadline = Duration::from_millis(config.start_timeout_ms);
    match tokio::time::timeout(deadline, Caller.serve(transport)).await {
        Ok(Ok(c)) => Ok(c),
        Ok(Err(e)) => Err(handshake(format!("handshake failed: {e}"))),
        Err(_) => Err(handshake(format!(
            "no handshake within {} ms",
            config.start_timeout_ms
        ))),
    }
}

/// The tool as the protocol binds it.
fn spec(tool: rmcp::model::Tool) -> ToolSpec {
    ToolSpec {
        name: tool.name.to_string(),
        description: tool.description.map(|d| d.to_string()).unwrap_or_default(),
        input_schema: (*tool.input_schema).clone(),
    }
}

/// A call result's text: its text blocks joined by spaces, else its structured content as
/// JSON; other blocks (images, audio, resources) are named, not shown.
fn result_text(result: &CallToolResult) -> String {
    let mut parts: Vec<String> = result
        .content
        .iter()
        .map(|c| match c {
            ContentBlock::Text(t) => t.text.clone(),
            _ => "non-text content".to_string(),
        })
        .collect();
    if parts.is_empty()
        && let Some(s) = &result.structured_content
    {
        parts.push(s.to_string());
    }
    parts.join(" ")
}

impl McpServer {
    /// Starts the server and lists its tools (all of them, or those `expose` names: one it
    /// lacks is an error).
    pub async fn start(config: ToolServerConfig) -> Result<Self, StartError> {
        let connection = connect(&config).await?;
        let handshake = |why: String| StartError::Handshake {
            server: config.name.clone(),
            command: config.mcp.command.clone(),
            why,
        };
        let deadline = Duration::from_millis(config.start_timeout_ms);
        let listed = match tokio::time::timeout(deadline, connection.list_all_tools()).await {
            Ok(Ok(t)) => t,
            Ok(Err(e)) => return Err(handshake(format!("tools/list failed: {e}"))),
            Err(_) => {
                return Err(handshake(format!(
                    "no tool list within {} ms",
                    config.start_timeout_ms
                )));
            }
        };
        let mut tools: Vec<ToolSpec> = listed.into_iter().map(spec).collect();
        if let Some(expose) = &config.expose {
            if let Some(missing) = expose.iter().find(|n| !tools.iter().any(|t| &t.name == *n)) {
                let offered: Vec<&str> = tools.iter().map(|t| t.name.as_str()).collect();
                return Err(handshake(format!(
                    "expose names {missing:?}, which the server does not offer (it offers: {})",
                    offered.join(", ")
                )));
            }
            tools.retain(|t| expose.contains(&t.name));
        }
        tracing::info!(server = %config.name, tools = tools.len(), "tool server started");
        Ok(Self {
            config,
            connection: Some(connection),
            tools,
            restarts: 0,
        })
    }

    /// Its config.
    pub fn config(&self) -> &ToolServerConfig {
        &self.config
    }

    /// The tools it listed at start (the specs calls are bound against).
    pub fn tools(&self) -> &[ToolSpec] {
        &self.tools
    }

    /// How many times it was restarted.
    pub fn restarts(&self) -> u64 {
        self.restarts
    }

    /// A live connection: the current one, or a fresh process when the last one died or hung.
    async fn live(&mut self) -> Result<&Connection, CallFailure> {
        let dead = self
            .connection
            .as_ref()
            .is_none_or(|c| c.is_closed() || c.is_transport_closed());
        if dead {
            self.connection = None;
            self.restarts += 1;
            tracing::warn!(server = %self.config.name, restarts = self.restarts, "restarting tool server");
            let c = connect(&self.config)
                .await
                .map_err(|e| CallFailure::Unavailable(e.to_string()))?;
            self.connection = Some(c);
        }
        self.connection
            .as_ref()
            .ok_or_else(|| CallFailure::Unavailable("no connection".into()))
    }

    /// Runs one bound call within the deadline: the tool's output text, or why it failed.
    /// A timeout or a closed connection drops the process (killed), so the next call restarts
    /// it.
    pub async fn call(&mut self, call: &ToolCall) -> Result<String, CallFailure> {
        let timeout_ms = self.config.timeout_ms;
        let connection = self.live().await?;
        let params =
            CallToolRequestParams::new(call.name.clone()).with_arguments(call.arguments.clone());
        let started = Instant::now();
        // Dropping the request future on timeout sends `notifications/cancelled`.
        let outcome = tokio::time::timeout(
            Duration::from_millis(timeout_ms),
            connection.call_tool(params),
        )
        .await;
        tracing::debug!(server = %self.config.name, tool = %call.name, elapsed = ?started.elapsed(), "tool call");
        match outcome {
            Ok(Ok(result)) if result.is_error == Some(true) => {
                Err(CallFailure::Tool(result_text(&result)))
            }
            Ok(Ok(result)) => Ok(result_text(&result)),
            Ok(Err(ServiceError::McpError(e))) => Err(CallFailure::Rejected(e.message.to_string())),
            Ok(Err(e)) => {
                self.connection = None;
                Err(CallFailure::Server(e.to_string()))
            }
            Err(_) => {
                tracing::warn!(server = %self.config.name, tool = %call.name, timeout_ms, "tool call timed out; the server restarts at its next call");
                self.connection = None;
                Err(CallFailure::Timeout(timeout_ms))
            }
        }
    }

    /// Closes the connection (the child is asked to exit, then killed).
    pub async fn shutdown(&mut self) {
        if let Some(mut c) = self.connection.take() {
            let _ = c.close_with_timeout(Duration::from_secs(1)).await;
        }
    }
}
