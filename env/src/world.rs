//! The knowledge world: entities of several kinds, typed relations and years, generated from a
//! seed. Names are built from small pools of invented words, so a held-out entity is a new
//! combination of words the models have seen (no test-only tokens).
use std::collections::{BTreeMap, BTreeSet};

use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::config::WorldConfig;

/// The kind of an entity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// A person (born somewhere, in some year).
    Person,
    /// A company (founded by a person, in a year, headquartered in a city).
    Company,
    /// A book (written by a person, published by a company in a year).
    Book,
    /// A city (in a country).
    City,
    /// A country (with a capital city).
    Country,
}

/// A typed relation. Its [`Relation::phrase`] is how sub-tasks and documents name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Relation {
    /// Person → city.
    Birthplace,
    /// Person → year.
    BirthYear,
    /// City → country.
    Country,
    /// Country → city.
    Capital,
    /// Company → person.
    Founder,
    /// Company → year.
    FoundingYear,
    /// Company → city.
    Headquarters,
    /// Book → person.
    Author,
    /// Book → year.
    PublicationYear,
    /// Book → company.
    Publisher,
}

impl Relation {
    /// Every relation.
    pub const ALL: [Relation; 10] = [
        Relation::Birthplace,
        Relation::BirthYear,
        Relation::Country,
        Relation::Capital,
        Relation::Founder,
        Relation::FoundingYear,
        Relation::Headquarters,
        Relation::Author,
        Relation::PublicationYear,
        Relation::Publisher,
    ];

    /// The words that name the relation in sub-tasks and in documents.
    pub fn phrase(self) -> &'static str {
        match self {
            Relation::Birthplace => "birthplace",
            Relation::BirthYear => "birth year",
            Relation::Country => "country",
            Relation::Capital => "capital",
            Relation::Founder => "founder",
            Relation::FoundingYear => "founding year",
            Relation::Headquarters => "headquarters",
            Relation::Author => "author",
            Relation::PublicationYear => "publication year",
            Relation::Publisher => "publisher",
        }
    }

    /// The kind of entity the relation starts from.
    pub fn subject_kind(self) -> Kind {
        match self {
            Relation::Birthplace | Relation::BirthYear => Kind::Person,
            Relation::Country => Kind::City,
            Relation::Capital => Kind::Country,
            Relation::Founder | Relation::FoundingYear | Relation::Headquarters => Kind::Company,
            Relation::Author | Relation::PublicationYear | Relation::Publisher => Kind::Book,
        }
    }
}

/// The value of a fact: an entity or a year.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Value {
    /// An entity id.
    Entity(usize),
    /// A year.
    Year(u32),
}

/// One entity.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entity {
    /// Index in [`Knowledge::entities`].
    pub id: usize,
    /// Its kind.
    pub kind: Kind,
    /// Its unique name (words separated by single spaces).
    pub name: String,
}

/// Entities and facts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Knowledge {
    /// All entities; `entities[i].id == i`.
    pub entities: Vec<Entity>,
    /// `(subject, relation) → value`.
    pub facts: BTreeMap<(usize, Relation), Value>,
    /// Name → entity id.
    pub by_name: BTreeMap<String, usize>,
}

/// The most words an entity name has (`The Red Lamp`).
pub const MAX_NAME_WORDS: usize = 3;

const SUFFIXES: [&str; 8] = [
    "Dynamics",
    "Works",
    "Labs",
    "Group",
    "Systems",
    "Holdings",
    "Industries",
    "Partners",
];

/// Invented capitalised words, unique, from a fixed generator (the pools do not depend on the
/// world seed, so the vocabulary is stable across seeds).
fn word_pool(n: usize) -> Vec<String> {
    const ONSETS: [&str; 16] = [
        "b", "d", "k", "l", "m", "n", "r", "s", "t", "v", "z", "br", "dr", "kr", "st", "th",
    ];
    const VOWELS: [&str; 6] = ["a", "e", "i", "o", "u", "ai"];
    const CODAS: [&str; 7] = ["n", "r", "s", "l", "k", "x", "nd"];
    let mut rng = ChaCha8Rng::seed_from_u64(0x574f_5244);
    let mut seen = BTreeSet::new();
    let mut out = Vec::with_capacity(n);
    while out.len() < n {
        let w = format!(
            "{}{}{}{}{}",
            ONSETS[rng.random_range(0..ONSETS.len())],
            VOWELS[rng.random_range(0..VOWELS.len())],
            ONSETS[rng.random_range(0..ONSETS.len())],
            VOWELS[rng.random_range(0..VOWELS.len())],
            CODAS[rng.random_range(0..CODAS.len())],
        );
        let mut c = w.chars();
        let cap: String = c
            .next()
            .map(|f| f.to_ascii_uppercase().to_string() + c.as_str())
            .unwrap_or_default();
        if seen.insert(cap.clone()) {
            out.push(cap);
        }
    }
    out
}

