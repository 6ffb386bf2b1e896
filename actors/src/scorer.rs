//! A scorer command: one long-lived child process that reads a JSON object per line on stdin
//! and writes `{"score": x}` (x in [0, 1], or true / false) per line on stdout, so users write
//! rewards in any language (`task.reward = { command = [...] }`, `task.expert = ...`).
//!
//! A score is never made up: a scorer that cannot start, exits, stays silent past `timeout_ms`
//! or answers anything but a score is killed, started again and asked again, up to `attempts`
//! times; then the score fails with an error naming the command and every failure, and the
//! caller's step fails (and is retried whole by the coordinator, so nothing is lost or counted
//! twice). Requests are answered in order, one at a time.
use std::process::Stdio;
use std::time::Duration;

use serde::Deserialize;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, ChildStdin, ChildStdout, Command};

use crate::config::task::ScorerCommand;

/// A running scorer's pipes.
struct Running {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
}

/// A scorer command, started on first use.
pub struct CommandScorer {
    /// What `task.reward` / `task.expert` says.
    spec: ScorerCommand,
    /// Its key in the config, for messages (`task.reward`).
    key: &'static str,
    running: Option<Running>,
    /// Times the process was (re)started.
    pub starts: u32,
}

impl std::fmt::Debug for CommandScorer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CommandScorer")
            .field("key", &self.key)
            .field("command", &self.spec.command)
            .field("starts", &self.starts)
            .finish()
    }
}

/// One answer line.
#[derive(Deserialize)]
struct Answer {
    score: serde_json::Value,
}

impl CommandScorer {
    /// A scorer for `spec` (nothing starts until the first score).
    pub fn new(key: &'static str, spec: &ScorerCommand) -> Self {
        Self {
            spec: spec.clone(),
            key,
            running: None,
            starts: 0,
        }
    }

    /// The score of `request` (one JSON object), retried on a fresh process after a failure.
    pub async fn score(&mut self, request: &serde_json::Value) -> Result<f32, String> {
        let line = format!("{request}\n");
        let mut failures = Vec::new();
        for attempt in 1..=self.spec.attempts {
            match self.try_once(&line).await {
                Ok(s) => return Ok(s),
                Err(why) => {
                    tracing::warn!(scorer = self.key, attempt, error = %why, "scorer failed; restarting it");
                    self.stop().await;
                    failures.push(format!("attempt {attempt}: {why}"));
                }
            }
        }
        Err(format!(
            "{} = {:?} gave no score after {} attempts ({}); the step is not scored",
            self.key,
            self.spec.command,
            self.spec.attempts,
            failures.join("; ")
        ))
    }

    async fn try_once(&mut self, line: &str) -> Result<f32, String> {
        if self.running.is_none() {
            self.running = Some(self.start()?);
        }
        let r = self.running.as_mut().expect("started above");
        let timeout = Duration::from_millis(self.spec.timeout_ms);
        let exchange = async {
            r.stdin
                .write_all(line.as_bytes())
                .await
                .map_err(|e| format!("cannot write to it: {e}"))?;
            r.stdin
                .flush()
                .await
                .map_err(|e| format!("cannot write to it: {e}"))?;
            let mut answer = String::new();
            let n = r
                .stdout
                .read_line(&mut answer)
                .await
                .map_err(|e| format!("cannot read from it: {e}"))?;
            if n == 0 {
                // Closed stdout: usually an exit, whose status is worth naming.
                let status = tokio::time::timeout(Duration::from_millis(200), r.child.wait())
                    .await
                    .ok()
                    .and_then(Result::ok);
                return Err(match status {
                    Some(s) => format!("it exited ({s}) without answering"),
                    None => "it closed its stdout without answering".to_string(),
                });
            }
            Ok(answer)
        };
        let answer = tokio::time::timeout(timeout, exchange)
            .await
            .map_err(|_| format!("no answer within {} ms", self.spec.timeout_ms))??;
        parse_score(&answer)
    }

