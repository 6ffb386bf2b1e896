//! A task read from files: questions (JSONL), a corpus (folder or JSONL) and optional
//! warm-start demonstrations (JSONL of [`Demo`]s, what `mgrpo world --export` writes). Formats
//! in docs/tasks.md. Loading reports every problem at once, each with its file and line.
use std::collections::BTreeMap;
use std::path::Path;

use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::config::WorldConfig;
use crate::experts::Demo;
use crate::questions::{Question, Split};
use crate::search::Tools;
use crate::search::index_cache::IndexSource;
use crate::task::corpus_files::read_corpus;
use crate::task::jsonl::{Ids, read_lines};
use crate::task::text::canonical;

/// Why a task could not be loaded: every problem, each naming its file (and line).
#[derive(Debug, thiserror::Error)]
#[error("the task cannot be used:\n  - {}", problems.join("\n  - "))]
pub struct TaskError {
    /// One line per problem.
    pub problems: Vec<String>,
}

/// How questions that name no `split` are divided (`task.splits`), and the seed of the draw.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SplitFractions {
    /// Share of the train split.
    pub train: f64,
    /// Share of the dev split.
    pub dev: f64,
    /// Share of the test split.
    pub test: f64,
    /// Seed of the split: the same file and seed give the same split in every run.
    pub seed: u64,
}

impl Default for SplitFractions {
    fn default() -> Self {
        Self {
            train: 0.8,
            dev: 0.1,
            test: 0.1,
            seed: 7,
        }
    }
}

/// The files of a dataset task.
#[derive(Debug, Clone, Copy)]
pub struct DatasetFiles<'a> {
    /// Questions, one JSON object a line.
    pub questions: &'a Path,
    /// A folder of documents or a JSONL file of them.
    pub corpus: &'a Path,
    /// Warm-start demonstrations, one [`Demo`] a line.
    pub demonstrations: Option<&'a Path>,
    /// The split of questions without one.
    pub splits: SplitFractions,
    /// Where the search index is cached by the corpus's content (none: built in RAM each time).
    pub index_cache: Option<&'a Path>,
    /// Whether the built-in `earlier` tool joins search and open (`[task] builtin_tools`).
    pub earlier_tool: bool,
}

/// One question line.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct QuestionLine {
    #[serde(default)]
    id: Option<serde_json::Value>,
    question: String,
    #[serde(default)]
    answer: Option<String>,
    #[serde(default)]
    answers: Option<Vec<String>>,
    #[serde(default)]
    split: Option<Split>,
    #[serde(default)]
    kind: Option<String>,
    /// Anything the user keeps with the question; not read.
    #[serde(default)]
    #[allow(dead_code)]
    meta: Option<serde_json::Value>,
}

/// The kind of a question that names none.
pub const DEFAULT_KIND: &str = "all";

/// A task read from files.
#[derive(Debug)]
pub struct Dataset {
    /// Tool and turn limits (`[world]`'s).
    pub limits: WorldConfig,
    /// Search and open over the corpus.
    pub tools: Tools,
    /// Whether the search index was built or read from `index_cache`.
    pub index: IndexSource,
    /// Why a built index could not be saved in `index_cache` (the run goes on without it).
    pub index_unsaved: Option<String>,
    questions: [Vec<Question>; 3],
    by_id: BTreeMap<String, (usize, usize)>,
    /// The warm-start demonstrations (empty: no warm start).
    pub demos: Vec<Demo>,
}

fn split_index(s: Split) -> usize {
    match s {
        Split::Train => 0,
        Split::Dev => 1,
        Split::Test => 2,
    }
}

