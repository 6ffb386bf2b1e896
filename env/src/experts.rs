//! Scripted experts for every role. They act through the real protocol text and the real tools
//! (the main expert reads the question by its templates and delegates; the sub expert searches,
//! reads, opens when the snippet is not enough, and returns). With noise they make the kinds of
//! mistakes a weak policy makes, which gives warm-start demonstrations headroom for RL.
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::corpus::read_fact;
use crate::earlier;
use crate::episode::{
    MainEpisode, MainStep, NO_RESULT, Segment, SingleEpisode, SubEpisode, ToolStep,
};
use crate::generate::World;
use crate::judge::{answers_match, read_task};
use crate::protocol::{tags, wrap};
use crate::questions::{Plan, Question, Split, parse_plan, sub_task};
use crate::world::Relation;

fn random_name(world: &World, rng: &mut ChaCha8Rng) -> String {
    let e = &world.knowledge.entities;
    e[rng.random_range(0..e.len())].name.clone()
}

fn random_relation(rng: &mut ChaCha8Rng) -> Relation {
    Relation::ALL[rng.random_range(0..Relation::ALL.len())]
}

/// What a plan does next, given the results so far.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Move {
    /// Answer with this.
    Answer(String),
    /// Look up `relation` of this entity (a chain's next hop, a comparison's candidate).
    Lookup(Relation, String),
    /// Compare the candidates' years with the built-in `earlier` tool (`[world]
    /// compare_tool`): `(a, year of a, b, year of b)`.
    Compare([String; 4]),
}

/// The next move of a plan from its results. A comparison answers the candidate with the
/// earlier year; with the built-in tool (`tool`), it first asks the tool which is the earlier and
/// answers the name it returns.
fn next_move(plan: &Plan, results: &[String], tool: bool) -> Move {
    match plan {
        Plan::Chain { subject, chain } => match chain.get(results.len()) {
            Some(&r) => Move::Lookup(
                r,
                results.last().cloned().unwrap_or_else(|| subject.clone()),
            ),
            None => Move::Answer(results.last().cloned().unwrap_or_default()),
        },
        Plan::Compare { a, b, relation } => match results.len() {
            0 => Move::Lookup(*relation, a.clone()),
            1 => Move::Lookup(*relation, b.clone()),
            // The tool's answer, as a chain answers its last hop.
            n if tool && n > 2 => Move::Answer(results[2].clone()),
            _ => {
                let ya = results[0].parse::<u32>().ok();
                let yb = results[1].parse::<u32>().ok();
                match (ya, yb) {
                    (Some(_), Some(_)) if tool => Move::Compare([
                        a.clone(),
                        results[0].clone(),
                        b.clone(),
                        results[1].clone(),
                    ]),
                    (Some(x), Some(y)) if y < x => Move::Answer(b.clone()),
                    _ => Move::Answer(a.clone()),
                }
            }
        },
    }
}

/// The call a comparison makes to the built-in tool; `swap` asks with the years swapped (a
/// mistake).
fn earlier_call([a, ya, b, yb]: &[String; 4], swap: bool) -> String {
    let pair = if swap {
        earlier::words(a, yb, b, ya)
    } else {
        earlier::words(a, ya, b, yb)
    };
    wrap(tags::CALL, &format!("{} {pair}", earlier::NAME))
}

/// The main agent's expert.
#[derive(Debug)]
pub struct MainExpert {
    plan: Option<Plan>,
    noise: f64,
    rng: ChaCha8Rng,
}

impl MainExpert {
    /// An expert for one question, with mistake probability `noise` per turn.
    pub fn new(question: &str, noise: f64, seed: u64) -> Self {
        Self {
            plan: parse_plan(question),
            noise,
            rng: ChaCha8Rng::seed_from_u64(seed),
        }
    }

