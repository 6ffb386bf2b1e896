//! The task world end to end: determinism, splits, search quality, experts, tokenizer.
use std::collections::BTreeSet;
use std::sync::OnceLock;
use std::time::Instant;

use mgrpo_env::corpus::read_fact;
use mgrpo_env::questions::subject_splits;
use mgrpo_env::{
    Split, TextCodec, World, WorldConfig, demonstrations, eval_experts, render_transcript,
    run_expert_episode,
};

fn world() -> &'static World {
    static W: OnceLock<World> = OnceLock::new();
    W.get_or_init(|| {
        let t = Instant::now();
        let w = World::generate(&WorldConfig::default()).unwrap();
        eprintln!("world generated in {:?}", t.elapsed());
        w
    })
}

#[test]
fn same_seed_same_world() {
    let a = world();
    let b = World::generate(&WorldConfig::default()).unwrap();
    assert_eq!(a.knowledge, b.knowledge);
    assert_eq!(a.tools.docs(), b.tools.docs());
    for s in Split::ALL {
        assert_eq!(a.questions(s), b.questions(s));
    }
    let q = &a.questions(Split::Test)[0].subs[0].text;
    assert_eq!(a.tools.search(q), b.tools.search(q));
    let c = World::generate(&WorldConfig { seed: 99, ..WorldConfig::default() }).unwrap();
    assert_ne!(a.questions(Split::Train), c.questions(Split::Train));
}

#[test]
fn sizes_and_mix() {
    let w = world();
    let c = &w.config;
    assert_eq!(w.questions(Split::Train).len(), c.train_questions);
    assert_eq!(w.questions(Split::Dev).len(), c.dev_questions);
    assert_eq!(w.questions(Split::Test).len(), c.test_questions);
    let words: usize = w.tools.docs().iter().map(|d| d.text().split_whitespace().count()).sum();
    eprintln!(
        "entities {} facts {} docs {} words {}",
        w.knowledge.entities.len(),
        w.knowledge.facts.len(),
        w.tools.docs().len(),
        words
    );
    for s in Split::ALL {
        let mut mix = std::collections::BTreeMap::new();
        for q in w.questions(s) {
            *mix.entry(q.kind.name()).or_insert(0) += 1;
        }
        eprintln!("{} mix {mix:?}", s.name());
        assert_eq!(mix.len(), 4, "every kind appears in {}", s.name());
    }
}

#[test]
fn splits_are_disjoint_by_subject() {
    let w = world();
    let splits = subject_splits(&w.knowledge, w.config.seed);
    let mut ids = BTreeSet::new();
    for s in Split::ALL {
        for q in w.questions(s) {
            assert!(ids.insert(q.id.clone()), "unique ids");
            // The question's subject(s): the entity of its first sub-question (both for compare).
            let subjects: Vec<&str> = match q.kind {
                mgrpo_env::QuestionKind::Compare => q.subs.iter().map(|s| s.entity.as_str()).collect(),
                _ => vec![q.subs[0].entity.as_str()],
            };
            for name in subjects {
                let id = w.knowledge.by_name[name];
                assert_eq!(splits[id], Some(s), "{} asks about {name} of another split", q.id);
            }
        }
    }
    let train: BTreeSet<&str> = w.questions(Split::Train).iter().map(|q| q.text.as_str()).collect();
    assert!(w.questions(Split::Test).iter().all(|q| !train.contains(q.text.as_str())));
}

#[test]
fn test_tokens_are_seen_in_train() {
    let w = world();
    let mut seen = BTreeSet::new();
    for q in w.questions(Split::Train) {
        for t in q.text.split_whitespace().chain(q.answer.split_whitespace()) {
            seen.insert(t);
        }
    }
    let (mut total, mut covered) = (0, 0);
    for q in w.questions(Split::Test) {
        for t in q.text.split_whitespace() {
            total += 1;
            covered += usize::from(seen.contains(t));
        }
    }
    let rate = covered as f64 / total as f64;
    eprintln!("test-question token coverage by train questions: {rate:.4}");
    assert!(rate > 0.98, "{rate}");
}

