//! The tool servers of a node as one tool box: a call's words in, its observation out.
//!
//! Why a mutex per server and calls in order: a server may keep state (a counter, a cache),
//! and the lockstep driver runs a turn's calls in the episodes' order, so the same seeds give
//! the same observations. Every failure — a call that does not bind (unknown tool, bad
//! arguments, bad JSON), a tool error, a timeout, a dead server — is an error observation and
//! a [`ToolUse`] the transcript records, never an error of the step.
use std::collections::{BTreeMap, BTreeSet};

use mgrpo_env::ToolSpec;
use mgrpo_env::protocol::CallForm;
use mgrpo_env::tool_call::{bind, observation};
use serde::{Deserialize, Serialize};
use tokio::sync::Mutex;

use crate::mcp::config::ToolServerConfig;
use crate::mcp::server::{CallFailure, McpServer, StartError};

/// Why a tool box could not be assembled.
#[derive(Debug, thiserror::Error)]
pub enum ToolBoxError {
    /// A server did not start.
    #[error(transparent)]
    Start(#[from] StartError),
    /// Two servers offer a tool of the same name: calls name tools, not servers.
    #[error(
        "tool {tool:?} is offered by both {first} and {second}: list one of them in the other's `expose`"
    )]
    Duplicate {
        /// The tool.
        tool: String,
        /// One server.
        first: String,
        /// The other.
        second: String,
    },
}

/// How a tool call ended, as the transcript records it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CallStatus {
    /// The tool answered.
    Ok,
    /// The call did not bind: unknown tool, bad arguments or bad JSON.
    Malformed,
    /// The tool reported an error, or the server rejected the call.
    ToolError,
    /// No answer within the server's `timeout_ms`.
    Timeout,
    /// The server had exited or could not be restarted.
    ServerFailed,
}

impl CallStatus {
    /// Its name in the store and the dump (`ok`, `malformed`, `tool_error`, `timeout`,
    /// `server_failed`).
    pub fn name(self) -> &'static str {
        match self {
            CallStatus::Ok => "ok",
            CallStatus::Malformed => "malformed",
            CallStatus::ToolError => "tool_error",
            CallStatus::Timeout => "timeout",
            CallStatus::ServerFailed => "server_failed",
        }
    }
}

/// One tool call of a sub-agent: what it wrote, which tool ran, what it was shown.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ToolUse {
    /// The call's words as the agent wrote them (between the tags).
    pub call: String,
    /// The tool that ran (`None`: the call did not bind).
    pub tool: Option<String>,
    /// How it ended.
    pub status: CallStatus,
    /// The observation segment appended to the agent's context (tagged, truncated).
    pub observation: String,
}

/// Every configured tool server of a node.
pub struct McpTools {
    servers: Vec<Mutex<McpServer>>,
    /// Each tool's server (index into `servers`).
    owner: BTreeMap<String, usize>,
    specs: Vec<ToolSpec>,
    /// The word bound of a malformed call's observation (it has no server): the largest.
    malformed_words: usize,
}

