//! Accuracy reports: overall, by question kind and by hop count.
use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::experts::run_expert_episode;
use crate::generate::World;
use crate::questions::{Question, Split};

/// Accuracy of one slice.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct SliceStats {
    /// Questions.
    pub n: usize,
    /// Correct answers.
    pub correct: usize,
    /// `correct / n`.
    pub accuracy: f64,
}

impl SliceStats {
    fn add(&mut self, correct: bool) {
        self.n += 1;
        self.correct += usize::from(correct);
        self.accuracy = self.correct as f64 / self.n as f64;
    }
}

/// An evaluation's result (`mgrpo eval --json` prints it as one line).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct EvalReport {
    /// Overall accuracy.
    pub accuracy: f64,
    /// Questions evaluated.
    pub n: usize,
    /// By question kind (the world's `hop1`, `hop2`, `hop3`, `compare`, or a dataset's kinds).
    pub by_kind: BTreeMap<String, SliceStats>,
    /// By number of hops (the world's questions; a dataset's hops are unknown).
    pub by_hops: BTreeMap<String, SliceStats>,
}

impl EvalReport {
    /// Builds a report from per-question outcomes (any policy's).
    pub fn from_outcomes<'a>(outcomes: impl IntoIterator<Item = (&'a Question, bool)>) -> Self {
        let mut all = SliceStats::default();
        let mut report = Self::default();
        for (q, correct) in outcomes {
            all.add(correct);
            report
                .by_kind
                .entry(q.kind.clone())
                .or_default()
                .add(correct);
            // A dataset's questions do not know their hops (0).
            if q.hops > 0 {
                report
                    .by_hops
                    .entry(q.hops.to_string())
                    .or_default()
                    .add(correct);
            }
        }
        report.accuracy = all.accuracy;
        report.n = all.n;
        report
    }

    /// A short human-readable table.
    pub fn table(&self) -> String {
        let mut out = format!("accuracy {:.3} on {} questions\n", self.accuracy, self.n);
        for (k, s) in &self.by_kind {
            out += &format!("  {k:<8} {:.3}  ({}/{})\n", s.accuracy, s.correct, s.n);
        }
        for (h, s) in &self.by_hops {
            out += &format!("  {h} hops   {:.3}  ({}/{})\n", s.accuracy, s.correct, s.n);
        }
        out
    }
}

/// The scripted experts' accuracy on (the first `limit` questions of) a split.
pub fn eval_experts(
    world: &World,
    split: Split,
    main_noise: f64,
    sub_noise: f64,
    seed: u64,
    limit: Option<usize>,
) -> EvalReport {
    let qs = world.questions(split);
    let qs = &qs[..limit.unwrap_or(qs.len()).min(qs.len())];
    let outcomes: Vec<(&Question, bool)> = qs
        .iter()
        .enumerate()
        .map(|(i, q)| {
            let t = run_expert_episode(
                world,
                q,
                main_noise,
                sub_noise,
                mgrpo_algo::derive_seed(seed, &[i as u64]),
            );
            (q, t.correct)
        })
        .collect();
    EvalReport::from_outcomes(outcomes)
}