    /// The next turn.
    pub fn act(&mut self, world: &World, episode: &MainEpisode) -> String {
        let results: Vec<String> = episode.calls.iter().map(|(_, r)| r.clone()).collect();
        let Some(plan) = &self.plan else {
            return wrap(tags::ANSWER, NO_RESULT);
        };
        let noisy = self.rng.random_bool(self.noise);
        match next_move(plan, &results, world.config.compare_tool) {
            Move::Answer(answer) if noisy => {
                // Answer the other candidate of a comparison, or a random name.
                let wrong = match plan {
                    Plan::Compare { a, b, .. } => {
                        if answer == *a {
                            b.clone()
                        } else {
                            a.clone()
                        }
                    }
                    Plan::Chain { .. } => random_name(world, &mut self.rng),
                };
                wrap(tags::ANSWER, &wrong)
            }
            Move::Answer(answer) => wrap(tags::ANSWER, &answer),
            // An early guess, or the years asked the wrong way round.
            Move::Compare([a, ya, b, yb]) if noisy => match self.rng.random_range(0..2) {
                0 => wrap(tags::ANSWER, &random_name(world, &mut self.rng)),
                _ => wrap(tags::DELEGATE, &earlier::task(&a, &yb, &b, &ya)),
            },
            Move::Compare([a, ya, b, yb]) => wrap(tags::DELEGATE, &earlier::task(&a, &ya, &b, &yb)),
            Move::Lookup(relation, arg) if noisy => match self.rng.random_range(0..3) {
                0 => wrap(tags::ANSWER, &random_name(world, &mut self.rng)), // early guess
                1 => wrap(
                    tags::DELEGATE,
                    &sub_task(random_relation(&mut self.rng), &arg),
                ),
                _ => {
                    // A dropped hop: ask the next relation of the chain about the current entity.
                    let skipped = match plan {
                        Plan::Chain { chain, .. } => {
                            chain.get(results.len() + 1).copied().unwrap_or(relation)
                        }
                        Plan::Compare { .. } => relation,
                    };
                    wrap(tags::DELEGATE, &sub_task(skipped, &arg))
                }
            },
            Move::Lookup(relation, arg) => wrap(tags::DELEGATE, &sub_task(relation, &arg)),
        }
    }
}

/// Reads `(entity, relation)`'s value from an observation's sentences.
fn read_observation(
    world: &World,
    observation: &str,
    entity: usize,
    relation: Relation,
) -> Option<String> {
    let name = &world.knowledge.entities[entity].name;
    observation
        .split(" | ")
        .flat_map(|hit| hit.split(" . "))
        .map(|s| s.split_once(" : ").map_or(s, |(_, sentence)| sentence))
        .find_map(|s| read_fact(&format!("{} .", s.trim_end_matches(" .")), name, relation))
}

/// The mistake a noisy sub expert makes in one call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SubMistake {
    /// None: search the task, return the fact.
    None,
    /// Returns another name or year seen in the observation.
    WrongReturn,
    /// Searches only the entity's name, then opens its document and reads the fact there (a
    /// detour that still finds it).
    VagueSearch,
    /// Searches another relation of the entity, then opens its document (a detour).
    WrongSearch,
}

/// The document to open after a search: the hit titled `name`, else the first hit.
fn pick_doc(observation: &str, name: &str) -> Option<String> {
    let inner = observation.strip_prefix(tags::RESULTS.0)?;
    let titles: Vec<&str> = inner
        .split(" | ")
        .filter_map(|h| Some(h.trim().split_once(" : ")?.0))
        .collect();
    titles
        .iter()
        .find(|t| **t == name)
        .or(titles.first())
        .map(|t| t.to_string())
}

/// Names and years that occur in `text`, in order, without repeats.
fn values_in(world: &World, text: &str) -> Vec<String> {
    let words: Vec<&str> = text.split_whitespace().collect();
    let mut out: Vec<String> = Vec::new();
    let mut i = 0;
    while i < words.len() {
        let hit = (1..=crate::world::MAX_NAME_WORDS.min(words.len() - i))
            .rev()
            .find_map(|n| {
                let w = words[i..i + n].join(" ");
                (world.knowledge.by_name.contains_key(&w)
                    || (n == 1 && w.len() == 4 && w.parse::<u32>().is_ok()))
                .then_some((n, w))
            });
        match hit {
            Some((n, w)) => {
                if !out.contains(&w) {
                    out.push(w);
                }
                i += n;
            }
            None => i += 1,
        }
    }
    out
}

