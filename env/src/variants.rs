//! Variants of the generated world for RL: the same entities, relations and questions, every
//! year replaced through a seeded one-to-one map of the world's years and, optionally, every
//! subject (person, company, book) renamed with a new combination of its kind's words.
//!
//! Why: RL's train questions ask about train entities, whose years the models can recall after
//! the warm start, under names they have trained on; the test split asks about held-out
//! entities — new combinations of the same words — whose years only the corpus gives. Asked in
//! a variant, a recalled year is wrong and only a year read from the documents is right, so
//! RL's reward (the sub-agents' `r_expert` above all) pays for reading; with new names, every
//! RL query is also about names the models have not seen together, as every test question is.
//! The year map is a permutation of the years the world already holds: distinct years stay
//! distinct (a comparison keeps one answer), and no year token is new to the tokenizer. A new
//! name uses only words the kind's names already use in the world (no new token), is unique
//! in the variant, and is never a held-out (dev or test) subject's name.
use std::collections::{BTreeMap, BTreeSet};

use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::generate::{World, WorldError, corpus_tools};
use crate::questions::{Split, restate, subject_splits};
use crate::world::{Kind, Knowledge, Value};

impl World {
    /// The `index`-th variant of this world (a different draw for each index, the same one on
    /// every node); `names`: subjects get new names too. Its questions keep their ids (and,
    /// without new names, their texts); their texts, answers, the documents, the search index
    /// and the judge's facts are the variant's.
    pub fn variant(&self, index: u64, names: bool) -> Result<World, WorldError> {
        let mut rng = ChaCha8Rng::seed_from_u64(
            self.config.seed ^ 0x5941_5249_0000_0000 ^ index.wrapping_mul(0x9E37_79B9_7F4A_7C15),
        );
        let mut knowledge = self.knowledge.clone();
        let years: Vec<u32> = knowledge.years().into_iter().collect();
        let mut drawn = years.clone();
        drawn.shuffle(&mut rng);
        let map: BTreeMap<u32, u32> = years.into_iter().zip(drawn).collect();
        for v in knowledge.facts.values_mut() {
            if let Value::Year(y) = v {
                *v = Value::Year(map[y]);
            }
        }
        if names {
            let splits = subject_splits(&self.knowledge, self.config.seed);
            rename_subjects(
                &mut knowledge,
                |e| splits[e].is_some_and(|s| s != Split::Train),
                &mut rng,
            );
        }
        let tools = corpus_tools(&knowledge, &self.config)?;
        let questions = self.questions.clone().map(|split| {
            split
                .iter()
                .map(|q| {
                    restate(q, &self.knowledge, &knowledge)
                        .expect("a variant keeps every question askable")
                })
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

/// Gives every subject (person, company, book) a new name: at each word position, a word the
/// kind's names use there, drawn until the name is new to the variant and is no held-out
/// subject's (`held_out`). Cities and countries keep theirs (single words, all of their pool).
fn rename_subjects(k: &mut Knowledge, held_out: impl Fn(usize) -> bool, rng: &mut ChaCha8Rng) {
    let forbidden: BTreeSet<String> = k
        .entities
        .iter()
        .filter(|e| held_out(e.id))
        .map(|e| e.name.clone())
        .collect();
    let mut taken: BTreeSet<String> = k
        .entities
        .iter()
        .filter(|e| matches!(e.kind, Kind::City | Kind::Country))
        .map(|e| e.name.clone())
        .collect();
    for kind in [Kind::Person, Kind::Company, Kind::Book] {
        let ids: Vec<usize> = k.of_kind(kind).map(|e| e.id).collect();
        let mut positions: Vec<Vec<String>> = Vec::new();
        for &id in &ids {
            for (i, w) in k.entities[id].name.split(' ').enumerate() {
                if positions.len() <= i {
                    positions.push(Vec::new());
                }
                if !positions[i].iter().any(|x| x == w) {
                    positions[i].push(w.to_string());
                }
            }
        }
        for &id in &ids {
            let width = k.entities[id].name.split(' ').count();
            // A name's words are drawn from the kind's own at each position; the kinds' pools
            // hold many more combinations than subjects, so a new one comes within a few draws.
            let name = (0..1000)
                .map(|_| {
                    positions[..width]
                        .iter()
                        .map(|p| p[rng.random_range(0..p.len())].as_str())
                        .collect::<Vec<_>>()
                        .join(" ")
                })
                .find(|n| !forbidden.contains(n) && !taken.contains(n))
                .unwrap_or_else(|| k.entities[id].name.clone());
            taken.insert(name.clone());
            k.entities[id].name = name;
        }
    }
    k.by_name = k.entities.iter().map(|e| (e.name.clone(), e.id)).collect();
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
        let v = w.variant(1, false).unwrap();
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
        assert_eq!(w.variant(1, false).unwrap().knowledge, v.knowledge);
        assert_ne!(w.variant(2, false).unwrap().knowledge, v.knowledge);
    }

    /// Every question keeps its id and text; its answers are the variant's facts (the judge
    /// of the variant scores its gold sub-answers 1), and its documents state the variant's
    /// years: opening a birth-year question's entity shows the new year, not the old one.
    #[test]
    fn a_variants_questions_documents_and_judge_agree() {
        let w = small();
        let v = w.variant(3, false).unwrap();
        let mut changed = 0;
        for split in Split::ALL {
            for (q, r) in w.questions(split).iter().zip(v.questions(split)) {
                assert_eq!((&q.id, &q.text, &q.template), (&r.id, &r.text, &r.template));
                assert_eq!(
                    restate(q, &w.knowledge, &w.knowledge).as_ref(),
                    Some(q),
                    "{}",
                    q.id
                );
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

#[cfg(test)]
mod name_tests {
    use std::collections::BTreeSet;

    use crate::config::WorldConfig;
    use crate::generate::World;
    use crate::judge::expert_score;
    use crate::questions::{Split, subject_splits};
    use crate::tokenizer::{TextCodec, UNK};
    use crate::world::Kind;

    /// With new names: every subject renamed (most to a new name), names unique, none a
    /// held-out subject's, every word one the world's tokenizer knows; cities, countries and
    /// the facts by id unchanged; each question keeps its id and template, is asked with the
    /// new names, and the variant's search, documents and judge answer it.
    #[test]
    fn a_name_variant_asks_of_new_names_in_known_words() {
        let w = World::generate(&WorldConfig::default()).unwrap();
        let v = w.variant(5, true).unwrap();
        let codec = TextCodec::build(&w).unwrap();
        let unk = codec.encode(UNK)[0];
        let splits = subject_splits(&w.knowledge, w.config.seed);
        let held: BTreeSet<&str> = w
            .knowledge
            .entities
            .iter()
            .filter(|e| splits[e.id].is_some_and(|s| s != Split::Train))
            .map(|e| e.name.as_str())
            .collect();
        let mut renamed = 0;
        for (a, b) in w.knowledge.entities.iter().zip(&v.knowledge.entities) {
            assert_eq!((a.id, a.kind), (b.id, b.kind));
            if matches!(a.kind, Kind::City | Kind::Country) {
                assert_eq!(a.name, b.name);
            } else {
                assert!(!held.contains(b.name.as_str()), "{} is held out", b.name);
                renamed += usize::from(a.name != b.name);
            }
            assert!(!codec.encode(&b.name).contains(&unk), "{}", b.name);
            assert_eq!(v.knowledge.by_name[&b.name], b.id, "unique names");
        }
        assert_eq!(v.knowledge.by_name.len(), v.knowledge.entities.len());
        assert!(
            renamed * 10 > w.knowledge.entities.len() * 8,
            "{renamed} renamed"
        );
        for ((key, a), b) in w.knowledge.facts.iter().zip(v.knowledge.facts.values()) {
            assert_eq!(
                std::mem::discriminant(a),
                std::mem::discriminant(b),
                "{key:?}"
            );
        }
        let mut new_text = 0;
        for split in Split::ALL {
            for (q, r) in w.questions(split).iter().zip(v.questions(split)) {
                assert_eq!((&q.id, &q.template), (&r.id, &r.template));
                assert!(!codec.encode(&r.text).contains(&unk), "{}", r.text);
                new_text += usize::from(q.text != r.text);
                for s in &r.subs {
                    assert_eq!(expert_score(&v.knowledge, &s.text, &s.answer, false), 1.0);
                    assert!(v.tools.open_text(&s.entity).contains(&s.answer), "{s:?}");
                }
            }
        }
        assert!(
            new_text * 10 > 9 * (2000 + 200 + 500),
            "{new_text} new texts"
        );
        assert_eq!(w.variant(5, true).unwrap().knowledge, v.knowledge);
    }
}
