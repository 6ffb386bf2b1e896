//! `[world]` of cluster.toml: the size, mix and tool limits of the task world.
use serde::{Deserialize, Serialize};

/// A world setting that cannot be used, naming its key.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("world.{key}: {problem}")]
pub struct ConfigError {
    /// The key under `[world]`.
    pub key: &'static str,
    /// What is wrong with it.
    pub problem: String,
}

/// How the world is generated and how its tools and agents are bounded.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WorldConfig {
    /// World seed: same seed, same entities, corpus and questions.
    pub seed: u64,
    /// Number of people.
    pub people: usize,
    /// Number of companies.
    pub companies: usize,
    /// Number of books.
    pub books: usize,
    /// Number of cities.
    pub cities: usize,
    /// Number of countries.
    pub countries: usize,
    /// Distractor documents (mention entities, state no asked fact); at most `3 × people`.
    pub distractors: usize,
    /// Relative weight of 1-hop questions.
    pub mix_hop1: f64,
    /// Relative weight of 2-hop questions.
    pub mix_hop2: f64,
    /// Relative weight of 3-hop questions.
    pub mix_hop3: f64,
    /// Relative weight of comparison questions.
    pub mix_compare: f64,
    /// Questions in the train split.
    pub train_questions: usize,
    /// Questions in the dev split.
    pub dev_questions: usize,
    /// Questions in the test split.
    pub test_questions: usize,
    /// Search results per query.
    pub top_k: usize,
    /// Longest snippet, in words.
    pub snippet_words: usize,
    /// Longest opened document, in words.
    pub doc_words: usize,
    /// Most main-agent turns per episode.
    pub max_main_turns: usize,
    /// Most sub-agent turns per call.
    pub max_sub_turns: usize,
    /// Most turns of the single agent (the `single` baseline).
    pub max_single_turns: usize,
    /// Probability that the main expert makes a mistake at a turn (warm-start demonstrations).
    pub main_noise: f64,
    /// Probability that the sub expert makes a mistake in a call.
    pub sub_noise: f64,
    /// Whether preset roles' tokenizers split numbers into pieces of digits (`1947` → `19 ##47`
    /// with `digits_per_token = 2`, as Llama's and Qwen's tokenizers split numbers too) instead
    /// of one word per number: a comparison of two years is then one of digits seen in every
    /// year, not of year words seen a few times each (over seeds 1–3: compare questions +5
    /// points on every seed, docs/results.md).
    pub split_digits: bool,
    /// With `split_digits`, how many digits one token may hold (1 to 3). With 2, the default, a
    /// year is two tokens, its century and the rest (`1947` → `19 ##47`; `185` → `18 ##5`): a
    /// model copying `1 ##9 ##0 ##9` one digit at a time loses its place in the repeated digits
    /// (`190909`, `19999999`), while `19 ##09` has no token twice (over seeds 1–3 mgrpo's
    /// sub-agents go from 92.5–93.5 % to 96.6–98.1 % of returns right; docs/results.md).
    /// Numbers are split greedily from the left, as a WordPiece tokenizer splits words.
    pub digits_per_token: usize,
    /// Whether the sub-agents have the built-in `earlier` tool (`<call> earlier A 1947 or B 1952
    /// </call>` → `A`), so a compare question is answered by delegating the comparison
    /// (`earlier of A 1947 or B 1952`) instead of comparing two years in the main agent's
    /// context (`env/src/earlier.rs`, docs/protocol.md). On by default: over five seeds it lifts
    /// compare questions from below a coin flip to 0.57 and mgrpo's test accuracy by 8 points
    /// (docs/results.md); off, a world keeps the tokenizer and seeded runs of the versions
    /// before it, bit for bit.
    pub compare_tool: bool,
}

impl Default for WorldConfig {
    fn default() -> Self {
        Self {
            seed: 7,
            people: 240,
            companies: 120,
            books: 80,
            cities: 40,
            countries: 12,
            distractors: 150,
            mix_hop1: 0.3,
            mix_hop2: 0.3,
            mix_hop3: 0.2,
            mix_compare: 0.2,
            train_questions: 2000,
            dev_questions: 200,
            test_questions: 500,
            top_k: 3,
            snippet_words: 16,
            doc_words: 60,
            max_main_turns: 6,
            max_sub_turns: 4,
            max_single_turns: 8,
            main_noise: 0.15,
            sub_noise: 0.15,
            split_digits: true,
            digits_per_token: 2,
            compare_tool: true,
        }
    }
}