/// The sub-agent's expert.
#[derive(Debug)]
pub struct SubExpert {
    mistake: SubMistake,
    rng: ChaCha8Rng,
}

impl SubExpert {
    /// An expert for one call; with probability `noise` the call goes wrong: half of those
    /// return a wrong value, the other half take a detour (a vague or wrong search, then an
    /// open) that still finds the fact.
    pub fn new(noise: f64, seed: u64) -> Self {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let mistake = if rng.random_bool(noise) {
            match rng.random_range(0..4) {
                0 | 1 => SubMistake::WrongReturn,
                2 => SubMistake::VagueSearch,
                _ => SubMistake::WrongSearch,
            }
        } else {
            SubMistake::None
        };
        Self { mistake, rng }
    }

    /// The next turn.
    pub fn act(&mut self, world: &World, episode: &SubEpisode) -> String {
        if world.config.compare_tool
            && let Some(pair) = earlier::parse_task(episode.task())
        {
            return self.compare(episode, &pair);
        }
        let k = &world.knowledge;
        let segments = episode.segments();
        let Some((entity, relation)) = read_task(k, episode.task()) else {
            // No such fact: look once, then report that nothing was found.
            return if segments.len() == 1 {
                wrap(tags::SEARCH, episode.task())
            } else {
                wrap(tags::RETURN, NO_RESULT)
            };
        };
        let name = &k.entities[entity].name;
        let last = segments.last().map(|s| s.text.as_str()).unwrap_or("");
        if segments.len() == 1 {
            let query = match self.mistake {
                SubMistake::VagueSearch => name.clone(),
                SubMistake::WrongSearch => {
                    let others: Vec<Relation> = Relation::ALL
                        .into_iter()
                        .filter(|r| *r != relation && r.subject_kind() == relation.subject_kind())
                        .collect();
                    let other = others
                        .get(self.rng.random_range(0..others.len().max(1)))
                        .copied()
                        .unwrap_or(relation);
                    sub_task(other, name)
                }
                _ => episode.task().to_string(),
            };
            return wrap(tags::SEARCH, &query);
        }
        if self.mistake == SubMistake::WrongReturn {
            let gold = k
                .fact(entity, relation)
                .map(|v| k.render(v))
                .unwrap_or_default();
            let wrong: Vec<String> = values_in(world, last)
                .into_iter()
                .filter(|v| !answers_match(v, &gold) && v != name)
                .collect();
            let pick = wrong
                .get(self.rng.random_range(0..wrong.len().max(1)))
                .cloned()
                .unwrap_or_else(|| NO_RESULT.to_string());
            return wrap(tags::RETURN, &pick);
        }
        let detour = matches!(
            self.mistake,
            SubMistake::VagueSearch | SubMistake::WrongSearch
        );
        if !(detour && segments.len() == 3)
            && let Some(v) = read_observation(world, last, entity, relation)
        {
            return wrap(tags::RETURN, &v);
        }
        match pick_doc(last, name) {
            Some(doc) => wrap(tags::OPEN, &doc),
            None => wrap(tags::RETURN, NO_RESULT),
        }
    }

    /// A comparison sub-task: call the built-in tool, then return what it said (the other
    /// candidate when this call's mistake is a wrong return; a detour is no mistake here).
    fn compare(&mut self, episode: &SubEpisode, pair: &earlier::Pair) -> String {
        let segments = episode.segments();
        if segments.len() == 1 {
            let call = earlier::call_for(episode.task()).unwrap_or_default();
            return wrap(tags::CALL, &call);
        }
        let said = segments
            .last()
            .map_or(NO_RESULT, |s| output_of(&s.text).unwrap_or(NO_RESULT));
        let said = if self.mistake == SubMistake::WrongReturn && said == pair.earlier() {
            pair.other(said)
        } else {
            said
        };
        wrap(tags::RETURN, said)
    }
}

/// The words inside a tool's `<output> … </output>` observation, if `text` is one.
fn output_of(text: &str) -> Option<&str> {
    Some(
        text.strip_prefix(tags::OUTPUT.0)?
            .strip_suffix(tags::OUTPUT.1)?
            .trim(),
    )
}

