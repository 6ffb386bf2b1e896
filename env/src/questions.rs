//! Questions of 1–3 hops and comparisons, with gold answers and gold sub-questions, split into
//! train / dev / test by held-out subject entities.
//!
//! The subjects (people, companies, books) are partitioned 70 / 10 / 20 % between the splits, so
//! every test question asks about a chain that starts at an entity never asked about in train
//! (the chain may pass through train entities: the test chain itself was never asked).
use std::collections::BTreeSet;

use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::config::WorldConfig;
use crate::world::{Kind, Knowledge, Relation, Value};

/// A data split.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Split {
    /// Questions to train on.
    Train,
    /// Held-out questions to watch during training.
    Dev,
    /// Held-out questions to report.
    Test,
}

impl Split {
    /// All splits.
    pub const ALL: [Split; 3] = [Split::Train, Split::Dev, Split::Test];

    /// Its name.
    pub fn name(self) -> &'static str {
        match self {
            Split::Train => "train",
            Split::Dev => "dev",
            Split::Test => "test",
        }
    }
}

/// The shape of a question.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum QuestionKind {
    /// One fact.
    Hop1,
    /// A chain of two facts.
    Hop2,
    /// A chain of three facts.
    Hop3,
    /// Which of two entities has the earlier year.
    Compare,
}

impl QuestionKind {
    /// Its name.
    pub fn name(self) -> &'static str {
        match self {
            QuestionKind::Hop1 => "hop1",
            QuestionKind::Hop2 => "hop2",
            QuestionKind::Hop3 => "hop3",
            QuestionKind::Compare => "compare",
        }
    }
}

/// One gold sub-question: a fact to look up.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SubQuestion {
    /// The entity asked about.
    pub entity: String,
    /// The relation asked.
    pub relation: Relation,
    /// The canonical sub-task text (`birthplace of Alma Voss`).
    pub text: String,
    /// The gold answer.
    pub answer: String,
}

/// One question.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Question {
    /// Unique id (`test-00042`).
    pub id: String,
    /// Its split.
    pub split: Split,
    /// Its kind, the slice accuracy is reported by: the world's shape (`hop1`, `hop2`,
    /// `hop3`, `compare`, see [`QuestionKind`]) or a dataset's own `kind`.
    pub kind: String,
    /// Its template's name (for inspection; empty in a dataset).
    pub template: String,
    /// Number of facts needed (delegations the expert makes; 0 in a dataset: unknown).
    pub hops: usize,
    /// The question text.
    pub text: String,
    /// The gold answer.
    pub answer: String,
    /// Further accepted answers (a dataset's `answers` after the first).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub also: Vec<String>,
    /// The gold sub-questions, in the order the expert asks them (empty in a dataset).
    pub subs: Vec<SubQuestion>,
}

impl Question {
    /// Every accepted answer: `answer`, then `also`.
    pub fn answers(&self) -> impl Iterator<Item = &str> {
        std::iter::once(self.answer.as_str()).chain(self.also.iter().map(String::as_str))
    }
}

/// A chain template: literal text around one subject, and the relations to follow.
pub struct ChainTemplate {
    /// Template name.
    pub name: &'static str,
    /// Subject kind.
    pub subject: Kind,
    /// Text before the subject name.
    pub prefix: &'static str,
    /// Text after the subject name.
    pub suffix: &'static str,
    /// Relations followed from the subject, in order.
    pub chain: &'static [Relation],
}

/// A comparison template: `prefix A or B ?`, the earlier year of `relation` wins.
pub struct CompareTemplate {
    /// Template name.
    pub name: &'static str,
    /// Subject kind.
    pub subject: Kind,
    /// Text before the first name.
    pub prefix: &'static str,
    /// The year relation compared.
    pub relation: Relation,
}

use Relation as R;

