//! The question a group view names: its kind from the run's task, and its text and gold answer
//! in the facts the group was asked in — the world's own, or with `train.year_variants` the
//! variant its step and query drew (`rollout::facts::drawn_index`), whose answers to year and
//! comparison questions differ from the world's (and, with `train.variant_names`, its names).
//! Loaded on the first group inspected; a variant's answers are generated (about 20 ms) when a
//! group first needs them.
use std::collections::BTreeMap;
use std::path::Path;

use mgrpo_actors::rollout::facts::drawn_index;
use mgrpo_env::{Split, Task};
use serde_json::{Value, json};

/// A run's questions, and the answers of the variants looked at so far.
pub struct QuestionBook {
    task: Option<Task>,
    run_seed: u64,
    variants: u32,
    names: bool,
    /// Per variant looked at: question id → (text, answer) there.
    asked: BTreeMap<u32, BTreeMap<String, (String, String)>>,
}

impl QuestionBook {
    /// The questions of the run in `dir` (none when its config or task cannot be read: the
    /// view then shows the id alone).
    pub fn load(dir: &Path) -> Self {
        let config = mgrpo_actors::Config::load(&dir.join("config.toml")).ok();
        let task = config
            .as_ref()
            .and_then(|c| mgrpo_actors::context::load_task(c, None).ok());
        Self {
            task,
            run_seed: config.as_ref().map_or(0, |c| c.run.seed),
            variants: config.as_ref().map_or(0, |c| c.train.year_variants),
            names: config.as_ref().is_some_and(|c| c.train.variant_names),
            asked: BTreeMap::new(),
        }
    }

    /// `{"text", "answer", "kind", "facts"}` of question `id` as the training query `(step,
    /// query)` asked it (`facts`: 0 for the world's own, else the variant); `None` for a
    /// question the task does not have.
    pub fn describe(&mut self, id: &str, step: u64, query: u32) -> Option<Value> {
        let task = self.task.as_ref()?;
        let q = task.question(id)?;
        let facts = drawn_index(self.run_seed, self.variants, step, query);
        let (text, answer) = match (facts, task.world()) {
            (1.., Some(world)) => {
                let names = self.names;
                let asked = self.asked.entry(facts).or_insert_with(|| {
                    world
                        .variant(u64::from(facts), names)
                        .map(|v| {
                            v.questions(Split::Train)
                                .iter()
                                .map(|q| (q.id.clone(), (q.text.clone(), q.answer.clone())))
                                .collect()
                        })
                        .unwrap_or_default()
                });
                asked.get(id).cloned()?
            }
            _ => (q.text.clone(), q.answer.clone()),
        };
        Some(json!({"text": text, "answer": answer, "kind": q.kind, "facts": facts}))
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    /// A run with variants: each group's text and gold answer are those of the variant its step
    /// and query drew (some answers not the world's own; with new names every text); without
    /// variants, the world's.
    #[test]
    fn a_groups_gold_answer_is_the_one_of_the_variant_it_was_asked_in() {
        let mut config = mgrpo_actors::Config::parse(
            include_str!("../../examples/tiny.toml"),
            Path::new("examples/tiny.toml"),
        )
        .unwrap();
        for (variants, names) in [(0, false), (3, false), (3, true)] {
            config.train.year_variants = variants;
            config.train.variant_names = names;
            let dir = tempfile::tempdir().unwrap();
            std::fs::write(dir.path().join("config.toml"), config.to_toml()).unwrap();
            let mut book = QuestionBook::load(dir.path());
            let task = mgrpo_actors::context::load_task(&config, None).unwrap();
            let world = task.world().unwrap();
            let mut moved = 0;
            for (i, q) in world.questions(Split::Train).iter().enumerate().take(40) {
                let (step, query) = (i as u64 / 4, i as u32 % 4);
                let got = book.describe(&q.id, step, query).unwrap();
                let facts = drawn_index(config.run.seed, variants, step, query);
                assert_eq!(got["facts"], facts);
                let (text, answer) = if facts == 0 {
                    (q.text.clone(), q.answer.clone())
                } else {
                    let v = world.variant(u64::from(facts), names).unwrap();
                    let asked = v.question(&q.id).unwrap();
                    (asked.text.clone(), asked.answer.clone())
                };
                assert_eq!(got["text"], text, "{}", q.id);
                assert_eq!(got["answer"], answer, "{}", q.id);
                assert_eq!(text != q.text, names && facts > 0, "{}", q.id);
                moved += usize::from(answer != q.answer);
            }
            assert_eq!(
                moved > 0,
                variants > 0,
                "{variants} variants: {moved} moved"
            );
        }
        assert!(
            QuestionBook::load(Path::new("/nonexistent"))
                .describe("train-00000", 0, 0)
                .is_none()
        );
    }
}
