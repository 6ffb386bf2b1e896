//! A task: questions by split, the search and open tools over its corpus, its warm-start
//! demonstrations and its tool and turn limits. Two sources behind one type — the generated
//! [`World`] (the default, with the ground truth its scripted experts and judge read) and a
//! [`Dataset`] read from files — so that rollouts, the judge, the warm start and evaluation are
//! written once and the world is one task among others.
pub mod corpus_files;
pub mod dataset;
pub mod jsonl;
pub mod metrics;
pub mod text;

use crate::config::WorldConfig;
use crate::experts::{Demo, demonstrations_from, held_out};
use crate::generate::{World, WorldError};
use crate::questions::{Question, Split};
use crate::search::Tools;
use crate::tokenizer::{TextCodec, TokenizerError};
pub use dataset::{Dataset, DatasetFiles, SplitFractions, TaskError};
pub use metrics::Metric;

/// The indices of the `n` train questions the warm start's demonstrations ask when a share
/// `holdout` is RL's (every one at 0).
fn warm_questions(n: usize, holdout: f64) -> impl Iterator<Item = usize> {
    (0..n).filter(move |&i| !held_out(i, holdout))
}

/// The task of a run.
#[derive(Debug)]
pub enum Task {
    /// The generated world (`[world]`).
    World(Box<World>),
    /// Questions and documents from files (`[task]`).
    Dataset(Box<Dataset>),
}

impl Task {
    /// Search and open over the task's corpus.
    pub fn tools(&self) -> &Tools {
        match self {
            Self::World(w) => &w.tools,
            Self::Dataset(d) => &d.tools,
        }
    }

    /// The tool and turn limits (`[world]`).
    pub fn limits(&self) -> &WorldConfig {
        match self {
            Self::World(w) => &w.config,
            Self::Dataset(d) => &d.limits,
        }
    }

    /// The questions of a split.
    pub fn questions(&self, split: Split) -> &[Question] {
        match self {
            Self::World(w) => w.questions(split),
            Self::Dataset(d) => d.questions(split),
        }
    }

    /// A question by id.
    pub fn question(&self, id: &str) -> Option<&Question> {
        match self {
            Self::World(w) => w.question(id),
            Self::Dataset(d) => d.question(id),
        }
    }

    /// The generated world, whose scripted experts and judge need its ground truth; `None`
    /// for a dataset.
    pub fn world(&self) -> Option<&World> {
        match self {
            Self::World(w) => Some(w),
            Self::Dataset(_) => None,
        }
    }

    /// The warm-start demonstrations: the world's noisy experts on `n` train questions (seeded),
    /// or a dataset's file (all of it; empty without one).
    pub fn demonstrations(&self, n: usize, seed: u64) -> Vec<Demo> {
        self.warm_demonstrations(n, seed, 0.0)
    }

    /// [`Self::demonstrations`] on the train questions a share `holdout` leaves to the warm
    /// start (`[warmup] holdout`; the world's only: a dataset's demonstrations are its file's).
    pub fn warm_demonstrations(&self, n: usize, seed: u64, holdout: f64) -> Vec<Demo> {
        match self {
            Self::World(w) => {
                let train = w.questions(Split::Train);
                let qs: Vec<&Question> = warm_questions(train.len(), holdout)
                    .map(|i| &train[i])
                    .collect();
                demonstrations_from(w, &qs, n, seed)
            }
            Self::Dataset(d) => d.demos.clone(),
        }
    }

    /// [`Self::warm_demonstrations`] spread over the world and its first `copies` renamed
    /// copies (`[warmup] copies`: years permuted and subjects renamed, the copies RL asks in
    /// with `train.variant_names`): each episode is the same train question in a copy drawn
    /// from `(seed, episode)`, so no title's or name's word pair has one fixed partner for the
    /// models to memorise. `copies = 0`, or a dataset: [`Self::warm_demonstrations`].
    pub fn warm_demonstrations_in_copies(
        &self,
        n: usize,
        seed: u64,
        holdout: f64,
        copies: u32,
    ) -> Result<Vec<Demo>, WorldError> {
        let world = match self {
            Self::World(w) if copies > 0 => w,
            _ => return Ok(self.warm_demonstrations(n, seed, holdout)),
        };
        let renamed: Vec<World> = (1..=u64::from(copies))
            .map(|i| world.variant(i, true))
            .collect::<Result<_, _>>()?;
        let worlds: Vec<&World> = std::iter::once(&**world).chain(&renamed).collect();
        let asked: Vec<usize> =
            warm_questions(world.questions(Split::Train).len(), holdout).collect();
        let mut out = Vec::new();
        for (i, &q) in asked.iter().cycle().take(n).enumerate() {
            let pick = mgrpo_algo::derive_seed(seed, &[i as u64, 1]) % worlds.len() as u64;
            let w = worlds[pick as usize];
            let question = &w.questions(Split::Train)[q];
            let s = mgrpo_algo::derive_seed(seed, &[i as u64]);
            out.extend(demonstrations_from(w, &[question], 1, s));
        }
        Ok(out)
    }

    /// The indices of the train questions RL draws its queries from: every one, or with a
    /// share `holdout` the ones held out of the warm start.
    pub fn rl_questions(&self, holdout: f64) -> Vec<usize> {
        let n = self.questions(Split::Train).len();
        (0..n)
            .filter(|&i| holdout <= 0.0 || held_out(i, holdout))
            .collect()
    }

    /// The word-level tokenizer a preset role speaks: the world's vocabulary, or every word of
    /// the dataset's text (docs/tasks.md says why word-level); with `tool_names`, also the
    /// tool-call words ([`TextCodec::build_with_tools`]).
    pub fn codec(&self, tool_names: Option<&[String]>) -> Result<TextCodec, TokenizerError> {
        match self {
            Self::World(w) => TextCodec::build_with_tools(w, tool_names),
            Self::Dataset(d) => {
                let mut texts: Vec<&str> = Vec::new();
                for doc in d.tools.docs() {
                    texts.push(&doc.title);
                    texts.extend(doc.sentences.iter().map(String::as_str));
                }
                for s in Split::ALL {
                    for q in d.questions(s) {
                        texts.push(&q.text);
                        texts.extend(q.answers());
                    }
                }
                for demo in &d.demos {
                    texts.extend(demo.segments.iter().map(|s| s.text.as_str()));
                }
                TextCodec::from_texts(
                    texts,
                    tool_names,
                    d.tools.has_builtin(),
                    d.limits.number_pieces(),
                )
            }
        }
    }
}
