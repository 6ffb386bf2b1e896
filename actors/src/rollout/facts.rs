//! Which facts a rollout is asked in: the task's own, or (RL with `train.year_variants = N`,
//! the default 8) one of the world's N variants — its years permuted and, with
//! `train.variant_names`, its subjects renamed (`mgrpo_env::variants`) — drawn from `(run
//! seed, step, query)` so the K rollouts of a query share it (a group's advantages compare
//! answers to one question) and every node draws the same one. Evaluation (greedy,
//! [`Mode::Eval`]) always asks the task's own facts.
//!
//! The index travels with the work that needs it: the planner and the executors draw it from
//! their rollouts' keys, the judge reads it from what it is asked to score.
use mgrpo_algo::{derive_seed, salt};
use mgrpo_env::Task;

use crate::context::NodeContext;
use crate::rollout::keys::{Mode, RolloutKey};

/// The facts of a node's rollouts: its task, the task's variants, and how one is picked.
#[derive(Clone, Copy)]
pub struct Facts<'a> {
    own: &'a Task,
    variants: &'a [Task],
    run_seed: u64,
    mode: Mode,
}

impl<'a> Facts<'a> {
    /// The facts of `ctx`'s rollouts in `mode`.
    pub fn of(ctx: &'a NodeContext, mode: Mode) -> Self {
        Self {
            own: &ctx.task,
            variants: ctx.year_variants(),
            run_seed: ctx.config.run.seed,
            mode,
        }
    }

    /// Only `task`'s own facts (no variants).
    pub fn only(task: &'a Task) -> Self {
        Self {
            own: task,
            variants: &[],
            run_seed: 0,
            mode: Mode::Eval,
        }
    }

    /// The facts index of the rollout `key`: 0 for the task's own, `i ≥ 1` for variant `i`.
    pub fn index(&self, key: &RolloutKey) -> u32 {
        if self.mode == Mode::Eval {
            return 0;
        }
        drawn_index(
            self.run_seed,
            self.variants.len() as u32,
            key.step,
            key.query,
        )
    }

    /// The task the rollout `key` is asked in.
    pub fn task(&self, key: &RolloutKey) -> &'a Task {
        self.at(self.index(key))
    }

    /// The task of facts index `index` (the task's own for 0 or an index it does not have).
    pub fn at(&self, index: u32) -> &'a Task {
        task_at(self.own, self.variants, index)
    }
}

/// The facts index a training query `(step, query)` of a run with seed `run_seed` and
/// `variants` variants is asked in (0: the task's own, without variants). What a reader of
/// the run's store (the dashboard) uses to find the answers a group was judged against.
pub fn drawn_index(run_seed: u64, variants: u32, step: u64, query: u32) -> u32 {
    if variants == 0 {
        return 0;
    }
    let draw = derive_seed(run_seed, &[salt::FACTS, step, query as u64]);
    1 + (draw % u64::from(variants)) as u32
}

/// The task of facts index `index` on `ctx`'s node (what the judge is told a rollout or call
/// was asked in): the task's own for 0, else its variant `index`.
pub fn task_in(ctx: &NodeContext, index: u32) -> &Task {
    task_at(&ctx.task, ctx.year_variants(), index)
}

