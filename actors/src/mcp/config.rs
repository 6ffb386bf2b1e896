//! `[[task.tools]]`: the MCP servers whose tools the sub-agents call besides `search` and `open`.
//!
//! Each entry names one stdio server: the command the executors' node starts, its arguments and
//! environment, how long a call may take and how many words of its output the agent sees. A
//! config with no entries is the built-in world, unchanged.
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// One MCP tool server.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ToolServerConfig {
    /// The server's name (logs, errors, `mgrpo task check`).
    pub name: String,
    /// How to start it.
    pub mcp: McpCommand,
    /// How long one call may take; past it the agent sees `error : timed out after N ms` and
    /// the server is restarted at its next call.
    #[serde(default = "default_timeout_ms")]
    pub timeout_ms: u64,
    /// How long starting the server (spawn, MCP handshake, tool list) may take.
    #[serde(default = "default_start_timeout_ms")]
    pub start_timeout_ms: u64,
    /// At most this many words of a call's output go into the agent's context.
    #[serde(default = "default_max_result_words")]
    pub max_result_words: usize,
    /// The tools of the server the agents may call (absent: all of them). Their names join
    /// the preset roles' vocabulary, so a word-level model can write them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expose: Option<Vec<String>>,
}

/// `mcp = { command = "…", args = […], env = {…} }`: a stdio MCP server.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct McpCommand {
    /// The program (a name, or a path; a relative path is relative to the config file's
    /// directory). A name is looked for beside the running `mgrpo` first, then on `PATH`
    /// ([`McpCommand::program`]).
    pub command: String,
    /// Its arguments.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub args: Vec<String>,
    /// Environment variables set for it (on top of the node's own).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub env: BTreeMap<String, String>,
    /// Its working directory (default: the config file's directory).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cwd: Option<PathBuf>,
}

impl McpCommand {
    /// The program to spawn: a bare name (`calc-mcp`) that names a file beside the running
    /// executable is that file — the binaries one `cargo build` makes sit together, so the
    /// example task's `calc-mcp` is found from `target/release/mgrpo` without installing it;
    /// any other name is looked up on `PATH`, and a path is itself.
    pub fn program(&self) -> PathBuf {
        let command = Path::new(&self.command);
        if command.components().count() == 1 {
            let beside = std::env::current_exe()
                .ok()
                .and_then(|exe| Some(exe.parent()?.join(command)))
                .filter(|p| p.is_file());
            if let Some(p) = beside {
                return p;
            }
        }
        command.to_path_buf()
    }
}

fn default_timeout_ms() -> u64 {
    10_000
}

fn default_start_timeout_ms() -> u64 {
    30_000
}

fn default_max_result_words() -> usize {
    64
}

impl ToolServerConfig {
    /// A server started by `command args…` with the default limits.
    pub fn new(name: &str, command: &str, args: &[&str]) -> Self {
        Self {
            name: name.to_string(),
            mcp: McpCommand {
                command: command.to_string(),
                args: args.iter().map(|a| a.to_string()).collect(),
                env: BTreeMap::new(),
                cwd: None,
            },
            timeout_ms: default_timeout_ms(),
            start_timeout_ms: default_start_timeout_ms(),
            max_result_words: default_max_result_words(),
            expose: None,
        }
    }

    /// Makes the command (when it is a relative path, `./server.py`) and the working
    /// directory absolute from `base`, the config file's directory; the working directory
    /// defaults to `base`.
    pub fn resolve_paths(&mut self, base: &Path) {
        let command = Path::new(&self.mcp.command);
        if command.is_relative() && command.components().count() > 1 {
            self.mcp.command = base.join(command).to_string_lossy().into_owned();
        }
        self.mcp.cwd = Some(match self.mcp.cwd.take() {
            Some(c) if c.is_relative() => base.join(c),
            Some(c) => c,
            None => base.to_path_buf(),
        });
    }

