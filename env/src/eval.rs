//! Accuracy reports: overall, by question kind and by hop count.
use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::experts::run_expert_episode;
use crate::generate::World;
use crate::judge::sub_parts;
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
    /// The sub-agents' share: how their returns scored and how many wrong answers followed a
    /// wrong return (`None`: not measured — a single agent, a dataset without an expert
    /// scorer, or the coordinator's dev evaluations).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sub: Option<SubReport>,
}

/// Which role a wrong answer is owed to, as far as the judge can tell: every sub-agent return
/// of an evaluated episode scored with `r_expert` (the judge's score of the return against the
/// delegated sub-task), so a wrong answer after a return scored below 1 is (at least partly)
/// the sub-agents', and a wrong answer after right returns is the main agent's alone (a wrong
/// delegation, a garbled copy, a wrong final answer). What separates `mgrpo` from
/// `frozen-sub` is the first kind.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct SubReport {
    /// Sub-agent calls made.
    pub calls: usize,
    /// Of them, returns scored 1 (right for the sub-task they were given).
    pub right: usize,
    /// Mean `r_expert` over the calls.
    pub expert: f64,
    /// Wrong answers (format errors included).
    pub wrong: usize,
    /// Of them, those after at least one return scored below 1.
    pub wrong_after_miss: usize,
}

impl SubReport {
    /// Builds the report from each question's calls' `r_expert` scores and its correctness.
    pub fn from_episodes<'a>(episodes: impl IntoIterator<Item = (&'a [f32], bool)>) -> Self {
        let mut r = Self::default();
        let mut total = 0.0;
        for (scores, correct) in episodes {
            r.calls += scores.len();
            r.right += scores.iter().filter(|&&s| s >= 1.0).count();
            total += scores.iter().map(|&s| f64::from(s)).sum::<f64>();
            if !correct {
                r.wrong += 1;
                r.wrong_after_miss += usize::from(scores.iter().any(|&s| s < 1.0));
            }
        }
        r.expert = if r.calls == 0 {
            0.0
        } else {
            total / r.calls as f64
        };
        r
    }

    /// The share of returns scored 1 (`None` without any call): what `test.json`'s readers
    /// (the study's `sub_right`, TensorBoard's `test/sub_right_*`, the summary line) show.
    pub fn right_share(&self) -> Option<f64> {
        (self.calls > 0).then(|| self.right as f64 / self.calls as f64)
    }

    /// One line for people: `1045 sub-agent calls, 94.8 % of returns right; 38 of 67 wrong
    /// answers followed a wrong return`.
    pub fn line(&self) -> String {
        format!(
            "{} sub-agent calls, {:.1} % of returns right; {} of {} wrong answers followed a wrong return",
            self.calls,
            100.0 * self.right_share().unwrap_or(0.0),
            self.wrong_after_miss,
            self.wrong
        )
    }
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
        if let Some(sub) = &self.sub {
            out += &format!("  {}\n", sub.line());
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
    let mut outcomes: Vec<(&Question, bool)> = Vec::with_capacity(qs.len());
    let mut scores: Vec<Vec<f32>> = Vec::with_capacity(qs.len());
    for (i, q) in qs.iter().enumerate() {
        let t = run_expert_episode(
            world,
            q,
            main_noise,
            sub_noise,
            mgrpo_algo::derive_seed(seed, &[i as u64]),
        );
        scores.push(
            t.calls
                .iter()
                .map(|c| {
                    sub_parts(&world.knowledge, c.format_ok(), c.task(), c.result(), false).expert
                })
                .collect(),
        );
        outcomes.push((q, t.correct));
    }
    let mut report = EvalReport::from_outcomes(outcomes.iter().copied());
    report.sub = Some(SubReport::from_episodes(
        scores
            .iter()
            .zip(&outcomes)
            .map(|(s, (_, correct))| (s.as_slice(), *correct)),
    ));
    report
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::WorldConfig;

    /// Counting: returns scored 1 are right, the mean is over calls, and a wrong answer counts
    /// against the sub-agents only when one of its returns scored below 1.
    #[test]
    fn the_sub_report_counts_returns_and_the_wrong_answers_after_a_miss() {
        let episodes: [(&[f32], bool); 4] = [
            (&[1.0, 1.0], true),
            (&[1.0, 0.0], false),
            (&[1.0], false),
            (&[0.0, 1.0, 1.0], true),
        ];
        let r = SubReport::from_episodes(episodes);
        assert_eq!(
            (r.calls, r.right, r.wrong, r.wrong_after_miss),
            (8, 6, 2, 1)
        );
        assert!((r.expert - 0.75).abs() < 1e-12);
        assert_eq!(
            r.line(),
            "8 sub-agent calls, 75.0 % of returns right; 1 of 2 wrong answers followed a wrong return"
        );
        assert_eq!(r.right_share(), Some(0.75));
        assert_eq!(SubReport::from_episodes([]).right_share(), None);
    }

    /// The experts through the judge: perfect sub-agents return every fact right; with a
    /// perfect main agent, every wrong answer follows a wrong return.
    #[test]
    fn the_experts_wrong_answers_follow_their_sub_agents_mistakes() {
        let world = World::generate(&WorldConfig::default()).unwrap();
        let perfect = eval_experts(&world, Split::Dev, 0.0, 0.0, 1, Some(60));
        let sub = perfect.sub.unwrap();
        assert!(sub.calls >= 60, "{sub:?}");
        assert_eq!((sub.right, sub.wrong, sub.expert), (sub.calls, 0, 1.0));
        let noisy = eval_experts(&world, Split::Dev, 0.0, 0.3, 1, Some(60));
        let sub = noisy.sub.unwrap();
        assert!(sub.right < sub.calls && sub.wrong > 0, "{sub:?}");
        assert_eq!(sub.wrong_after_miss, sub.wrong, "{sub:?}");
        assert!(noisy.table().contains("sub-agent calls"));
    }
}
