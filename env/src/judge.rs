//! The judge oracle: correctness of final answers and the expert score `r_expert` of sub-agent
//! results, checked against the world's ground truth.
use mgrpo_algo::{MainParts, SubParts};

use crate::earlier;
use crate::episode::NO_RESULT;
use crate::world::{Knowledge, Relation};

/// Normalised form for exact match: lower case, single spaces, no trailing period.
pub fn normalise(answer: &str) -> String {
    let words: Vec<String> = answer.split_whitespace().map(str::to_lowercase).collect();
    let mut s = words.join(" ");
    while s.ends_with(" .") || s.ends_with('.') {
        s.pop();
        s = s.trim_end().to_string();
    }
    s
}

/// Normalised exact match.
pub fn answers_match(given: &str, gold: &str) -> bool {
    normalise(given) == normalise(gold)
}

/// Reads a sub-task as `(entity, relation)`: the longest entity name and the longest relation
/// phrase it contains as whole words. A task that names the right entity and relation counts,
/// whatever else it says.
pub fn read_task(k: &Knowledge, task: &str) -> Option<(usize, Relation)> {
    let entity = k.find_entity(task)?;
    let relation = Knowledge::find_relation(task)?;
    (k.entities[entity].kind == relation.subject_kind()).then_some((entity, relation))
}

/// `r_expert ∈ {0, 1}`: 1 when the sub-task names a world fact and the result matches it.
/// With `unknown_credit` (`algo.unknown_credit`), a sub-task that names no fact — no entity
/// of the world, a relation its kind lacks, or a fact the world leaves empty — scores 1 for the
/// honest [`NO_RESULT`] (`unknown`) instead of 0 for any result, so a sub-agent asked the
/// impossible is rewarded for saying so rather than for nothing.
///
/// A comparison sub-task of the built-in `earlier` tool (`earlier of A 1947 or B 1952`,
/// see [`crate::earlier`]) is scored against the tool's answer (`A`).
pub fn expert_score(k: &Knowledge, task: &str, result: &str, unknown_credit: bool) -> f32 {
    if let Some(pair) = earlier::parse_task(task) {
        return if answers_match(result, pair.earlier()) {
            1.0
        } else {
            0.0
        };
    }
    match read_task(k, task).and_then(|(e, r)| k.fact(e, r)) {
        Some(v) if answers_match(result, &k.render(v)) => 1.0,
        None if unknown_credit && answers_match(result, NO_RESULT) => 1.0,
        _ => 0.0,
    }
}

/// The main rollout's reward parts.
pub fn main_parts(format_ok: bool, answer: Option<&str>, gold: &str) -> MainParts {
    MainParts {
        format: format_ok,
        correct: format_ok && answer.is_some_and(|a| answers_match(a, gold)),
    }
}

/// A sub-agent call's reward parts.
pub fn sub_parts(
    k: &Knowledge,
    format_ok: bool,
    task: &str,
    result: &str,
    unknown_credit: bool,
) -> SubParts {
    SubParts {
        format: format_ok,
        expert: if format_ok {
            expert_score(k, task, result, unknown_credit)
        } else {
            0.0
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::WorldConfig;
    use crate::world::Kind;
    use mgrpo_algo::RewardWeights;

    #[test]
    fn normalised_match() {
        assert!(answers_match("Tarsk", " tarsk ."));
        assert!(answers_match("Alma  Voss", "alma voss"));
        assert!(!answers_match("Tarsk", "Tarsk Vel"));
    }

    #[test]
    fn expert_score_reads_entity_and_relation() {
        let k = Knowledge::generate(&WorldConfig::default());
        let p = k.of_kind(Kind::Person).next().unwrap();
        let city = k.render(k.fact(p.id, Relation::Birthplace).unwrap());
        assert_eq!(
            expert_score(&k, &format!("birthplace of {}", p.name), &city, false),
            1.0
        );
        assert_eq!(
            expert_score(
                &k,
                &format!("find the birthplace of {} please", p.name),
                &city,
                false
            ),
            1.0
        );
        assert_eq!(
            expert_score(&k, &format!("birth year of {}", p.name), &city, false),
            0.0
        );
        assert_eq!(expert_score(&k, "birthplace of nobody", &city, false), 0.0);
        assert_eq!(
            expert_score(&k, &format!("capital of {}", p.name), &city, false),
            0.0
        );
    }

    #[test]
    fn unknown_is_credited_only_where_the_task_names_no_fact_and_only_when_asked() {
        let k = Knowledge::generate(&WorldConfig::default());
        let p = k.of_kind(Kind::Person).next().unwrap();
        let no_fact = [
            "birthplace of nobody".to_string(),
            format!("capital of {}", p.name),
        ];
        for task in &no_fact {
            assert_eq!(expert_score(&k, task, NO_RESULT, true), 1.0, "{task}");
            assert_eq!(expert_score(&k, task, " Unknown .", true), 1.0, "{task}");
            assert_eq!(expert_score(&k, task, NO_RESULT, false), 0.0, "{task}");
            assert_eq!(expert_score(&k, task, "Tarsk", true), 0.0, "{task}");
            let parts = sub_parts(&k, false, task, NO_RESULT, true);
            assert_eq!(parts.expert, 0.0, "a format error earns nothing");
        }
        // A fact the world has: `unknown` is wrong, credit or not.
        let task = format!("birthplace of {}", p.name);
        assert_eq!(expert_score(&k, &task, NO_RESULT, true), 0.0);
        let city = k.render(k.fact(p.id, Relation::Birthplace).unwrap());
        assert_eq!(expert_score(&k, &task, &city, true), 1.0);
    }

    #[test]
    fn reward_table_for_every_combination() {
        let w = RewardWeights::default();
        let k = Knowledge::generate(&WorldConfig::default());
        let p = k.of_kind(Kind::Person).next().unwrap();
        let task = format!("birthplace of {}", p.name);
        let gold = k.render(k.fact(p.id, Relation::Birthplace).unwrap());
        for format in [false, true] {
            for correct in [false, true] {
                let answer = if correct {
                    gold.clone()
                } else {
                    "wrong".into()
                };
                let parts = main_parts(format, Some(&answer), &gold);
                let expected = match (format, correct) {
                    (false, _) => 0.0,
                    (true, false) => 0.1,
                    (true, true) => 1.0,
                };
                assert!((w.main_reward(&parts) - expected).abs() < 1e-6);
                for main_correct in [false, true] {
                    let sp = sub_parts(&k, format, &task, &answer, false);
                    let expected = if !format {
                        0.0
                    } else {
                        0.1 + if main_correct { 0.5 } else { 0.0 } + if correct { 0.4 } else { 0.0 }
                    };
                    assert!((w.sub_reward(&sp, main_correct) - expected).abs() < 1e-6);
                }
            }
        }
    }
}