/// The task of facts index `index`: `own` for 0 (or an index past `variants`), else
/// `variants[index - 1]`.
pub fn task_at<'a>(own: &'a Task, variants: &'a [Task], index: u32) -> &'a Task {
    (index as usize)
        .checked_sub(1)
        .and_then(|i| variants.get(i))
        .unwrap_or(own)
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use mgrpo_env::{Question, Split};

    use super::*;
    use crate::config::Config;
    use crate::policy::chunks::PolicyId;
    use crate::rollout::Rollouts;
    use crate::rollout::keys::{SubJob, SubOutcome};
    use crate::rollout::turns::Serve;
    use crate::run_dir::RunDir;
    use crate::scoring::{CallToScore, RolloutToScore, Scoring};

    fn context(variants: u32, names: bool) -> std::sync::Arc<NodeContext> {
        let mut config = Config::parse(
            include_str!("../../../examples/tiny.toml"),
            Path::new("tiny.toml"),
        )
        .unwrap();
        config.train.year_variants = variants;
        config.train.variant_names = names;
        NodeContext::new(config, RunDir::new("unused"), "facts".into()).unwrap()
    }

    /// The K rollouts of a query share their variant, every index is a variant the node has,
    /// queries spread over all of them, and evaluation (or a run without variants) asks the
    /// task's own facts.
    #[test]
    fn a_query_is_asked_in_one_variant_and_evaluation_in_none() {
        let ctx = context(3, false);
        assert_eq!(ctx.year_variants().len(), 3);
        let train = Facts::of(&ctx, Mode::Train);
        let key = |step, query, rollout| RolloutKey {
            step,
            query,
            rollout,
        };
        let mut seen = std::collections::BTreeSet::new();
        for step in 0..20 {
            for query in 0..4 {
                let i = train.index(&key(step, query, 0));
                assert!((1..=3).contains(&i), "{i}");
                for k in 1..8 {
                    assert_eq!(train.index(&key(step, query, k)), i);
                }
                assert!(std::ptr::eq(
                    train.task(&key(step, query, 5)),
                    task_in(&ctx, i)
                ));
                assert!(Facts::of(&ctx, Mode::Eval).index(&key(step, query, 0)) == 0);
                seen.insert(i);
            }
        }
        assert_eq!(seen.len(), 3, "every variant is drawn");
        assert!(std::ptr::eq(task_in(&ctx, 0), &ctx.task));
        let plain = context(0, false);
        assert!(plain.year_variants().is_empty());
        assert_eq!(Facts::of(&plain, Mode::Train).index(&key(1, 1, 0)), 0);
    }

    /// Noise-free scripted experts in both roles, rolled out for training with variants (years,
    /// then years and names): the main agent is asked each question as its variant writes it,
    /// the sub-agents read each call's answer from that variant's documents and the main agent
    /// answers the variant's question, so the judge told the variant scores every call and
    /// answer right. Told the world's own facts instead, it scores the moved years (and names)
    /// wrong: the rollouts really were asked in the variants.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn experts_in_a_variant_read_its_years_and_its_judge_agrees() {
        for names in [false, true] {
            experts_in_variants(names).await;
        }
    }

    async fn experts_in_variants(names: bool) {
        let ctx = context(2, names);
        let facts = Facts::of(&ctx, Mode::Train);
        let qs: Vec<&Question> = ctx.task.questions(Split::Train).iter().take(24).collect();
        let jobs: Vec<(RolloutKey, &Question)> = qs
            .iter()
            .enumerate()
            .map(|(i, q)| {
                let key = RolloutKey {
                    step: 3,
                    query: i as u32,
                    rollout: 0,
                };
                (key, facts.task(&key).question(&q.id).unwrap())
            })
            .collect();
        let renamed = jobs
            .iter()
            .zip(&qs)
            .filter(|((_, asked), q)| asked.text != q.text)
            .count();
        assert_eq!(renamed > 0, names, "{renamed} texts with new names");
        let rollouts = Rollouts::new(&ctx, Mode::Train).unwrap();
        let made = std::sync::Mutex::new(Vec::<SubOutcome>::new());
        let made_ref = &made;
        let ran = rollouts
            .main(Serve::Expert, &jobs, |subs: Vec<SubJob>| async move {
                let done: Vec<SubOutcome> = rollouts
                    .sub(Serve::Expert, PolicyId::default(), &subs)
                    .await?
                    .into_iter()
                    .map(|(o, _)| o)
                    .collect();
                made_ref.lock().unwrap().extend(done.iter().cloned());
                Ok::<_, mgrpo_models::ModelError>(done)
            })
            .await
            .unwrap();
        let mut scoring = Scoring::new(&ctx.config);
        let (mut wrong_main, mut wrong_calls) = (0, 0);
        for ((o, _), (key, q)) in ran.iter().zip(&jobs) {
            let index = facts.index(key);
            let asked = task_in(&ctx, index).question(&q.id).unwrap();
            assert_eq!(o.answer.as_deref(), Some(asked.answer.as_str()), "{}", q.id);
            let score = |facts| RolloutToScore {
                question_id: q.id.clone(),
                format: o.format,
                answer: o.answer.clone(),
                transcript: String::new(),
                facts,
            };
            assert!(scoring.rollout(&ctx, &score(index)).await.unwrap().correct);
            wrong_main += usize::from(!scoring.rollout(&ctx, &score(0)).await.unwrap().correct);
        }
        let made = made.into_inner().unwrap();
        assert!(made.len() >= jobs.len(), "the main expert delegates");
        for c in &made {
            let mut call = CallToScore {
                task: c.task.clone(),
                result: c.result.clone(),
                format: c.format,
                facts: facts.index(&c.key.rollout),
            };
            assert_eq!(scoring.call(&ctx, &call).await.unwrap(), 1.0, "{call:?}");
            call.facts = 0;
            wrong_calls += usize::from(scoring.call(&ctx, &call).await.unwrap() < 1.0);
        }
        println!(
            "names {names}: {wrong_main} of {} answers and {wrong_calls} of {} calls differ in the \
             world itself",
            jobs.len(),
            made.len()
        );
        assert!(wrong_main > 0 && wrong_calls > 0);
    }
}