impl WorldConfig {
    /// How numbers are tokenized: `None`, one word per number; `Some(n)`, pieces of at most `n`
    /// digits (`split_digits`, `digits_per_token`).
    pub fn number_pieces(&self) -> Option<usize> {
        self.split_digits.then_some(self.digits_per_token)
    }

    /// Checks every value; returns the first problem.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let bad = |key, problem: &str| {
            Err(ConfigError {
                key,
                problem: problem.to_string(),
            })
        };
        for (key, v, min) in [
            ("people", self.people, 20),
            ("companies", self.companies, 10),
            ("books", self.books, 10),
            ("cities", self.cities, 4),
            ("countries", self.countries, 2),
            ("top_k", self.top_k, 1),
            ("snippet_words", self.snippet_words, 8),
            ("doc_words", self.doc_words, 8),
            ("max_main_turns", self.max_main_turns, 1),
            ("max_sub_turns", self.max_sub_turns, 1),
            ("max_single_turns", self.max_single_turns, 1),
        ] {
            if v < min {
                return bad(key, &format!("{v} is too small (at least {min})"));
            }
        }
        if self.people > 1600 || self.companies > 900 || self.books > 900 {
            return bad(
                "people",
                "the name pools allow at most 1600 people, 900 companies and 900 books",
            );
        }
        if !(1..=3).contains(&self.digits_per_token) {
            return bad(
                "digits_per_token",
                &format!("{} is not 1, 2 or 3", self.digits_per_token),
            );
        }
        if self.distractors > 3 * self.people {
            return bad(
                "distractors",
                "at most 3 per person (distractor titles are distinct)",
            );
        }
        if self.cities > 60 || self.countries > 20 {
            return bad("cities", "at most 60 cities and 20 countries");
        }
        if self.countries > self.cities {
            return bad("countries", "needs at least as many cities as countries");
        }
        let mix = [
            self.mix_hop1,
            self.mix_hop2,
            self.mix_hop3,
            self.mix_compare,
        ];
        if mix.iter().any(|w| !(w.is_finite() && *w >= 0.0)) || mix.iter().sum::<f64>() <= 0.0 {
            return bad(
                "mix_hop1",
                "question mix weights must be >= 0 and not all 0",
            );
        }
        for (key, p) in [
            ("main_noise", self.main_noise),
            ("sub_noise", self.sub_noise),
        ] {
            if !(0.0..=1.0).contains(&p) {
                return bad(key, &format!("{p} is not a probability"));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_bad_values_name_their_key() {
        assert_eq!(WorldConfig::default().validate(), Ok(()));
        let key = |c: WorldConfig| c.validate().unwrap_err().key;
        assert_eq!(
            key(WorldConfig {
                top_k: 0,
                ..Default::default()
            }),
            "top_k"
        );
        assert_eq!(
            key(WorldConfig {
                sub_noise: 1.5,
                ..Default::default()
            }),
            "sub_noise"
        );
        assert_eq!(
            key(WorldConfig {
                countries: 30,
                ..Default::default()
            }),
            "cities"
        );
        for digits_per_token in [0, 4] {
            assert_eq!(
                key(WorldConfig {
                    digits_per_token,
                    ..Default::default()
                }),
                "digits_per_token"
            );
        }
        let e = WorldConfig {
            max_main_turns: 0,
            ..Default::default()
        }
        .validate()
        .unwrap_err();
        assert_eq!(
            e.to_string(),
            "world.max_main_turns: 0 is too small (at least 1)"
        );
    }

    #[test]
    fn partial_tables_fill_defaults_and_unknown_keys_fail() {
        let c: WorldConfig = serde_json::from_str(r#"{"seed": 3, "top_k": 5}"#).unwrap();
        assert_eq!(
            c,
            WorldConfig {
                seed: 3,
                top_k: 5,
                ..Default::default()
            }
        );
        let err = serde_json::from_str::<WorldConfig>(r#"{"topk": 5}"#).unwrap_err();
        assert!(err.to_string().contains("unknown field `topk`"), "{err}");
    }
}