/// Sizes of the fixed name pools.
struct Pools {
    first: Vec<String>,
    last: Vec<String>,
    cities: Vec<String>,
    countries: Vec<String>,
    roots: Vec<String>,
    adjectives: Vec<String>,
    nouns: Vec<String>,
}

fn pools() -> Pools {
    let words = word_pool(40 + 40 + 60 + 20 + 40 + 30 + 30);
    let mut it = words.into_iter();
    let mut take = |n: usize| (&mut it).take(n).collect::<Vec<_>>();
    Pools {
        first: take(40),
        last: take(40),
        cities: take(60),
        countries: take(20),
        roots: take(40),
        adjectives: take(30),
        nouns: take(30),
    }
}

/// Draws `n` distinct names from the cartesian product of two pools.
fn combos(
    rng: &mut ChaCha8Rng,
    a: &[String],
    b: &[String],
    n: usize,
    fmt: impl Fn(&str, &str) -> String,
) -> Vec<String> {
    let mut all: Vec<String> = a
        .iter()
        .flat_map(|x| b.iter().map(|y| fmt(x, y)).collect::<Vec<_>>())
        .collect();
    all.shuffle(rng);
    all.truncate(n);
    all
}

impl Knowledge {
    /// Generates entities and facts from the config's seed.
    pub fn generate(config: &WorldConfig) -> Self {
        let mut rng = ChaCha8Rng::seed_from_u64(config.seed ^ 0x4b4e_4f57);
        let p = pools();
        let mut entities = Vec::new();
        let mut push = |kind: Kind, names: Vec<String>| -> Vec<usize> {
            names
                .into_iter()
                .map(|name| {
                    let id = entities.len();
                    entities.push(Entity { id, kind, name });
                    id
                })
                .collect()
        };
        let mut cities_pool = p.cities.clone();
        cities_pool.shuffle(&mut rng);
        let mut countries_pool = p.countries.clone();
        countries_pool.shuffle(&mut rng);
        let people_names = combos(&mut rng, &p.first, &p.last, config.people, |a, b| {
            format!("{a} {b}")
        });
        let company_names = combos(
            &mut rng,
            &p.roots,
            &SUFFIXES.iter().map(|s| s.to_string()).collect::<Vec<_>>(),
            config.companies,
            |a, b| format!("{a} {b}"),
        );
        let book_names = combos(&mut rng, &p.adjectives, &p.nouns, config.books, |a, b| {
            format!("The {a} {b}")
        });
        let countries = push(Kind::Country, countries_pool[..config.countries].to_vec());
        let cities = push(Kind::City, cities_pool[..config.cities].to_vec());
        let people = push(Kind::Person, people_names);
        let companies = push(Kind::Company, company_names);
        let books = push(Kind::Book, book_names);

        let mut facts = BTreeMap::new();
        // Every country gets at least one city; its capital is one of its cities.
        let mut city_country = Vec::new();
        for (i, &c) in cities.iter().enumerate() {
            let country = if i < countries.len() {
                countries[i]
            } else {
                countries[rng.random_range(0..countries.len())]
            };
            city_country.push((c, country));
            facts.insert((c, Relation::Country), Value::Entity(country));
        }
        for &country in &countries {
            let own: Vec<usize> = city_country
                .iter()
                .filter(|(_, k)| *k == country)
                .map(|(c, _)| *c)
                .collect();
            let capital = own[rng.random_range(0..own.len())];
            facts.insert((country, Relation::Capital), Value::Entity(capital));
        }
        for &person in &people {
            let city = cities[rng.random_range(0..cities.len())];
            facts.insert((person, Relation::Birthplace), Value::Entity(city));
            facts.insert(
                (person, Relation::BirthYear),
                Value::Year(rng.random_range(1900..2000)),
            );
        }
        for &company in &companies {
            let founder = people[rng.random_range(0..people.len())];
            facts.insert((company, Relation::Founder), Value::Entity(founder));
            facts.insert(
                (company, Relation::FoundingYear),
                Value::Year(rng.random_range(1850..2016)),
            );
            let city = cities[rng.random_range(0..cities.len())];
            facts.insert((company, Relation::Headquarters), Value::Entity(city));
        }
        for &book in &books {
            let author = people[rng.random_range(0..people.len())];
            facts.insert((book, Relation::Author), Value::Entity(author));
            facts.insert(
                (book, Relation::PublicationYear),
                Value::Year(rng.random_range(1900..2021)),
            );
            let publisher = companies[rng.random_range(0..companies.len())];
            facts.insert((book, Relation::Publisher), Value::Entity(publisher));
        }
        let by_name = entities.iter().map(|e| (e.name.clone(), e.id)).collect();
        Self {
            entities,
            facts,
            by_name,
        }
    }

