//! `[task]` of `cluster.toml`: train on your own questions, documents, reward and tools instead
//! of the generated world.
//!
//! Absent (the default), the run uses the built-in `[world]` exactly as before; present, the
//! questions, corpus and optional demonstrations come from files (formats in docs/tasks.md) and
//! `[world]` only bounds the tools and turns (`top_k`, `snippet_words`, `doc_words`,
//! `max_*_turns`). Paths are relative to the config file (module `paths`). This module holds
//! the settings and their validation only; loading the files is `mgrpo_env::task`'s job and
//! running scorer commands is the judge's.
use std::path::PathBuf;

use mgrpo_algo::RewardWeights;
use serde::de::{self, MapAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize};

use crate::mcp::ToolServerConfig;

pub use mgrpo_env::task::{Metric, SplitFractions};

/// `[task]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TaskConfig {
    /// A JSONL file of questions: `question`, `answer` or `answers`, optional `id`, `split`
    /// (`train` / `dev` / `test`) and `kind`.
    pub questions: PathBuf,
    /// A folder of `.txt` / `.md` documents (id = relative path, title = first line) or a JSONL
    /// file of `{id, title, text}`.
    pub corpus: PathBuf,
    /// Warm-start transcripts (the format `mgrpo world --export` writes); absent: no warm
    /// start, RL starts from the roles' models as given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub demonstrations: Option<PathBuf>,
    /// How a final answer is scored against the gold answers (r_correct).
    #[serde(default)]
    pub reward: RewardSpec,
    /// How a sub-agent's returned result is scored (r_expert); absent: β_expert's weight goes
    /// to the other sub-agent terms.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expert: Option<ScorerCommand>,
    /// A graded score (F1, a command's) at least this counts as a correct answer: `r_correct`
    /// is 0/1 (ALGORITHM.md).
    #[serde(default = "default_correct_at")]
    pub correct_at: f32,
    /// The fractions of the seeded split of questions that name no `split`.
    #[serde(default)]
    pub splits: SplitFractions,
    /// The MCP tool servers (`[[task.tools]]`) whose tools the sub-agents may call besides
    /// `search` and `open`; started by the node that hosts the executors (docs/tools.md).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tools: Vec<ToolServerConfig>,
    /// Tools answered in process instead of by an MCP server: `["earlier"]`, the world's
    /// comparison tool (`NAME YEAR or NAME YEAR` → the earlier NAME; docs/protocol.md), which
    /// `mgrpo world --export` names so that the exported world keeps it. Not combined with
    /// `[[task.tools]]`: a call is then answered in process whatever tool it names.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub builtin_tools: Vec<BuiltinTool>,
    /// Where the corpus's search index is cached by its content, shared by every run and node
    /// that names it; absent: `index-cache/` in the run directory (docs/tasks.md#corpus).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub index_cache: Option<PathBuf>,
}

/// A tool of `task.builtin_tools`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BuiltinTool {
    /// `earlier NAME YEAR or NAME YEAR` → the earlier NAME (`mgrpo_env::earlier`).
    Earlier,
}

impl BuiltinTool {
    /// The tool's name, description and parameters (what `mgrpo task check` lists and an HF
    /// role's chat template renders).
    pub fn spec(self) -> mgrpo_env::tool_call::ToolSpec {
        match self {
            Self::Earlier => mgrpo_env::earlier::spec(),
        }
    }
}

/// `task.reward`: a built-in metric (`"em"`, `"f1"`, `"contains"`) or `{ command = [...] }`.
#[derive(Debug, Clone, PartialEq)]
pub enum RewardSpec {
    /// A built-in comparison with SQuAD-style normalisation, against any of the answers.
    Metric(Metric),
    /// A long-lived scorer process speaking JSON lines.
    Command(ScorerCommand),
}

impl Default for RewardSpec {
    fn default() -> Self {
        Self::Metric(Metric::Em)
    }
}

/// A scorer process: `{ command = ["python3", "score.py"], timeout_ms = 30000, attempts = 3 }`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScorerCommand {
    /// The program and its arguments, run in `dir`.
    pub command: Vec<String>,
    /// How long one score may take before the process is killed and restarted.
    #[serde(default = "default_timeout_ms")]
    pub timeout_ms: u64,
    /// Attempts of one score (each after a fresh start) before the step fails.
    #[serde(default = "default_attempts")]
    pub attempts: u32,
    /// The directory the command runs in; empty in a file: the file's directory (what
    /// `Config::load` fills in).
    #[serde(default, skip_serializing_if = "is_empty_path")]
    pub dir: PathBuf,
}

fn is_empty_path(p: &std::path::Path) -> bool {
    p.as_os_str().is_empty()
}

fn default_correct_at() -> f32 {
    0.5
}

fn default_timeout_ms() -> u64 {
    30_000
}

fn default_attempts() -> u32 {
    3
}

impl Serialize for RewardSpec {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Self::Metric(m) => m.serialize(s),
            Self::Command(c) => c.serialize(s),
        }
    }
}

impl<'de> Deserialize<'de> for RewardSpec {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Spec;
        impl<'de> Visitor<'de> for Spec {
            type Value = RewardSpec;

            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("\"em\", \"f1\", \"contains\" or { command = [...] }")
            }