    /// Every problem of the values, each naming its key (`task.tools[i]`).
    pub fn problems(servers: &[ToolServerConfig]) -> Vec<String> {
        let mut p = Vec::new();
        let mut names = BTreeMap::new();
        for (i, s) in servers.iter().enumerate() {
            let key = format!("task.tools[{i}]");
            if s.name.trim().is_empty() {
                p.push(format!("{key}.name is empty"));
            } else if let Some(j) = names.insert(s.name.as_str(), i) {
                p.push(format!("{key}.name {:?} is also task.tools[{j}]'s", s.name));
            }
            if s.mcp.command.trim().is_empty() {
                p.push(format!("{key}.mcp.command is empty: a program to start"));
            }
            for (k, v) in [
                ("timeout_ms", s.timeout_ms),
                ("start_timeout_ms", s.start_timeout_ms),
            ] {
                if v == 0 {
                    p.push(format!("{key}.{k} = 0: must be at least 1"));
                }
            }
            if s.max_result_words == 0 {
                p.push(format!("{key}.max_result_words = 0: must be at least 1"));
            }
            for t in s.expose.iter().flatten() {
                if t.is_empty() || t.split_whitespace().count() != 1 {
                    p.push(format!(
                        "{key}.expose: {t:?} is not one word (a call names its tool in one word)"
                    ));
                }
            }
        }
        p
    }

    /// The tool names the configs expose by name (the vocabulary's tool words).
    pub fn exposed_names(servers: &[ToolServerConfig]) -> Vec<String> {
        servers
            .iter()
            .flat_map(|s| s.expose.iter().flatten().cloned())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Deserialize)]
    struct Task {
        tools: Vec<ToolServerConfig>,
    }

    #[test]
    fn reads_servers_with_defaults_and_resolves_paths() {
        let text = r#"
[[tools]]
name = "calc"
mcp = { command = "./bin/calc-mcp", args = ["--quiet"], env = { RUST_LOG = "warn" } }
timeout_ms = 500
expose = ["add", "convert"]

[[tools]]
name = "py"
mcp = { command = "python3", args = ["server.py"], cwd = "servers" }
"#;
        let mut t: Task = toml::from_str(text).unwrap();
        assert_eq!(t.tools[0].timeout_ms, 500);
        assert_eq!(t.tools[1].timeout_ms, 10_000);
        assert_eq!(t.tools[1].max_result_words, 64);
        assert_eq!(t.tools[0].mcp.env["RUST_LOG"], "warn");
        for s in &mut t.tools {
            s.resolve_paths(Path::new("/lab"));
        }
        assert_eq!(t.tools[0].mcp.command, "/lab/./bin/calc-mcp");
        assert_eq!(t.tools[0].mcp.cwd.as_deref(), Some(Path::new("/lab")));
        assert_eq!(
            t.tools[1].mcp.command, "python3",
            "a name stays a PATH lookup"
        );
        assert_eq!(
            t.tools[1].mcp.cwd.as_deref(),
            Some(Path::new("/lab/servers"))
        );
        assert_eq!(
            ToolServerConfig::exposed_names(&t.tools),
            ["add", "convert"]
        );
        assert!(ToolServerConfig::problems(&t.tools).is_empty());
        let again: ToolServerConfig =
            toml::from_str(&toml::to_string(&t.tools[0]).unwrap()).unwrap();
        assert_eq!(again, t.tools[0]);
    }

    #[test]
    fn bad_servers_are_named() {
        let err = toml::from_str::<Task>("[[tools]]\nname = \"x\"\nmcp = { comand = \"y\" }\n")
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains("comand"), "{err}");
        let mut a = ToolServerConfig::new("calc", "", &[]);
        a.timeout_ms = 0;
        a.expose = Some(vec!["two words".into()]);
        let b = ToolServerConfig::new("calc", "x", &[]);
        let p = ToolServerConfig::problems(&[a, b]).join("\n");
        for needle in [
            "task.tools[0].mcp.command is empty",
            "task.tools[0].timeout_ms = 0",
            "\"two words\" is not one word",
            "task.tools[1].name \"calc\" is also task.tools[0]'s",
        ] {
            assert!(p.contains(needle), "missing {needle:?} in:\n{p}");
        }
    }
}