impl Dataset {
    /// Reads and checks every file, then indexes the corpus.
    pub fn load(files: &DatasetFiles<'_>, limits: &WorldConfig) -> Result<Self, TaskError> {
        let mut problems = Vec::new();
        let questions = read_questions(files.questions, files.splits, &mut problems);
        let docs = read_corpus(files.corpus, &mut problems);
        let demos = files
            .demonstrations
            .map(|p| read_demonstrations(p, &mut problems))
            .unwrap_or_default();
        if problems.is_empty() && questions[0].is_empty() {
            problems.push(format!(
                "{}: no question is in the train split",
                files.questions.display()
            ));
        }
        if !problems.is_empty() {
            return Err(TaskError { problems });
        }
        let sizes = [limits.top_k, limits.snippet_words, limits.doc_words];
        let (tools, index, index_unsaved) = match files.index_cache {
            None => Tools::new(docs, sizes[0], sizes[1], sizes[2])
                .map(|t| (t, IndexSource::Built, None)),
            Some(dir) => Tools::cached(docs, sizes, dir).map(|(t, source, unsaved)| {
                let why = unsaved.map(|e| format!("{}: {e}", dir.display()));
                (t, source, why)
            }),
        }
        .map_err(|e| TaskError {
            problems: vec![e.to_string()],
        })?;
        let tools = if files.earlier_tool {
            tools.with_earlier()
        } else {
            tools
        };
        let by_id = questions
            .iter()
            .enumerate()
            .flat_map(|(s, qs)| {
                qs.iter()
                    .enumerate()
                    .map(move |(i, q)| (q.id.clone(), (s, i)))
            })
            .collect();
        Ok(Self {
            limits: limits.clone(),
            tools,
            index,
            index_unsaved,
            questions,
            by_id,
            demos,
        })
    }

    /// The questions of a split, in file order.
    pub fn questions(&self, split: Split) -> &[Question] {
        &self.questions[split_index(split)]
    }

    /// A question by id.
    pub fn question(&self, id: &str) -> Option<&Question> {
        let &(s, i) = self.by_id.get(id)?;
        self.questions[s].get(i)
    }
}

/// Questions by split; problems appended.
fn read_questions(
    path: &Path,
    fractions: SplitFractions,
    problems: &mut Vec<String>,
) -> [Vec<Question>; 3] {
    let mut all: Vec<(Option<Split>, Question)> = Vec::new();
    let mut ids = Ids::default();
    for line in read_lines::<QuestionLine>(path, "questions", problems) {
        let default_id = serde_json::Value::String(format!("q{}", line.number));
        let Some(id) = ids.take(
            line.value.id.as_ref().unwrap_or(&default_id),
            &line,
            problems,
        ) else {
            continue;
        };
        let (place, line) = (line.place, line.value);
        let mut answers: Vec<String> = line.answer.into_iter().collect();
        answers.extend(line.answers.unwrap_or_default());
        let answers: Vec<String> = answers
            .iter()
            .map(|a| canonical(a))
            .filter(|a| !a.is_empty())
            .collect();
        let text = canonical(&line.question);
        let mut bad = false;
        if text.is_empty() {
            problems.push(format!("{place}: the question is empty"));
            bad = true;
        }
        if answers.is_empty() {
            problems.push(format!(
                "{place}: no answer (give \"answer\": \"…\" or \"answers\": [\"…\", …])"
            ));
            bad = true;
        }
        if bad {
            continue;
        }
        let mut answers = answers.into_iter();
        let question = Question {
            id,
            split: line.split.unwrap_or(Split::Train),
            kind: line.kind.unwrap_or_else(|| DEFAULT_KIND.into()),
            template: String::new(),
            hops: 0,
            text,
            answer: answers.next().unwrap_or_default(),
            also: answers.collect(),
            subs: Vec::new(),
        };
        all.push((line.split, question));
    }
    if all.is_empty() && problems.is_empty() {
        problems.push(format!("{}: no questions", path.display()));
    }
    assign_splits(&mut all, fractions);
    let mut out: [Vec<Question>; 3] = Default::default();
    for (split, mut q) in all {
        let s = split.unwrap_or(Split::Train);
        q.split = s;
        out[split_index(s)].push(q);
    }
    out
}