impl std::fmt::Debug for McpTools {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("McpTools")
            .field("tools", &self.owner.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl McpTools {
    /// Starts every server (in order) and gathers their tools.
    pub async fn start(configs: &[ToolServerConfig]) -> Result<Self, ToolBoxError> {
        let mut servers = Vec::with_capacity(configs.len());
        let mut owner: BTreeMap<String, usize> = BTreeMap::new();
        let mut specs = Vec::new();
        for (i, c) in configs.iter().enumerate() {
            let server = McpServer::start(c.clone()).await?;
            for t in server.tools() {
                if let Some(j) = owner.insert(t.name.clone(), i) {
                    return Err(ToolBoxError::Duplicate {
                        tool: t.name.clone(),
                        first: configs[j].name.clone(),
                        second: c.name.clone(),
                    });
                }
                specs.push(t.clone());
            }
            servers.push(Mutex::new(server));
        }
        let malformed_words = configs
            .iter()
            .map(|c| c.max_result_words)
            .max()
            .unwrap_or(64);
        Ok(Self {
            servers,
            owner,
            specs,
            malformed_words,
        })
    }

    /// The tools, in server order then each server's order.
    pub fn specs(&self) -> &[ToolSpec] {
        &self.specs
    }

    /// Binds and runs one call written in `form`, and returns what the agent is shown.
    pub async fn run(&self, call: &str, form: CallForm) -> ToolUse {
        self.run_one(call, form, &mut BTreeSet::new()).await
    }

    /// Runs one turn's calls, one at a time in order. A server that timed out, or was down and
    /// could not be restarted, is not called again in the same turn (those calls read `server
    /// failed : it failed earlier in this turn`): a server that hangs on every call, or on
    /// every start, costs a turn one deadline, not one per call, so it cannot push an
    /// executor's request past its own timeout. It is restarted at its next call in a later
    /// turn. (A server that merely exited during a call is restarted by the turn's next call.)
    pub async fn run_turn(&self, calls: &[(String, CallForm)]) -> Vec<ToolUse> {
        let mut hung = BTreeSet::new();
        let mut out = Vec::with_capacity(calls.len());
        for (call, form) in calls {
            out.push(self.run_one(call, *form, &mut hung).await);
        }
        out
    }

    /// One call; `hung`: the servers that timed out earlier in the turn.
    async fn run_one(&self, call: &str, form: CallForm, hung: &mut BTreeSet<usize>) -> ToolUse {
        let record = |tool: Option<String>, status, observation| ToolUse {
            call: call.to_string(),
            tool,
            status,
            observation,
        };
        let bound = match bind(call, form, &self.specs) {
            Ok(b) => b,
            Err(e) => {
                let why = e.to_string();
                return record(
                    None,
                    CallStatus::Malformed,
                    observation(form, Err(&why), self.malformed_words),
                );
            }
        };
        let i = self.owner[&bound.name];
        let mut server = self.servers[i].lock().await;
        let words = server.config().max_result_words;
        if hung.contains(&i) {
            let why = CallFailure::Server("it failed earlier in this turn".into());
            let obs = observation(form, Err(&why.to_string()), words);
            return record(Some(bound.name), CallStatus::ServerFailed, obs);
        }
        let (status, obs) = match server.call(&bound).await {
            Ok(out) => (CallStatus::Ok, observation(form, Ok(&out), words)),
            Err(f) => {
                let status = match f {
                    CallFailure::Tool(_) | CallFailure::Rejected(_) => CallStatus::ToolError,
                    CallFailure::Timeout(_) => {
                        hung.insert(i);
                        CallStatus::Timeout
                    }
                    CallFailure::Unavailable(_) => {
                        hung.insert(i);
                        CallStatus::ServerFailed
                    }
                    CallFailure::Server(_) => CallStatus::ServerFailed,
                };
                (status, observation(form, Err(&f.to_string()), words))
            }
        };
        record(Some(bound.name), status, obs)
    }

    /// How many times each server was restarted (by name).
    pub async fn restarts(&self) -> BTreeMap<String, u64> {
        let mut out = BTreeMap::new();
        for s in &self.servers {
            let s = s.lock().await;
            out.insert(s.config().name.clone(), s.restarts());
        }
        out
    }

    /// Closes every server.
    pub async fn shutdown(&self) {
        for s in &self.servers {
            s.lock().await.shutdown().await;
        }
    }
}

/// What each server offers, for `mgrpo task check`: starts each server, lists its tools,
/// closes it. The first server that fails to start is the error.
pub async fn list_tools(
    configs: &[ToolServerConfig],
) -> Result<Vec<(String, Vec<ToolSpec>)>, StartError> {
    let mut out = Vec::with_capacity(configs.len());
    for c in configs {
        let mut s = McpServer::start(c.clone()).await?;
        out.push((c.name.clone(), s.tools().to_vec()));
        s.shutdown().await;
    }
    Ok(out)
}