    /// The value of `(subject, relation)`, if the world has that fact.
    pub fn fact(&self, subject: usize, relation: Relation) -> Option<Value> {
        self.facts.get(&(subject, relation)).copied()
    }

    /// How a value is written.
    pub fn render(&self, value: Value) -> String {
        match value {
            Value::Entity(id) => self.entities[id].name.clone(),
            Value::Year(y) => y.to_string(),
        }
    }

    /// Every year a fact holds, sorted.
    pub fn years(&self) -> BTreeSet<u32> {
        self.facts
            .values()
            .filter_map(|v| match v {
                Value::Year(y) => Some(*y),
                Value::Entity(_) => None,
            })
            .collect()
    }

    /// Gives every held-out (`!in_train`) subject's year facts a year that some train subject
    /// also holds (redrawn, seeded, when it does not), so no year token is test-only.
    pub fn share_years(&mut self, in_train: impl Fn(usize) -> bool, seed: u64) {
        let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x5945_4152);
        let seen: Vec<u32> = self
            .facts
            .iter()
            .filter(|((s, _), _)| in_train(*s))
            .filter_map(|(_, v)| match v {
                Value::Year(y) => Some(*y),
                Value::Entity(_) => None,
            })
            .collect::<BTreeSet<u32>>()
            .into_iter()
            .collect();
        if seen.is_empty() {
            return;
        }
        let set: BTreeSet<u32> = seen.iter().copied().collect();
        for ((s, _), v) in self.facts.iter_mut() {
            if let Value::Year(y) = v
                && !in_train(*s)
                && !set.contains(y)
            {
                *v = Value::Year(seen[rng.random_range(0..seen.len())]);
            }
        }
    }

    /// Entities of one kind.
    pub fn of_kind(&self, kind: Kind) -> impl Iterator<Item = &Entity> {
        self.entities.iter().filter(move |e| e.kind == kind)
    }

    /// The longest entity name that occurs as whole words in `text` (names have at most
    /// [`MAX_NAME_WORDS`] words, so this looks up word windows rather than scanning names).
    pub fn find_entity(&self, text: &str) -> Option<usize> {
        let words: Vec<&str> = text.split_whitespace().collect();
        let mut best: Option<(usize, usize)> = None;
        for n in 1..=MAX_NAME_WORDS.min(words.len()) {
            for window in words.windows(n) {
                let candidate = window.join(" ");
                if let Some(&id) = self.by_name.get(&candidate)
                    && best.is_none_or(|(len, _)| candidate.len() > len)
                {
                    best = Some((candidate.len(), id));
                }
            }
        }
        best.map(|(_, id)| id)
    }

    /// The relation whose phrase occurs in `text` (the longest, so "birth year" beats
    /// nothing and "founding year" is not read as "founder").
    pub fn find_relation(text: &str) -> Option<Relation> {
        let padded = format!(
            " {} ",
            text.split_whitespace().collect::<Vec<_>>().join(" ")
        );
        Relation::ALL
            .into_iter()
            .filter(|r| padded.contains(&format!(" {} ", r.phrase())))
            .max_by_key(|r| r.phrase().len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_world_and_names_unique() {
        let c = WorldConfig::default();
        let a = Knowledge::generate(&c);
        assert_eq!(a, Knowledge::generate(&c));
        assert_eq!(a.by_name.len(), a.entities.len(), "names are unique");
        let other = Knowledge::generate(&WorldConfig { seed: 8, ..c });
        assert_ne!(a.facts, other.facts);
        // Every country's capital lies in it.
        for e in a.of_kind(Kind::Country) {
            let Some(Value::Entity(cap)) = a.fact(e.id, Relation::Capital) else {
                panic!()
            };
            assert_eq!(a.fact(cap, Relation::Country), Some(Value::Entity(e.id)));
        }
    }

    #[test]
    fn finds_entities_and_relations_in_text() {
        let k = Knowledge::generate(&WorldConfig::default());
        let p = k.of_kind(Kind::Person).next().unwrap();
        let text = format!("birth year of {}", p.name);
        assert_eq!(k.find_entity(&text), Some(p.id));
        assert_eq!(Knowledge::find_relation(&text), Some(Relation::BirthYear));
        assert_eq!(
            Knowledge::find_relation("founding year of X"),
            Some(Relation::FoundingYear)
        );
        assert_eq!(
            Knowledge::find_relation("founder of X"),
            Some(Relation::Founder)
        );
        assert_eq!(Knowledge::find_relation("nothing here"), None);
    }
}