/// The single agent's expert (the `single` baseline): searches each hop itself.
#[derive(Debug)]
pub struct SingleExpert {
    plan: Option<Plan>,
    results: Vec<String>,
    noise: f64,
    rng: ChaCha8Rng,
}

impl SingleExpert {
    /// An expert for one question.
    pub fn new(question: &str, noise: f64, seed: u64) -> Self {
        Self {
            plan: parse_plan(question),
            results: Vec::new(),
            noise,
            rng: ChaCha8Rng::seed_from_u64(seed),
        }
    }

    /// The next turn.
    pub fn act(&mut self, world: &World, episode: &SingleEpisode) -> String {
        let Some(plan) = self.plan.clone() else {
            return wrap(tags::ANSWER, NO_RESULT);
        };
        let last = episode
            .segments()
            .last()
            .map(|s| s.text.clone())
            .unwrap_or_default();
        let tool = world.config.compare_tool;
        if episode.segments().len() > 1 {
            match next_move(&plan, &self.results, tool) {
                // Read the observation for the pending lookup.
                Move::Lookup(relation, arg) => {
                    if let Some(e) = world.knowledge.by_name.get(&arg) {
                        if let Some(v) = read_observation(world, &last, *e, relation) {
                            self.results.push(v);
                        } else if let Some(doc) = pick_doc(&last, &arg) {
                            return wrap(tags::OPEN, &doc);
                        } else {
                            self.results.push(NO_RESULT.to_string());
                        }
                    } else {
                        self.results.push(NO_RESULT.to_string());
                    }
                }
                // Read what the built-in tool said.
                Move::Compare(..) => self
                    .results
                    .push(output_of(&last).unwrap_or(NO_RESULT).to_string()),
                Move::Answer(_) => {}
            }
        }
        let noisy = self.rng.random_bool(self.noise);
        match next_move(&plan, &self.results, tool) {
            Move::Answer(_) if noisy => wrap(tags::ANSWER, &random_name(world, &mut self.rng)),
            Move::Answer(answer) => wrap(tags::ANSWER, &answer),
            Move::Compare(..) if noisy && self.rng.random_bool(0.5) => {
                wrap(tags::ANSWER, &random_name(world, &mut self.rng))
            }
            Move::Compare(pair) => earlier_call(&pair, noisy),
            Move::Lookup(..) if noisy && self.rng.random_bool(0.5) => {
                wrap(tags::ANSWER, &random_name(world, &mut self.rng))
            }
            Move::Lookup(relation, arg) if noisy => {
                let arg = if self.rng.random_bool(0.5) {
                    random_name(world, &mut self.rng)
                } else {
                    arg
                };
                wrap(tags::SEARCH, &sub_task(relation, &arg))
            }
            Move::Lookup(relation, arg) => wrap(tags::SEARCH, &sub_task(relation, &arg)),
        }
    }
}

/// A finished multi-agent episode: the main transcript and every sub-agent call.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Transcript {
    /// The question.
    pub question: Question,
    /// The main agent's episode.
    pub main: MainEpisode,
    /// Each call, in order.
    pub calls: Vec<SubEpisode>,
    /// Whether the final answer is correct.
    pub correct: bool,
}

/// Runs the main and sub experts on one question through the real protocol and tools.
pub fn run_expert_episode(
    world: &World,
    q: &Question,
    main_noise: f64,
    sub_noise: f64,
    seed: u64,
) -> Transcript {
    let cfg = &world.config;
    let mut main = MainEpisode::new(&q.text, cfg.max_main_turns);
    let mut expert = MainExpert::new(&q.text, main_noise, seed);
    let mut calls = Vec::new();
    while !main.is_done() {
        let out = expert.act(world, &main);
        if let MainStep::Delegate(task) = main.apply(&out) {
            let mut sub = SubEpisode::new(&task, cfg.max_sub_turns);
            let mut sx = SubExpert::new(
                sub_noise,
                mgrpo_algo::derive_seed(seed, &[calls.len() as u64]),
            );
            while !sub.is_done() {
                let out = sx.act(world, &sub);
                sub.apply(&out, &world.tools);
            }
            main.deliver_result(sub.result());
            calls.push(sub);
        }
    }
    let correct = main.format_ok() && main.answer().is_some_and(|a| answers_match(a, &q.answer));
    Transcript {
        question: q.clone(),
        main,
        calls,
        correct,
    }
}

