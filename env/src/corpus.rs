//! The corpus: documents that state the world's facts in several sentence templates, plus
//! distractor documents that mention entities without answering anything asked.
//!
//! Text is canonical: words separated by single spaces, punctuation as its own word, so the
//! word-level tokenizer round-trips it exactly.
use std::collections::BTreeMap;

use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::config::WorldConfig;
use crate::world::{Kind, Knowledge, Relation, Value};

/// One document.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Document {
    /// Its id (`d17`), for programs; agents see and open documents by title.
    pub id: String,
    /// Its title, unique in the corpus (an entity's name, or `notes on <person>` …).
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
    let s = sentence
        .trim()
        .strip_suffix(" .")
        .unwrap_or(sentence.trim());
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

/// How distractor titles start (`notes on Alma Voss`); with the people they bound the number of
/// distractors to `3 × people`.
pub const DISTRACTOR_FORMS: [&str; 3] = ["notes on", "letters of", "memories of"];

/// Builds the corpus of a world: one document per entity (titled with its name) and
/// `config.distractors` distractor documents; every title is distinct.
pub fn build_corpus(k: &Knowledge, config: &WorldConfig) -> Vec<Document> {
    let mut rng = ChaCha8Rng::seed_from_u64(config.seed ^ 0x434f_5250);
    let mut docs: Vec<Document> = Vec::new();
    let mut mentions: BTreeMap<usize, Vec<(usize, Relation)>> = BTreeMap::new();
    for (&(subj, r), &v) in &k.facts {
        if let (Relation::Founder | Relation::Author | Relation::Publisher, Value::Entity(obj)) =
            (r, v)
        {
            mentions.entry(obj).or_default().push((subj, r));
        }
    }
    for e in &k.entities {
        let mut sentences = Vec::new();
        for r in Relation::ALL
            .into_iter()
            .filter(|r| r.subject_kind() == e.kind)
        {
            if let Some(v) = k.fact(e.id, r) {
                let t = rng.random_range(0..3);
                sentences.push(state_fact(&e.name, r, &k.render(v), t));
            }
        }
        // Cross-mentions: a person's page names what they founded and wrote, a company's page
        // what it published (template 1, so the page reads as being about its title).
        for &(subj, r) in mentions.get(&e.id).map(Vec::as_slice).unwrap_or_default() {
            sentences.push(state_fact(&k.entities[subj].name, r, &e.name, 1));
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
    // Distractor years come from the world's own years, so they add no token of their own.
    let years: Vec<u32> = k.years().into_iter().collect();
    // Distinct titles (`open` finds a document by its title): a form and a person, no repeats.
    let mut titled: Vec<(usize, &str)> = (0..DISTRACTOR_FORMS.len())
        .flat_map(|f| people.iter().map(move |p| (f, *p)))
        .collect();
    titled.shuffle(&mut rng);
    for &(form, p) in titled.iter().take(config.distractors) {
        let mut sentences = Vec::new();
        for _ in 0..3 {
            let year = years
                .get(rng.random_range(0..years.len().max(1)))
                .copied()
                .unwrap_or(1950);
            let s = match rng.random_range(0..4) {
                0 => format!("{p} visited {} in {year} .", pick(&mut rng, &cities)),
                1 => format!(
                    "{p} met {} in {} .",
                    pick(&mut rng, &people),
                    pick(&mut rng, &cities)
                ),
                2 => format!("{} was praised by {p} .", pick(&mut rng, &books)),
                _ => format!("{} hired {p} in {year} .", pick(&mut rng, &companies)),
            };
            sentences.push(s);
        }
        docs.push(Document {
            id: String::new(),
            title: format!("{} {p}", DISTRACTOR_FORMS[form]),
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
                assert_eq!(
                    read_fact(&s, "Alma Voss", r).as_deref(),
                    Some("Tarsk"),
                    "{s}"
                );
                assert_eq!(read_fact(&s, "Bren Voss", r), None);
            }
        }
        let s = state_fact("Alma Voss", Relation::BirthYear, "1954", 0);
        assert_eq!(read_fact(&s, "Alma Voss", Relation::Birthplace), None);
    }
}