/// Every chain template.
pub const CHAINS: &[ChainTemplate] = &[
    ChainTemplate {
        name: "birthplace",
        subject: Kind::Person,
        prefix: "Where was",
        suffix: "born ?",
        chain: &[R::Birthplace],
    },
    ChainTemplate {
        name: "birth_year",
        subject: Kind::Person,
        prefix: "In which year was",
        suffix: "born ?",
        chain: &[R::BirthYear],
    },
    ChainTemplate {
        name: "founder",
        subject: Kind::Company,
        prefix: "Who founded",
        suffix: "?",
        chain: &[R::Founder],
    },
    ChainTemplate {
        name: "founding_year",
        subject: Kind::Company,
        prefix: "In which year was",
        suffix: "founded ?",
        chain: &[R::FoundingYear],
    },
    ChainTemplate {
        name: "headquarters",
        subject: Kind::Company,
        prefix: "Where is",
        suffix: "headquartered ?",
        chain: &[R::Headquarters],
    },
    ChainTemplate {
        name: "author",
        subject: Kind::Book,
        prefix: "Who wrote",
        suffix: "?",
        chain: &[R::Author],
    },
    ChainTemplate {
        name: "publication_year",
        subject: Kind::Book,
        prefix: "In which year was",
        suffix: "published ?",
        chain: &[R::PublicationYear],
    },
    ChainTemplate {
        name: "publisher",
        subject: Kind::Book,
        prefix: "Which company published",
        suffix: "?",
        chain: &[R::Publisher],
    },
    ChainTemplate {
        name: "birth_country",
        subject: Kind::Person,
        prefix: "In which country was",
        suffix: "born ?",
        chain: &[R::Birthplace, R::Country],
    },
    ChainTemplate {
        name: "founder_birthplace",
        subject: Kind::Company,
        prefix: "Where was the founder of",
        suffix: "born ?",
        chain: &[R::Founder, R::Birthplace],
    },
    ChainTemplate {
        name: "founder_birth_year",
        subject: Kind::Company,
        prefix: "In which year was the founder of",
        suffix: "born ?",
        chain: &[R::Founder, R::BirthYear],
    },
    ChainTemplate {
        name: "headquarters_country",
        subject: Kind::Company,
        prefix: "In which country is",
        suffix: "headquartered ?",
        chain: &[R::Headquarters, R::Country],
    },
    ChainTemplate {
        name: "author_birthplace",
        subject: Kind::Book,
        prefix: "Where was the author of",
        suffix: "born ?",
        chain: &[R::Author, R::Birthplace],
    },
    ChainTemplate {
        name: "author_birth_year",
        subject: Kind::Book,
        prefix: "In which year was the author of",
        suffix: "born ?",
        chain: &[R::Author, R::BirthYear],
    },
    ChainTemplate {
        name: "publisher_founder",
        subject: Kind::Book,
        prefix: "Who founded the publisher of",
        suffix: "?",
        chain: &[R::Publisher, R::Founder],
    },
    ChainTemplate {
        name: "publisher_founding_year",
        subject: Kind::Book,
        prefix: "In which year was the publisher of",
        suffix: "founded ?",
        chain: &[R::Publisher, R::FoundingYear],
    },
    ChainTemplate {
        name: "publisher_headquarters",
        subject: Kind::Book,
        prefix: "Where is the publisher of",
        suffix: "headquartered ?",
        chain: &[R::Publisher, R::Headquarters],
    },
    ChainTemplate {
        name: "founder_birth_country",
        subject: Kind::Company,
        prefix: "In which country was the founder of",
        suffix: "born ?",
        chain: &[R::Founder, R::Birthplace, R::Country],
    },
    ChainTemplate {
        name: "author_birth_country",
        subject: Kind::Book,
        prefix: "In which country was the author of",
        suffix: "born ?",
        chain: &[R::Author, R::Birthplace, R::Country],
    },
    ChainTemplate {
        name: "birth_country_capital",
        subject: Kind::Person,
        prefix: "What is the capital of the country where",
        suffix: "was born ?",
        chain: &[R::Birthplace, R::Country, R::Capital],
    },
    ChainTemplate {
        name: "headquarters_country_capital",
        subject: Kind::Company,
        prefix: "What is the capital of the country where",
        suffix: "is headquartered ?",
        chain: &[R::Headquarters, R::Country, R::Capital],
    },
    ChainTemplate {
        name: "publisher_founder_birthplace",
        subject: Kind::Book,
        prefix: "Where was the founder of the publisher of",
        suffix: "born ?",
        chain: &[R::Publisher, R::Founder, R::Birthplace],
    },
    ChainTemplate {
        name: "publisher_headquarters_country",
        subject: Kind::Book,
        prefix: "In which country is the publisher of",
        suffix: "headquartered ?",
        chain: &[R::Publisher, R::Headquarters, R::Country],
    },
];