#[test]
fn search_ranks_the_stating_document_first() {
    let w = world();
    let wide = mgrpo_env::Tools::new(w.tools.docs().to_vec(), 5, 64, 64).unwrap();
    let (mut n, mut top1, mut top5) = (0, 0, 0);
    for s in Split::ALL {
        for q in w.questions(s) {
            for sub in &q.subs {
                n += 1;
                let hits = wide.search(&sub.text);
                let states = |h: &mgrpo_env::SearchHit| {
                    read_fact(&h.snippet, &sub.entity, sub.relation).as_deref() == Some(sub.answer.as_str())
                };
                if hits.first().is_some_and(states) {
                    top1 += 1;
                }
                if hits.iter().any(states) {
                    top5 += 1;
                }
            }
        }
    }
    let (r1, r5) = (top1 as f64 / n as f64, top5 as f64 / n as f64);
    eprintln!("search over {n} gold sub-questions: top-1 {r1:.4} top-5 {r5:.4}");
    assert!(r1 > 0.95 && r5 > 0.99, "top-1 {r1} top-5 {r5}");
}

#[test]
fn experts_solve_test_and_noise_hurts() {
    let w = world();
    let perfect = eval_experts(w, Split::Test, 0.0, 0.0, 1, None);
    eprintln!("expert (noise 0) test:\n{}", perfect.table());
    assert!(perfect.accuracy >= 0.99, "{}", perfect.accuracy);
    let noisy = eval_experts(w, Split::Test, w.config.main_noise, w.config.sub_noise, 1, None);
    eprintln!("expert (default noise) test:\n{}", noisy.table());
    assert!(noisy.accuracy < perfect.accuracy - 0.1);
    let t = run_expert_episode(w, &w.questions(Split::Test)[0], 0.0, 0.0, 3);
    let text = render_transcript(&t);
    assert!(text.contains("M ▶ <delegate>") && text.contains("S ▶ <search>"), "{text}");
}

#[test]
fn tokenizer_round_trips_everything() {
    let w = world();
    let codec = TextCodec::build(w).unwrap();
    eprintln!("vocabulary {} tokens", codec.vocab_size());
    assert!(codec.vocab_size() < 2500);
    let json = codec.to_json().unwrap();
    let codec = TextCodec::from_json(&json).unwrap();
    let check = |text: &str| {
        let ids = codec.encode(text);
        assert!(!ids.contains(&1), "unknown word in {text:?}");
        assert_eq!(codec.decode(&ids), text);
    };
    for d in w.tools.docs() {
        check(&d.text());
    }
    let mut lens = Vec::new();
    for (i, q) in w.questions(Split::Train).iter().take(300).enumerate() {
        check(&q.text);
        let t = run_expert_episode(w, q, 0.2, 0.2, i as u64);
        let main = t.main.context();
        check(&main);
        let per_segment: Vec<u32> = t.main.segments().iter().flat_map(|s| codec.encode(&s.text)).collect();
        assert_eq!(per_segment, codec.encode(&main), "segments tokenize compositionally");
        lens.push((codec.encode(&main).len(), t.calls.iter().map(|c| codec.encode(&c.context()).len()).max().unwrap_or(0)));
        for c in &t.calls {
            check(&c.context());
        }
    }
    let max_main = lens.iter().map(|l| l.0).max().unwrap();
    let max_sub = lens.iter().map(|l| l.1).max().unwrap();
    eprintln!("context tokens: main max {max_main}, sub max {max_sub}");
    assert!(max_main <= 160 && max_sub <= 256);
    assert_eq!(codec.stop_ids().len(), 5);
}

#[test]
fn demonstrations_cover_every_role() {
    let w = world();
    let demos = demonstrations(w, Split::Train, 20, 5);
    for role in [mgrpo_env::DemoRole::Main, mgrpo_env::DemoRole::Sub, mgrpo_env::DemoRole::Single] {
        assert!(demos.iter().any(|d| d.role == role));
    }
    assert!(demos.iter().all(|d| d.segments.iter().any(|s| s.generated)));
    assert_eq!(demos, demonstrations(w, Split::Train, 20, 5));
}