    fn start(&mut self) -> Result<Running, String> {
        let (program, args) = self
            .spec
            .command
            .split_first()
            .ok_or_else(|| "the command is empty".to_string())?;
        let mut cmd = Command::new(program);
        cmd.args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true);
        if !self.spec.dir.as_os_str().is_empty() {
            cmd.current_dir(&self.spec.dir);
        }
        let mut child = cmd
            .spawn()
            .map_err(|e| format!("cannot start {program:?}: {e}"))?;
        self.starts += 1;
        let stdin = child.stdin.take().ok_or("no stdin pipe")?;
        let stdout = BufReader::new(child.stdout.take().ok_or("no stdout pipe")?);
        Ok(Running {
            child,
            stdin,
            stdout,
        })
    }

    /// Kills the process (if any); the next score starts a fresh one.
    pub async fn stop(&mut self) {
        if let Some(mut r) = self.running.take() {
            let _ = r.child.kill().await;
        }
    }
}

/// `{"score": x}` with x a number in [0, 1] or a boolean.
fn parse_score(line: &str) -> Result<f32, String> {
    let shown: String = line.trim().chars().take(80).collect();
    let bad = || format!("answered {shown:?}, not {{\"score\": x}} with x in [0, 1] or a boolean");
    let a: Answer = serde_json::from_str(line.trim()).map_err(|_| bad())?;
    match a.score {
        serde_json::Value::Bool(b) => Ok(f32::from(u8::from(b))),
        serde_json::Value::Number(n) => match n.as_f64() {
            Some(x) if (0.0..=1.0).contains(&x) => Ok(x as f32),
            _ => Err(bad()),
        },
        _ => Err(bad()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sh(script: &str, timeout_ms: u64) -> CommandScorer {
        CommandScorer::new(
            "task.reward",
            &ScorerCommand {
                command: vec!["sh".into(), "-c".into(), script.into()],
                timeout_ms,
                attempts: 2,
                dir: Default::default(),
            },
        )
    }

    #[tokio::test]
    async fn a_live_scorer_answers_in_order_from_one_process() {
        let mut s = sh(r#"while read l; do echo '{"score": 0.25}'; done"#, 5000);
        let q = serde_json::json!({"answer": "x"});
        for _ in 0..3 {
            assert_eq!(s.score(&q).await, Ok(0.25));
        }
        assert_eq!(s.starts, 1, "one long-lived process");
    }

    #[tokio::test]
    async fn crashes_hangs_and_garbage_are_retried_then_fail_with_every_reason() {
        let q = serde_json::json!({});
        // Exits after reading: every attempt restarts it, then the score fails.
        let mut s = sh("read l; exit 3", 5000);
        let err = s.score(&q).await.unwrap_err();
        assert!(
            err.contains("task.reward") && err.contains("exited"),
            "{err}"
        );
        assert_eq!(s.starts, 2);
        // Hangs.
        let mut s = sh("read l; sleep 30", 200);
        let err = s.score(&q).await.unwrap_err();
        assert!(err.contains("no answer within 200 ms"), "{err}");
        // Garbage and out-of-range scores.
        for out in ["hello", r#"{"score": 7}"#, r#"{"value": 1}"#] {
            let mut s = sh(&format!("while read l; do echo '{out}'; done"), 5000);
            let err = s.score(&q).await.unwrap_err();
            assert!(err.contains("not {\"score\": x}"), "{out}: {err}");
        }
        // A missing program.
        let mut s = CommandScorer::new(
            "task.expert",
            &ScorerCommand {
                command: vec!["/nonexistent/scorer".into()],
                timeout_ms: 100,
                attempts: 1,
                dir: Default::default(),
            },
        );
        let err = s.score(&q).await.unwrap_err();
        assert!(err.contains("cannot start"), "{err}");
    }

    #[tokio::test]
    async fn a_scorer_that_dies_once_is_restarted_and_the_score_kept() {
        // The first process dies on its first request; the second answers.
        let dir = std::env::temp_dir().join(format!("mgrpo-scorer-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let flag = dir.join("died");
        let _ = std::fs::remove_file(&flag);
        let script = format!(
            "while read l; do if [ ! -e {f} ]; then touch {f}; exit 1; fi; echo '{{\"score\": true}}'; done",
            f = flag.display()
        );
        let mut s = sh(&script, 5000);
        assert_eq!(s.score(&serde_json::json!({})).await, Ok(1.0));
        assert_eq!(s.starts, 2);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