/// Every comparison template.
pub const COMPARES: &[CompareTemplate] = &[
    CompareTemplate {
        name: "founded_first",
        subject: Kind::Company,
        prefix: "Which was founded first ,",
        relation: R::FoundingYear,
    },
    CompareTemplate {
        name: "born_first",
        subject: Kind::Person,
        prefix: "Who was born first ,",
        relation: R::BirthYear,
    },
    CompareTemplate {
        name: "published_first",
        subject: Kind::Book,
        prefix: "Which was published first ,",
        relation: R::PublicationYear,
    },
];

/// The canonical sub-task text for `(relation, entity)`.
pub fn sub_task(relation: Relation, entity: &str) -> String {
    format!("{} of {entity}", relation.phrase())
}

fn year(v: Option<Value>) -> Option<u32> {
    match v? {
        Value::Year(y) => Some(y),
        Value::Entity(_) => None,
    }
}

/// Which split each subject belongs to (70 / 10 / 20 %, per kind; `None` for cities and
/// countries, which are never subjects).
///
/// Every word of a held-out subject's name also occurs in some train subject's name of the same
/// kind (entities holding a word not yet covered go to train first), so held-out questions use
/// no word the training questions lack.
pub fn subject_splits(k: &Knowledge, seed: u64) -> Vec<Option<Split>> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x5350_4c54);
    let mut out = vec![None; k.entities.len()];
    for kind in [Kind::Person, Kind::Company, Kind::Book] {
        let mut ids: Vec<usize> = k.of_kind(kind).map(|e| e.id).collect();
        ids.shuffle(&mut rng);
        let n = ids.len();
        let n_train = (n * 7).div_ceil(10);
        let n_dev = (n * 8).div_ceil(10) - n_train;
        let mut covered = BTreeSet::new();
        let mut rest = Vec::new();
        let mut train = 0;
        for id in ids {
            let words: Vec<&str> = k.entities[id].name.split_whitespace().collect();
            if train < n_train && words.iter().any(|w| !covered.contains(w)) {
                covered.extend(words);
                out[id] = Some(Split::Train);
                train += 1;
            } else {
                rest.push(id);
            }
        }
        let mut dev = 0;
        for id in rest {
            out[id] = Some(if train < n_train {
                train += 1;
                Split::Train
            } else if dev < n_dev {
                dev += 1;
                Split::Dev
            } else {
                Split::Test
            });
        }
    }
    out
}

const KINDS: [QuestionKind; 4] = [
    QuestionKind::Hop1,
    QuestionKind::Hop2,
    QuestionKind::Hop3,
    QuestionKind::Compare,
];

/// Splits `n` by `weights` (largest remainder), so the mix is exact up to rounding.
fn quotas(weights: [f64; 4], n: usize) -> [usize; 4] {
    let total: f64 = weights.iter().sum();
    let exact: Vec<f64> = weights.iter().map(|w| w / total * n as f64).collect();
    let mut q = [0usize; 4];
    for (i, e) in exact.iter().enumerate() {
        q[i] = e.floor() as usize;
    }
    let mut order: Vec<usize> = (0..4).collect();
    order.sort_by(|&a, &b| {
        (exact[b] - exact[b].floor())
            .total_cmp(&(exact[a] - exact[a].floor()))
            .then(a.cmp(&b))
    });
    let mut left = n - q.iter().sum::<usize>();
    for i in order.into_iter().cycle().take(8) {
        if left == 0 {
            break;
        }
        if weights[i] > 0.0 {
            q[i] += 1;
            left -= 1;
        }
    }
    q
}