/// Draws the split of every question that names none: a seeded shuffle, then the fractions'
/// shares in order train, dev, test (rounded; the rest to test).
fn assign_splits(all: &mut [(Option<Split>, Question)], f: SplitFractions) {
    let mut open: Vec<usize> = (0..all.len()).filter(|&i| all[i].0.is_none()).collect();
    open.shuffle(&mut ChaCha8Rng::seed_from_u64(f.seed));
    let total = f.train + f.dev + f.test;
    let n = open.len() as f64;
    let train = (n * f.train / total).round() as usize;
    let dev = ((n * f.dev / total).round() as usize).min(open.len() - train.min(open.len()));
    for (rank, &i) in open.iter().enumerate() {
        all[i].0 = Some(if rank < train {
            Split::Train
        } else if rank < train + dev {
            Split::Dev
        } else {
            Split::Test
        });
    }
}

/// Demonstrations; problems appended.
fn read_demonstrations(path: &Path, problems: &mut Vec<String>) -> Vec<Demo> {
    let mut out = Vec::new();
    for line in read_lines::<Demo>(path, "demonstrations", problems) {
        if line.value.segments.iter().any(|s| s.generated) {
            out.push(line.value);
        } else {
            problems.push(format!(
                "{}: no segment is generated (nothing to learn from)",
                line.place
            ));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(questions: &str, splits: SplitFractions) -> Result<Dataset, TaskError> {
        let dir = std::env::temp_dir().join(format!(
            "mgrpo-dataset-{}-{}",
            std::process::id(),
            questions.len()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("q.jsonl"), questions).unwrap();
        std::fs::write(
            dir.join("c.jsonl"),
            "{\"id\": 1, \"title\": \"Lyon\", \"text\": \"Lyon is on the Rhone. It is old!\"}\n",
        )
        .unwrap();
        let files = DatasetFiles {
            questions: &dir.join("q.jsonl"),
            corpus: &dir.join("c.jsonl"),
            demonstrations: None,
            splits,
            index_cache: None,
            earlier_tool: false,
        };
        let d = Dataset::load(&files, &WorldConfig::default());
        std::fs::remove_dir_all(&dir).unwrap();
        d
    }

    #[test]
    fn unsplit_questions_are_split_by_the_fractions_the_same_way_each_time() {
        let mut text = String::from(
            "{\"question\": \"fixed\", \"answer\": \"a\", \"split\": \"test\", \"id\": \"f\"}\n",
        );
        for i in 0..100 {
            text += &format!("{{\"question\": \"q {i}\", \"answer\": \"a {i}\"}}\n");
        }
        let a = load(&text, SplitFractions::default()).unwrap();
        let sizes = |d: &Dataset| Split::ALL.map(|s| d.questions(s).len());
        assert_eq!(sizes(&a), [80, 10, 11]);
        assert_eq!(a.question("f").unwrap().split, Split::Test);
        let b = load(&text, SplitFractions::default()).unwrap();
        let ids = |d: &Dataset| {
            d.questions(Split::Dev)
                .iter()
                .map(|q| q.id.clone())
                .collect::<Vec<_>>()
        };
        assert_eq!(ids(&a), ids(&b), "the same seed, the same split");
        let c = load(
            &text,
            SplitFractions {
                seed: 8,
                ..Default::default()
            },
        )
        .unwrap();
        assert_ne!(ids(&a), ids(&c), "another seed, another split");
        assert_eq!(
            a.question("q3").unwrap().text,
            "q 1",
            "default ids name the line"
        );
        let docs = a.tools.docs();
        assert_eq!((docs[0].id.as_str(), docs[0].title.as_str()), ("1", "Lyon"));
        assert_eq!(docs[0].sentences, ["Lyon is on the Rhone .", "It is old !"]);
    }
}
