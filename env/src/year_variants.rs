//! Year variants of the generated world: the same entities, relations, documents and questions,
//! every year replaced through a seeded one-to-one map of the world's years.
//!
//! Why: RL's train questions ask about train entities, whose years the models can recall after
//! the warm start; the test split asks about held-out entities, whose years only the corpus
//! gives. Asked in a variant, a recalled year is wrong and a year read from the documents is
//! right, so RL's reward (the sub-agents' `r_expert` above all) pays for reading. The map is a
//! permutation of the years the world already holds: distinct years stay distinct (a
//! comparison keeps one answer), and no year token is new to the tokenizer.
use std::collections::BTreeMap;

use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;

use crate::corpus::build_corpus;
use crate::generate::{World, WorldError};
use crate::questions::restate;
use crate::search::Tools;
use crate::world::Value;

impl World {
    /// The `index`-th year variant of this world (a different map for each index, the same
    /// one on every node). Its questions keep their ids and texts; their answers, the
    /// documents, the search index and the judge's facts are the variant's.
    pub fn year_variant(&self, index: u64) -> Result<World, WorldError> {
        let mut knowledge = self.knowledge.clone();
        let years: Vec<u32> = knowledge.years().into_iter().collect();
        let mut drawn = years.clone();
        let mut rng = ChaCha8Rng::seed_from_u64(
            self.config.seed ^ 0x5941_5249_0000_0000 ^ index.wrapping_mul(0x9E37_79B9_7F4A_7C15),
        );
        drawn.shuffle(&mut rng);
        let map: BTreeMap<u32, u32> = years.into_iter().zip(drawn).collect();
        for v in knowledge.facts.values_mut() {
            if let Value::Year(y) = v {
                *v = Value::Year(map[y]);
            }
        }
        let corpus = build_corpus(&knowledge, &self.config);
        let tools = Tools::new(
            corpus,
            self.config.top_k,
            self.config.snippet_words,
            self.config.doc_words,
        )?;
        let tools = if self.tools.has_builtin() {
            tools.with_earlier()
        } else {
            tools
        };
        let questions = self.questions.clone().map(|split| {
            split
                .iter()
                .map(|q| restate(q, &knowledge).expect("a year map keeps every question askable"))
                .collect()
        });
        Ok(World {
            config: self.config.clone(),
            knowledge,
            tools,
            questions,
        })
    }
}

#[cfg(test)]
mod tests {
    use crate::config::WorldConfig;
    use crate::generate::World;
    use crate::judge::expert_score;
    use crate::questions::{Split, restate};
    use crate::world::Value;

    /// The default world (generated in about 20 ms): the variants RL uses.
    fn small() -> World {
        World::generate(&WorldConfig::default()).unwrap()
    }

    /// A variant moves the years and nothing else: the same entities and non-year facts, a
    /// one-to-one map over the same set of years, most years moved, and the same map for the
    /// same index.
    #[test]
    fn a_variant_permutes_the_years_and_keeps_every_other_fact() {
        let w = small();
        let v = w.year_variant(1).unwrap();
        assert_eq!(v.knowledge.entities, w.knowledge.entities);
        assert_eq!(v.knowledge.years(), w.knowledge.years());
        let mut map = std::collections::BTreeMap::new();
        let mut moved = 0;
        for (key, value) in &w.knowledge.facts {
            let other = v.knowledge.facts[key];
            match (value, other) {
                (Value::Year(a), Value::Year(b)) => {
                    assert_eq!(*map.entry(*a).or_insert(b), b, "one image per year");
                    moved += usize::from(*a != b);
                }
                _ => assert_eq!(*value, other, "{key:?}"),
            }
        }
        let images: std::collections::BTreeSet<_> = map.values().collect();
        assert_eq!(images.len(), map.len(), "distinct years stay distinct");
        assert!(
            moved * 2 > map.len(),
            "{moved} of {} years moved",
            map.len()
        );
        assert_eq!(w.year_variant(1).unwrap().knowledge, v.knowledge);
        assert_ne!(w.year_variant(2).unwrap().knowledge, v.knowledge);
    }

    /// Every question keeps its id and text; its answers are the variant's facts (the judge
    /// of the variant scores its gold sub-answers 1), and its documents state the variant's
    /// years: searching a year question's sub-task finds the new year, not the old one.
    #[test]
    fn a_variants_questions_documents_and_judge_agree() {
        let w = small();
        let v = w.year_variant(3).unwrap();
        let mut changed = 0;
        for split in Split::ALL {
            for (q, r) in w.questions(split).iter().zip(v.questions(split)) {
                assert_eq!((&q.id, &q.text, &q.template), (&r.id, &r.text, &r.template));
                assert_eq!(restate(q, &w.knowledge).as_ref(), Some(q), "{}", q.id);
                for s in &r.subs {
                    assert_eq!(expert_score(&v.knowledge, &s.text, &s.answer, false), 1.0);
                }
                changed += usize::from(q.answer != r.answer);
            }
        }
        assert!(changed > 0, "some answers are years or comparisons");
        let q = v
            .questions(Split::Train)
            .iter()
            .find(|q| q.template == "birth_year")
            .expect("a birth-year question");
        let old = &w.question(&q.id).unwrap().answer;
        let opened = v.tools.open_text(&q.subs[0].entity);
        assert!(opened.contains(&q.answer), "{opened}");
        if *old != q.answer {
            assert_ne!(opened, w.tools.open_text(&q.subs[0].entity));
            assert!(!opened.contains(old.as_str()), "{old} in {opened}");
        }
    }
}
