//! The helper processes a node starts — a `[[task.tools]]` MCP server, a scorer command — found
//! and signalled from outside, as an operator (or the OOM killer, or a debugger) would: the
//! chaos faults `kill_tool_server`, `stall_tool_server`, `kill_scorer` and `stall_scorer` send
//! real signals to the real processes, so what they test is the node's own recovery, not a
//! simulation of it. Linux only (`/proc`), like the rest of `mgrpo chaos`.
use std::path::Path;

use anyhow::{Context, Result, bail};
use mgrpo_actors::Config;
use mgrpo_actors::config::task::RewardSpec;

/// A helper's command line as the node spawns it: program and arguments.
#[derive(Debug, Clone, PartialEq)]
pub struct Helper {
    /// The program (a path or a name: matched by its file name).
    pub program: String,
    /// Its arguments, matched exactly.
    pub args: Vec<String>,
}

impl Helper {
    /// The `[[task.tools]]` server named `server`.
    pub fn tool_server(config: &Config, server: &str) -> Result<Self> {
        let tools = config.task.as_ref().map_or(&[][..], |t| &t.tools);
        let t = tools.iter().find(|t| t.name == server).with_context(|| {
            let names: Vec<&str> = tools.iter().map(|t| t.name.as_str()).collect();
            format!(
                "no [[task.tools]] server named {server:?} (the config has: {})",
                names.join(", ")
            )
        })?;
        Ok(Self {
            program: t.mcp.program().to_string_lossy().into_owned(),
            args: t.mcp.args.clone(),
        })
    }

    /// The scorer command `task.reward` (`reward`) or `task.expert` (`expert`).
    pub fn scorer(config: &Config, scorer: &str) -> Result<Self> {
        let task = config
            .task
            .as_ref()
            .context("a scorer fault needs a [task] with a scorer command")?;
        let command = match (scorer, &task.reward) {
            ("reward", RewardSpec::Command(c)) => c,
            ("expert", _) => task
                .expert
                .as_ref()
                .context("the config has no task.expert command")?,
            ("reward", _) => bail!("task.reward is a built-in metric, not a command"),
            _ => bail!("unknown scorer {scorer:?} (reward or expert)"),
        };
        let (program, args) = command
            .command
            .split_first()
            .context("the scorer command is empty")?;
        Ok(Self {
            program: program.clone(),
            args: args.to_vec(),
        })
    }

    /// Whether `argv` is this helper's command line.
    fn matches(&self, argv: &[String]) -> bool {
        let name = |p: &str| Path::new(p).file_name().map(|n| n.to_os_string());
        argv.split_first().is_some_and(|(program, args)| {
            name(program) == name(&self.program) && args == self.args.as_slice()
        })
    }
}

/// The live child processes of `parent` that run `helper`.
pub fn find(parent: u32, helper: &Helper) -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    let mut found: Vec<u32> = entries
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|&pid| parent_of(pid) == Some(parent))
        .filter(|&pid| helper.matches(&argv(pid)))
        .collect();
    found.sort_unstable();
    found
}

/// The parent pid of `pid` (from `/proc/PID/stat`, whose second field may hold spaces);
/// `None` once it exited, reaped or not.
pub fn parent_of(pid: u32) -> Option<u32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after_name = &stat[stat.rfind(')')? + 1..];
    let mut fields = after_name.split_whitespace();
    let state = fields.next()?;
    if state == "Z" {
        return None; // exited, not yet reaped: nothing to signal
    }
    fields.next()?.parse().ok()
}

/// The command line of `pid`.
fn argv(pid: u32) -> Vec<String> {
    std::fs::read(format!("/proc/{pid}/cmdline"))
        .map(|b| {
            b.split(|&c| c == 0)
                .filter(|a| !a.is_empty())
                .map(|a| String::from_utf8_lossy(a).into_owned())
                .collect()
        })
        .unwrap_or_default()
}

/// Sends `signal` (`KILL`, `STOP`, `CONT`) to `pid` with `kill(1)`; whether it was delivered.
pub fn signal(pid: u32, signal: &str) -> bool {
    std::process::Command::new("kill")
        .args(["-s", signal, &pid.to_string()])
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A child of this process running `sleep 30` is found by its command line (and a
    /// different argument is not it), stopped, continued and killed with real signals.
    #[test]
    fn a_child_is_found_by_its_command_line_and_signalled() {
        let mut child = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .unwrap();
        let me = std::process::id();
        let sleep = |arg: &str| Helper {
            program: "/usr/bin/sleep".into(),
            args: vec![arg.into()],
        };
        // Until the child has exec'd, /proc shows this binary's command line.
        let start = std::time::Instant::now();
        let mut found = find(me, &sleep("30"));
        while found.is_empty() && start.elapsed() < std::time::Duration::from_secs(10) {
            std::thread::sleep(std::time::Duration::from_millis(10));
            found = find(me, &sleep("30"));
        }
        assert_eq!(found, [child.id()]);
        assert!(find(me, &sleep("31")).is_empty());
        assert!(signal(child.id(), "STOP") && signal(child.id(), "CONT"));
        assert!(signal(child.id(), "KILL"));
        let status = child.wait().unwrap();
        assert!(!status.success());
        assert!(find(me, &sleep("30")).is_empty(), "a reaped child is gone");
    }
}