/// Runs the single-agent expert on one question; returns the episode and correctness.
pub fn run_single_expert(
    world: &World,
    q: &Question,
    noise: f64,
    seed: u64,
) -> (SingleEpisode, bool) {
    let mut ep = SingleEpisode::new(&q.text, world.config.max_single_turns);
    let mut expert = SingleExpert::new(&q.text, noise, seed);
    while !ep.is_done() {
        let out = expert.act(world, &ep);
        if ep.apply(&out, &world.tools) == ToolStep::Done {
            break;
        }
    }
    let correct = ep.format_ok() && ep.answer().is_some_and(|a| answers_match(a, &q.answer));
    (ep, correct)
}

/// A human-readable transcript, hop by hop (`mgrpo world --show`).
pub fn render_transcript(t: &Transcript) -> String {
    let mut out = format!(
        "── {} [{} · {} hops] {}\n   gold: {}\n",
        t.question.id, t.question.kind, t.question.hops, t.question.text, t.question.answer
    );
    let mut call = 0;
    for s in t.main.segments() {
        if s.generated {
            out += &format!("   M ▶ {}\n", s.text);
            if s.text.starts_with(tags::DELEGATE.0) {
                if let Some(sub) = t.calls.get(call) {
                    for ss in sub.segments().iter().skip(1) {
                        let who = if ss.generated { "S ▶" } else { "  ◀" };
                        out += &format!("        {who} {}\n", ss.text);
                    }
                }
                call += 1;
            }
        } else if !s.text.starts_with(tags::QUESTION.0) {
            out += &format!("   ◀ {}\n", s.text);
        }
    }
    out += &format!("   => {}\n", if t.correct { "correct" } else { "wrong" });
    out
}

/// Which role a demonstration trains.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DemoRole {
    /// The main agent.
    Main,
    /// A sub-agent.
    Sub,
    /// The single agent.
    Single,
}

/// One role's transcript, the warm-start SFT data.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Demo {
    /// The role it trains.
    pub role: DemoRole,
    /// Its segments.
    pub segments: Vec<Segment>,
}

/// Demonstrations of the noisy experts on `n` questions of a split (cycled if the split is
/// smaller): one main demo and one demo per sub call per question, plus one single-agent demo
/// per question.
pub fn demonstrations(world: &World, split: Split, n: usize, seed: u64) -> Vec<Demo> {
    let qs: Vec<&Question> = world.questions(split).iter().collect();
    demonstrations_from(world, &qs, n, seed)
}

/// Whether question `i` of the train split is held out of the warm start (and given to RL)
/// when a share `holdout` is: evenly spaced, so every kind keeps its share on both sides.
pub fn held_out(i: usize, holdout: f64) -> bool {
    ((i + 1) as f64 * holdout).floor() > (i as f64 * holdout).floor()
}

/// [`demonstrations`] on the given questions (cycled if fewer than `n`).
pub fn demonstrations_from(world: &World, qs: &[&Question], n: usize, seed: u64) -> Vec<Demo> {
    let mut out = Vec::new();
    if qs.is_empty() {
        return out;
    }
    let cfg = &world.config;
    for i in 0..n {
        let q = qs[i % qs.len()];
        let s = mgrpo_algo::derive_seed(seed, &[i as u64]);
        let t = run_expert_episode(world, q, cfg.main_noise, cfg.sub_noise, s);
        out.push(Demo {
            role: DemoRole::Main,
            segments: t.main.segments().to_vec(),
        });
        for c in &t.calls {
            out.push(Demo {
                role: DemoRole::Sub,
                segments: c.segments().to_vec(),
            });
        }
        let (single, _) =
            run_single_expert(world, q, cfg.main_noise, mgrpo_algo::derive_seed(s, &[1]));
        out.push(Demo {
            role: DemoRole::Single,
            segments: single.segments().to_vec(),
        });
    }
    out
}
