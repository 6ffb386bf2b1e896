//! The corpus: documents that state the world's facts in several sentence templates, plus
//! distractor documents that mention entities without answering anything asked.
//!
//! Text is canonical: words separated by single spaces, punctuation as its own word, so the
//! word-level tokenizer round-trips it exactly.
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::config::WorldConfig;
use crate::world::{Kind, Knowledge, Relation};

/// One document.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Document {
    /// Its id, as the tools write it (`d17`).
    pub id: String,
    /// Its title.
    pub title: String,
    /// Its sentences, each ending with ` .`.
    pub sentences: Vec<String>,
}

impl Document {
    /// The whole text.
    pub fn text(&self) -> String {
        self.sentences.join(" ")
    }
}

/// States `(subject) relation (object)` in template `t` (0, 1 or 2).
pub fn state_fact(subject: &str, relation: Relation, object: &str, t: usize) -> String {
    let rel = relation.phrase();
    match t % 3 {
        0 => format!("The {rel} of {subject} is {object} ."),
        1 => format!("{object} is the {rel} of {subject} ."),
        _ => format!("{subject} has {object} as {rel} ."),
    }
}

/// Reads the object of `(subject, relation)` back from a sentence written by [`state_fact`],
/// whatever its template. Used by the scripted experts; `None` if the sentence states
/// something else.
pub fn read_fact(sentence: &str, subject: &str, relation: Relation) -> Option<String> {
    let rel = relation.phrase();
    let s = sentence.trim().strip_suffix(" .").unwrap_or(sentence.trim());
    if let Some(rest) = s.strip_prefix(&format!("The {rel} of {subject} is ")) {
        return Some(rest.to_string());
    }
    if let Some(obj) = s.strip_suffix(&format!(" is the {rel} of {subject}")) {
        return Some(obj.to_string());
    }
    if let Some(rest) = s.strip_prefix(&format!("{subject} has ")) {
        return rest.strip_suffix(&format!(" as {rel}")).map(str::to_string);
    }
    None
}

/// Builds the corpus of a world.
pub fn build_corpus(k: &Knowledge, config: &WorldConfig) -> Vec<Document> {
    let mut rng = ChaCha8Rng::seed_from_u64(config.seed ^ 0x434f_5250);
    let mut docs: Vec<Document> = Vec::new();
    for e in &k.entities {
        let mut sentences = Vec::new();
        for r in Relation::ALL.into_iter().filter(|r| r.subject_kind() == e.kind) {
            if let Some(v) = k.fact(e.id, r) {
                let t = rng.random_range(0..3);
                sentences.push(state_fact(&e.name, r, &k.render(v), t));
            }
        }
        // Cross-mentions: a person's page names what they founded and wrote.
        if e.kind == Kind::Person {
            for (&(subj, r), &v) in &k.facts {
                if matches!(r, Relation::Founder | Relation::Author)
                    && v == crate::world::Value::Entity(e.id)
                {
                    sentences.push(state_fact(&k.entities[subj].name, r, &e.name, 1));
                }
            }
        }
        docs.push(Document {
            id: String::new(),
            title: e.name.clone(),
            sentences,
        });
    }
    let people: Vec<&str> = k.of_kind(Kind::Person).map(|e| e.name.as_str()).collect();
    let cities: Vec<&str> = k.of_kind(Kind::City).map(|e| e.name.as_str()).collect();
    let companies: Vec<&str> = k.of_kind(Kind::Company).map(|e| e.name.as_str()).collect();
    let books: Vec<&str> = k.of_kind(Kind::Book).map(|e| e.name.as_str()).collect();
    let pick = |rng: &mut ChaCha8Rng, v: &[&str]| v[rng.random_range(0..v.len())].to_string();
    for _ in 0..config.distractors {
        let p = pick(&mut rng, &people);
        let mut sentences = Vec::new();
        for _ in 0..3 {
            let year = rng.random_range(1900..2021);
            let s = match rng.random_range(0..4) {
                0 => format!("{p} visited {} in {year} .", pick(&mut rng, &cities)),
                1 => format!("{p} met {} in {} .", pick(&mut rng, &people), pick(&mut rng, &cities)),
                2 => format!("{} was praised by {p} .", pick(&mut rng, &books)),
                _ => format!("{} hired {p} in {year} .", pick(&mut rng, &companies)),
            };
            sentences.push(s);
        }
        docs.push(Document {
            id: String::new(),
            title: format!("notes on {p}"),
            sentences,
        });
    }
    for (i, d) in docs.iter_mut().enumerate() {
        d.id = format!("d{i}");
    }
    docs
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_template_reads_back() {
        for t in 0..3 {
            for r in Relation::ALL {
                let s = state_fact("Alma Voss", r, "Tarsk", t);
                assert_eq!(read_fact(&s, "Alma Voss", r).as_deref(), Some("Tarsk"), "{s}");
                assert_eq!(read_fact(&s, "Bren Voss", r), None);
            }
        }
        let s = state_fact("Alma Voss", Relation::BirthYear, "1954", 0);
        assert_eq!(read_fact(&s, "Alma Voss", Relation::Birthplace), None);
    }
}