/// The chain question of template `t` about `subject`, if the world has every fact on it.
fn chain_question(
    k: &Knowledge,
    split: Split,
    kind: QuestionKind,
    t: &ChainTemplate,
    subject: usize,
) -> Option<Question> {
    let mut subs = Vec::new();
    let mut current = Value::Entity(subject);
    for &r in t.chain {
        let Value::Entity(e) = current else {
            return None;
        };
        let v = k.fact(e, r)?;
        let name = k.entities[e].name.clone();
        subs.push(SubQuestion {
            text: sub_task(r, &name),
            entity: name,
            relation: r,
            answer: k.render(v),
        });
        current = v;
    }
    Some(Question {
        id: String::new(),
        split,
        kind: kind.name().to_string(),
        template: t.name.to_string(),
        hops: t.chain.len(),
        text: format!("{} {} {}", t.prefix, k.entities[subject].name, t.suffix),
        answer: k.render(current),
        also: Vec::new(),
        subs,
    })
}

/// The comparison of template `t` between `a` and `b`, if both years exist and differ.
fn compare_question(
    k: &Knowledge,
    split: Split,
    t: &CompareTemplate,
    a: usize,
    b: usize,
) -> Option<Question> {
    let (ya, yb) = (year(k.fact(a, t.relation))?, year(k.fact(b, t.relation))?);
    if a == b || ya == yb {
        return None;
    }
    let (na, nb) = (&k.entities[a].name, &k.entities[b].name);
    Some(Question {
        id: String::new(),
        split,
        kind: QuestionKind::Compare.name().to_string(),
        template: t.name.to_string(),
        hops: 2,
        text: format!("{} {na} or {nb} ?", t.prefix),
        answer: if ya < yb { na.clone() } else { nb.clone() },
        also: Vec::new(),
        subs: vec![
            SubQuestion {
                entity: na.clone(),
                relation: t.relation,
                text: sub_task(t.relation, na),
                answer: ya.to_string(),
            },
            SubQuestion {
                entity: nb.clone(),
                relation: t.relation,
                text: sub_task(t.relation, nb),
                answer: yb.to_string(),
            },
        ],
    })
}

/// `q`, a question of the knowledge `was`, asked again of `k` (a variant of it: the same
/// entities by id, other years or names): the same template and entities, its text, gold
/// sub-questions and answer written from `k`. `None` when an entity or fact of it is missing,
/// or a comparison's two years are equal in `k`.
pub fn restate(q: &Question, was: &Knowledge, k: &Knowledge) -> Option<Question> {
    let entity = |i: usize| was.by_name.get(&q.subs.get(i)?.entity).copied();
    let mut out = if let Some(t) = COMPARES.iter().find(|t| t.name == q.template) {
        compare_question(k, q.split, t, entity(0)?, entity(1)?)?
    } else {
        let t = CHAINS.iter().find(|t| t.name == q.template)?;
        let kind = *KINDS.get(t.chain.len().checked_sub(1)?)?;
        chain_question(k, q.split, kind, t, entity(0)?)?
    };
    out.id.clone_from(&q.id);
    Some(out)
}