            fn visit_str<E: de::Error>(self, v: &str) -> Result<RewardSpec, E> {
                match v {
                    "em" => Ok(RewardSpec::Metric(Metric::Em)),
                    "f1" => Ok(RewardSpec::Metric(Metric::F1)),
                    "contains" => Ok(RewardSpec::Metric(Metric::Contains)),
                    _ => Err(E::invalid_value(de::Unexpected::Str(v), &self)),
                }
            }

            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<RewardSpec, A::Error> {
                ScorerCommand::deserialize(de::value::MapAccessDeserializer::new(map))
                    .map(RewardSpec::Command)
            }
        }
        d.deserialize_any(Spec)
    }
}

impl TaskConfig {
    /// The reward weights a run of this task uses: without an expert scorer there is no
    /// `r_expert`, so `beta_expert`'s weight goes to `beta_main_correct` (0.1 / 0.9 by default:
    /// the released code's sub-agent weights, which have no expert term either).
    pub fn reward_weights(&self, mut w: RewardWeights) -> RewardWeights {
        if self.expert.is_none() {
            w.beta_main_correct += w.beta_expert;
            w.beta_expert = 0.0;
        }
        w
    }

    /// Every problem of the values, each naming its key.
    pub fn problems(&self) -> Vec<String> {
        let mut p = ToolServerConfig::problems(&self.tools);
        if !self.builtin_tools.is_empty() && !self.tools.is_empty() {
            p.push(
                "task.builtin_tools and [[task.tools]] together: every call would be answered \
                 in process, so the MCP servers' tools could never be called; use one or the \
                 other"
                    .into(),
            );
        }
        for (key, path) in [
            ("task.questions", &self.questions),
            ("task.corpus", &self.corpus),
        ] {
            if path.as_os_str().is_empty() {
                p.push(format!("{key} is empty: a file's path"));
            }
        }
        let mut commands = vec![];
        if let RewardSpec::Command(c) = &self.reward {
            commands.push(("task.reward", c));
        }
        if let Some(c) = &self.expert {
            commands.push(("task.expert", c));
        }
        for (key, c) in commands {
            if c.command.first().is_none_or(|prog| prog.is_empty()) {
                p.push(format!(
                    "{key}.command is empty: a program and its arguments"
                ));
            }
            if c.timeout_ms == 0 {
                p.push(format!("{key}.timeout_ms = 0: must be at least 1"));
            }
            if c.attempts == 0 {
                p.push(format!("{key}.attempts = 0: must be at least 1"));
            }
        }
        if !(self.correct_at > 0.0 && self.correct_at <= 1.0) {
            p.push(format!(
                "task.correct_at = {}: must be in (0, 1]",
                self.correct_at
            ));
        }
        let s = &self.splits;
        let shares = [s.train, s.dev, s.test];
        if shares.iter().any(|f| !(f.is_finite() && *f >= 0.0)) || s.train <= 0.0 {
            p.push(format!(
                "task.splits = {{ train = {}, dev = {}, test = {} }}: shares must be >= 0, \
                 train > 0",
                s.train, s.dev, s.test
            ));
        }
        p
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A file holding only `[task]`, the way the whole config reads it.
    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct File {
        task: TaskConfig,
    }

    fn parse(text: &str) -> Result<TaskConfig, String> {
        let file: File = toml::from_str(text).map_err(|e| e.to_string())?;
        let problems = file.task.problems();
        if problems.is_empty() {
            Ok(file.task)
        } else {
            Err(problems.join("\n"))
        }
    }

    #[test]
    fn a_task_table_reads_metrics_and_commands_and_writes_itself_back() {
        let t = parse(
            "[task]\nquestions = \"q.jsonl\"\ncorpus = \"docs\"\nreward = \"f1\"\n\
             expert = { command = [\"python3\", \"judge.py\"], timeout_ms = 500 }\n",
        )
        .unwrap();
        assert_eq!(t.reward, RewardSpec::Metric(Metric::F1));
        let e = t.expert.as_ref().unwrap();
        assert_eq!((e.timeout_ms, e.attempts), (500, 3));
        assert_eq!(t.splits, SplitFractions::default());
        let text = toml::to_string(&File { task: t.clone() }).unwrap();
        assert_eq!(parse(&text).unwrap(), t);
        let t = parse(
            "[task]\nquestions = \"q\"\ncorpus = \"d\"\nreward = { command = [\"./s.sh\"] }\n",
        )
        .unwrap();
        assert!(matches!(&t.reward, RewardSpec::Command(s) if s.command == ["./s.sh"]));
        assert_eq!(
            parse("[task]\nquestions = \"q\"\ncorpus = \"d\"\n")
                .unwrap()
                .reward,
            RewardSpec::Metric(Metric::Em)
        );
    }

    #[test]
    fn bad_task_values_are_named() {
        let err =
            parse("[task]\nquestions = \"q\"\ncorpus = \"d\"\nreward = \"bleu\"\n").unwrap_err();
        assert!(
            err.contains("bleu") && err.contains("\"em\", \"f1\", \"contains\""),
            "{err}"
        );
        let err =
            parse("[task]\nquestions = \"q\"\ncorpus = \"d\"\nreward = { comand = [\"x\"] }\n")
                .unwrap_err();
        assert!(err.contains("comand"), "{err}");
        let err = parse("[task]\nquestions = \"q\"\n").unwrap_err();
        assert!(err.contains("corpus"), "{err}");
        let err = parse(
            "[task]\nquestions = \"\"\ncorpus = \"d\"\nexpert = { command = [], attempts = 0 }\n\
             [task.splits]\ntrain = 0\n",
        )
        .unwrap_err();
        for needle in [
            "task.questions is empty",
            "task.expert.command is empty",
            "task.expert.attempts = 0",
            "task.splits",
        ] {
            assert!(err.contains(needle), "missing {needle:?} in:\n{err}");
        }
    }
}