/// Generates the questions of every split: distinct questions, the kinds mixed by the config's
/// weights (exactly, up to rounding; a chain kind whose distinct questions run out in a small
/// world hands its shortfall to the other kinds), in a seeded random order.
pub fn generate_questions(k: &Knowledge, config: &WorldConfig) -> [Vec<Question>; 3] {
    let splits = subject_splits(k, config.seed);
    let weights = [
        config.mix_hop1,
        config.mix_hop2,
        config.mix_hop3,
        config.mix_compare,
    ];
    let counts = [
        config.train_questions,
        config.dev_questions,
        config.test_questions,
    ];
    let mut out: [Vec<Question>; 3] = Default::default();
    for (si, split) in Split::ALL.into_iter().enumerate() {
        let mut rng = ChaCha8Rng::seed_from_u64(config.seed ^ 0x5155_0000 ^ si as u64);
        let subjects = |kind: Kind| -> Vec<usize> {
            k.of_kind(kind)
                .filter(|e| splits[e.id] == Some(split))
                .map(|e| e.id)
                .collect()
        };
        // Every distinct chain question of the split, per kind, in a seeded random order.
        let mut chains: [Vec<Question>; 3] = Default::default();
        for (ki, kind) in KINDS[..3].iter().enumerate() {
            for t in CHAINS.iter().filter(|t| t.chain.len() == ki + 1) {
                chains[ki].extend(
                    subjects(t.subject)
                        .into_iter()
                        .filter_map(|s| chain_question(k, split, *kind, t, s)),
                );
            }
            chains[ki].shuffle(&mut rng);
        }
        let mut want = quotas(weights, counts[si]);
        // Hand the shortfall of exhausted chain kinds to the others (comparisons last).
        for _ in 0..3 {
            let short: usize = (0..3)
                .map(|i| want[i].saturating_sub(chains[i].len()))
                .sum();
            if short == 0 {
                break;
            }
            for i in 0..3 {
                want[i] = want[i].min(chains[i].len());
            }
            let spare: Vec<usize> = (0..3)
                .filter(|&i| weights[i] > 0.0 && want[i] < chains[i].len())
                .collect();
            let mut left = short;
            for &i in spare.iter().cycle().take(spare.len() * short) {
                if left == 0 {
                    break;
                }
                if want[i] < chains[i].len() {
                    want[i] += 1;
                    left -= 1;
                }
            }
            want[3] += left;
        }
        let mut qs: Vec<Question> = Vec::with_capacity(counts[si]);
        for i in 0..3 {
            qs.extend(chains[i].drain(..).take(want[i]));
        }
        // Comparisons: random distinct pairs of same-kind subjects.
        let pools: Vec<(&CompareTemplate, Vec<usize>)> = COMPARES
            .iter()
            .map(|t| (t, subjects(t.subject)))
            .filter(|(_, p)| p.len() >= 2)
            .collect();
        let mut seen = BTreeSet::new();
        let mut attempts = 0;
        let mut compares = 0;
        while compares < want[3] && !pools.is_empty() && attempts < want[3] * 50 {
            attempts += 1;
            let (t, p) = &pools[rng.random_range(0..pools.len())];
            let (a, b) = (
                p[rng.random_range(0..p.len())],
                p[rng.random_range(0..p.len())],
            );
            if let Some(q) = compare_question(k, split, t, a, b)
                && seen.insert(q.text.clone())
            {
                qs.push(q);
                compares += 1;
            }
        }
        qs.shuffle(&mut rng);
        for (i, q) in qs.iter_mut().enumerate() {
            q.id = format!("{}-{i:05}", split.name());
        }
        out[si] = qs;
    }
    out
}

/// The plan a question's text asks for, read back from its template (what the main expert
/// does): the subject name(s) and the template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Plan {
    /// Follow `chain` from `subject`; answer the last result.
    Chain {
        /// The subject's name.
        subject: String,
        /// Relations to follow.
        chain: Vec<Relation>,
    },
    /// Look up `relation` of both; answer the one with the earlier year.
    Compare {
        /// First name.
        a: String,
        /// Second name.
        b: String,
        /// The year relation.
        relation: Relation,
    },
}

/// Parses a question's text back into its plan (longest matching template wins).
pub fn parse_plan(text: &str) -> Option<Plan> {
    let text = text.trim();
    for t in COMPARES {
        if let Some(rest) = text
            .strip_prefix(t.prefix)
            .and_then(|r| r.strip_suffix(" ?"))
        {
            let (a, b) = rest.trim().split_once(" or ")?;
            return Some(Plan::Compare {
                a: a.trim().to_string(),
                b: b.trim().to_string(),
                relation: t.relation,
            });
        }
    }
    CHAINS
        .iter()
        .filter_map(|t| {
            let rest = text.strip_prefix(t.prefix)?.strip_suffix(t.suffix)?;
            let subject = rest.trim();
            (!subject.is_empty()).then(|| {
                (
                    t.prefix.len() + t.suffix.len(),
                    Plan::Chain {
                        subject: subject.to_string(),
                        chain: t.chain.to_vec(),
                    },
                )
            })
        })
        .max_by_key(|(len, _)| *len)
        .map(|(_, p)| p)
}
