//! The task world end to end: determinism, splits, search quality, experts, tokenizer.
use std::collections::BTreeSet;
use std::sync::OnceLock;
use std::time::Instant;

use mgrpo_env::corpus::read_fact;
use mgrpo_env::questions::subject_splits;
use mgrpo_env::{
    EvalReport, Split, TextCodec, World, WorldConfig, demonstrations, eval_experts,
    render_transcript, run_expert_episode, run_single_expert,
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
    let c = World::generate(&WorldConfig {
        seed: 99,
        ..WorldConfig::default()
    })
    .unwrap();
    assert_ne!(a.questions(Split::Train), c.questions(Split::Train));
}

#[test]
fn sizes_and_mix() {
    let w = world();
    let c = &w.config;
    assert_eq!(w.questions(Split::Train).len(), c.train_questions);
    assert_eq!(w.questions(Split::Dev).len(), c.dev_questions);
    assert_eq!(w.questions(Split::Test).len(), c.test_questions);
    let words: usize = w
        .tools
        .docs()
        .iter()
        .map(|d| d.text().split_whitespace().count())
        .sum();
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
            *mix.entry(q.kind.as_str()).or_insert(0) += 1;
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
            let subjects: Vec<&str> = if q.kind == mgrpo_env::QuestionKind::Compare.name() {
                q.subs.iter().map(|s| s.entity.as_str()).collect()
            } else {
                vec![q.subs[0].entity.as_str()]
            };
            for name in subjects {
                let id = w.knowledge.by_name[name];
                assert_eq!(
                    splits[id],
                    Some(s),
                    "{} asks about {name} of another split",
                    q.id
                );
            }
        }
    }
    let train: BTreeSet<&str> = w
        .questions(Split::Train)
        .iter()
        .map(|q| q.text.as_str())
        .collect();
    assert!(
        w.questions(Split::Test)
            .iter()
            .all(|q| !train.contains(q.text.as_str()))
    );
}

/// Every word of a question and of its noise-0 expert transcripts (main and sub contexts).
fn words_of_split(w: &World, split: Split) -> Vec<String> {
    let mut out = Vec::new();
    for (i, q) in w.questions(split).iter().enumerate() {
        let t = run_expert_episode(w, q, 0.0, 0.0, i as u64);
        let texts = std::iter::once(q.text.clone())
            .chain(std::iter::once(t.main.context()))
            .chain(t.calls.iter().map(|c| c.context()));
        for text in texts {
            out.extend(text.split_whitespace().map(str::to_string));
        }
    }
    out
}

#[test]
fn test_tokens_are_seen_in_train() {
    let w = world();
    let mut seen_q = BTreeSet::new();
    for q in w.questions(Split::Train) {
        seen_q.extend(q.text.split_whitespace().chain(q.answer.split_whitespace()));
    }
    let (mut total, mut covered) = (0, 0);
    for q in w.questions(Split::Test) {
        for t in q.text.split_whitespace() {
            total += 1;
            covered += usize::from(seen_q.contains(t));
        }
    }
    let by_questions = covered as f64 / total as f64;
    // With the train transcripts (what warm start and RL train on) as well.
    let seen_all: BTreeSet<String> = words_of_split(w, Split::Train).into_iter().collect();
    let test_words = words_of_split(w, Split::Test);
    let unseen: BTreeSet<&String> = test_words
        .iter()
        .filter(|t| !seen_all.contains(*t))
        .collect();
    let by_transcripts = 1.0
        - test_words.iter().filter(|t| !seen_all.contains(*t)).count() as f64
            / test_words.len() as f64;
    eprintln!(
        "test tokens seen in train: question words {by_questions:.4} (by train questions); \
         question + transcript words {by_transcripts:.4} (by train questions + transcripts); unseen {unseen:?}"
    );
    assert_eq!(
        by_questions, 1.0,
        "every test-question word occurs in a train question"
    );
    assert!(by_transcripts > 0.995, "{by_transcripts}");
}

#[test]
fn generation_is_deterministic_down_to_the_tokenizer() {
    let t = Instant::now();
    let w = World::generate(&WorldConfig::default()).unwrap();
    let generation = t.elapsed();
    let t = Instant::now();
    let codec = TextCodec::build(&w).unwrap();
    eprintln!(
        "world generation {generation:?}, tokenizer {:?}",
        t.elapsed()
    );
    assert_eq!(
        codec.to_json().unwrap(),
        TextCodec::build(world()).unwrap().to_json().unwrap()
    );
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
                    read_fact(&h.snippet, &sub.entity, sub.relation).as_deref()
                        == Some(sub.answer.as_str())
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
    assert_eq!(perfect.n, w.config.test_questions);
    let noisy = eval_experts(
        w,
        Split::Test,
        w.config.main_noise,
        w.config.sub_noise,
        1,
        None,
    );
    eprintln!(
        "expert (default noise {} / {}) test:\n{}",
        w.config.main_noise,
        w.config.sub_noise,
        noisy.table()
    );
    assert!(noisy.accuracy < perfect.accuracy - 0.1);
    let sub_only = eval_experts(w, Split::Test, 0.0, 0.3, 1, None);
    let main_only = eval_experts(w, Split::Test, 0.3, 0.0, 1, None);
    eprintln!(
        "expert test accuracy: sub noise 0.3 only {:.3}, main noise 0.3 only {:.3}",
        sub_only.accuracy, main_only.accuracy
    );
    assert!(sub_only.accuracy < 0.9 && main_only.accuracy < 0.9);
    let t = run_expert_episode(w, &w.questions(Split::Test)[0], 0.0, 0.0, 3);
    let text = render_transcript(&t);
    eprintln!("{text}");
    assert!(
        text.contains("M ▶ <delegate>") && text.contains("S ▶ <search>"),
        "{text}"
    );
    // Sub noise: detours through <open> still find the fact; wrong returns do not.
    let (mut opened, mut opened_right, mut calls, mut right) = (0, 0, 0, 0);
    for (i, q) in w.questions(Split::Dev).iter().enumerate() {
        let t = run_expert_episode(w, q, 0.0, 1.0, i as u64);
        for c in &t.calls {
            let score = mgrpo_env::judge::expert_score(&w.knowledge, c.task(), c.result(), false);
            calls += 1;
            right += usize::from(score == 1.0);
            if c.segments()
                .iter()
                .any(|s| s.generated && s.text.starts_with("<open>"))
            {
                opened += 1;
                opened_right += usize::from(score == 1.0);
            }
        }
    }
    eprintln!(
        "sub noise 1.0 on dev: {opened}/{calls} calls open a document, {opened_right} of those right; {right} right in all"
    );
    assert!(
        opened * 5 > calls && opened_right * 10 >= opened * 9,
        "detours open and succeed"
    );
    assert!(right * 10 < calls * 7);
    // Delegations per question equal its hops for the noise-0 expert, plus the comparison of a
    // compare question's two years with the built-in tool (on by default), whose result is
    // the answer.
    assert!(w.config.compare_tool);
    for (i, q) in w.questions(Split::Dev).iter().enumerate() {
        let t = run_expert_episode(w, q, 0.0, 0.0, i as u64);
        let compare = q.kind == "compare";
        assert_eq!(t.calls.len(), q.hops + usize::from(compare), "{}", q.text);
        for (call, sub) in t.calls.iter().zip(&q.subs) {
            assert_eq!(call.task(), sub.text);
            assert_eq!(call.result(), sub.answer);
        }
        if compare {
            let last = t.calls.last().unwrap();
            assert!(last.task().starts_with("earlier of "), "{}", last.task());
            assert_eq!(last.result(), q.answer);
        }
        for call in &t.calls {
            assert_eq!(
                mgrpo_env::judge::expert_score(&w.knowledge, call.task(), call.result(), false),
                1.0
            );
        }
    }
}

#[test]
fn single_expert_solves_test_and_noise_hurts() {
    let w = world();
    let run = |noise: f64| {
        let outcomes: Vec<_> = w
            .questions(Split::Test)
            .iter()
            .enumerate()
            .map(|(i, q)| (q, run_single_expert(w, q, noise, i as u64).1))
            .collect();
        EvalReport::from_outcomes(outcomes)
    };
    let perfect = run(0.0);
    let noisy = run(w.config.main_noise);
    eprintln!(
        "single expert test: noise 0 {:.3}, noise {} {:.3}",
        perfect.accuracy, w.config.main_noise, noisy.accuracy
    );
    assert!(perfect.accuracy >= 0.99, "{}", perfect.table());
    assert!(noisy.accuracy < perfect.accuracy - 0.1);
}

fn percentiles(mut v: Vec<usize>) -> String {
    v.sort_unstable();
    let at = |p: f64| v[((v.len() - 1) as f64 * p) as usize];
    format!(
        "mean {:.1} p50 {} p95 {} max {}",
        v.iter().sum::<usize>() as f64 / v.len() as f64,
        at(0.5),
        at(0.95),
        at(1.0)
    )
}

/// Each text encodes without an unknown word and decodes to itself.
fn round_trip<'a>(codec: &TextCodec, texts: impl IntoIterator<Item = &'a str>) {
    for text in texts {
        let ids = codec.encode(text);
        assert!(!ids.contains(&1), "unknown word in {text:?}");
        assert_eq!(codec.decode(&ids), text);
    }
}

#[test]
fn numbers_are_digits_and_round_trip_beside_words() {
    let w = world();
    // One digit a token (`digits_per_token = 1`): a year is its four digits; the same digit
    // has the same id in every number, the first digit and the next ones apart.
    let one = WorldConfig {
        digits_per_token: 1,
        ..w.config.clone()
    };
    let codec = TextCodec::build(&World::generate(&one).unwrap()).unwrap();
    let (y1, y2) = (codec.encode("1947"), codec.encode("1962"));
    assert_eq!((y1.len(), y2.len()), (4, 4), "{y1:?} {y2:?}");
    assert_eq!(y1[..2], y2[..2], "19 shared");
    assert_ne!(y1[2], y2[2]);
    assert_ne!(codec.encode("9"), codec.encode("19")[1..].to_vec());
    // Numbers next to numbers and words decode to the text they came from.
    round_trip(
        &codec,
        [
            "The 1947 of 2000 1890 ?",
            "0 7 10 2011",
            "<result> 1962 </result> <answer> 1917 </answer>",
        ],
    );
    // A text's own `##` words (a Markdown heading) stay words of their own.
    let md = TextCodec::from_texts(["## Intro ##Notes 1947"], None, false, Some(1)).unwrap();
    for text in ["## Intro ##Notes 1947", "##Notes 1947 ##"] {
        assert_eq!(md.decode(&md.encode(text)), text);
    }
    // No number is a word of its own: every year of the corpus is digits.
    let json: serde_json::Value = serde_json::from_str(&codec.to_json().unwrap()).unwrap();
    let vocab = json["model"]["vocab"].as_object().unwrap();
    let numbers: Vec<&String> = vocab
        .keys()
        .filter(|w| w.len() > 1 && w.bytes().all(|b| b.is_ascii_digit()))
        .collect();
    assert!(numbers.is_empty(), "{numbers:?}");
    // The word-level scheme (`split_digits = false`) has each year as one word.
    let whole = WorldConfig {
        split_digits: false,
        ..w.config.clone()
    };
    let whole = TextCodec::build(&World::generate(&whole).unwrap()).unwrap();
    assert_eq!(whole.encode("1947").len(), 1);
    assert!(whole.vocab_size() > codec.vocab_size());

    // Pairs of digits (`digits_per_token = 2`, the default): a year is its century and the
    // rest, so a year with repeated digits has no token twice (`1 ##9 ##0 ##9` has `##9` twice;
    // `19 ##09` none).
    assert_eq!(w.config.digits_per_token, 2);
    let pairs = TextCodec::build(w).unwrap();
    assert_eq!(pairs.vocab_size(), codec.vocab_size() + 200);
    let (y1, y2, y3) = (
        pairs.encode("1909"),
        pairs.encode("1947"),
        pairs.encode("1999"),
    );
    assert_eq!((y1.len(), y2.len(), y3.len()), (2, 2, 2), "{y1:?} {y2:?}");
    assert_eq!(y1[0], y2[0], "19 shared");
    assert_ne!(
        y3[0], y3[1],
        "the century and the rest are different tokens"
    );
    assert_eq!(pairs.encode("185").len(), 2);
    assert_eq!(pairs.encode("7").len(), 1);
    round_trip(
        &pairs,
        [
            "The 1947 of 2000 1890 ?",
            "0 7 10 2011 185 07 12345",
            "<result> 1909 </result> <answer> 1999 </answer>",
        ],
    );
    assert_eq!(pairs.encode("12345").len(), 3, "12 ##34 ##5");
    let loaded = TextCodec::from_json(&pairs.to_json().unwrap()).unwrap();
    assert_eq!(loaded.encode("1909 1999"), pairs.encode("1909 1999"));
    // What an HF folder carries (`mgrpo hf init`): any reader of `tokenizer.json` alone —
    // transformers, the `tokenizers` crate — decodes the pieces back into the numbers.
    let hf: tokenizers::Tokenizer = pairs.to_hf_json().unwrap().parse().unwrap();
    let text = "<result> 1909 </result> <answer> 12345 </answer>";
    assert_eq!(hf.decode(&pairs.encode(text), false).unwrap(), text);
}

#[test]
fn tokenizer_round_trips_everything() {
    let w = world();
    let codec = TextCodec::build(w).unwrap();
    eprintln!("vocabulary {} tokens", codec.vocab_size());
    assert!(codec.vocab_size() < 2000);
    let json = codec.to_json().unwrap();
    let codec = TextCodec::from_json(&json).unwrap();
    assert_eq!(
        codec.vocab_size(),
        TextCodec::build(w).unwrap().vocab_size()
    );
    let check = |text: &str| -> Vec<u32> {
        let ids = codec.encode(text);
        assert!(!ids.contains(&1), "unknown word in {text:?}");
        assert_eq!(codec.decode(&ids), text);
        ids
    };
    // Round trip, and segment by segment equals the whole context: the driver tokenizes
    // segments separately.
    let compositional = |segments: &[mgrpo_env::Segment], context: &str| {
        let ids = check(context);
        let per_segment: Vec<u32> = segments
            .iter()
            .flat_map(|s| codec.encode(&s.text))
            .collect();
        assert_eq!(per_segment, ids, "segments tokenize compositionally");
        ids.len()
    };
    for d in w.tools.docs() {
        check(&d.text());
        check(&w.tools.open_text(&d.id));
    }
    let (mut main_lens, mut sub_lens, mut single_lens) = (Vec::new(), Vec::new(), Vec::new());
    let mut noisy_max = (0, 0);
    for s in Split::ALL {
        for (i, q) in w.questions(s).iter().enumerate() {
            check(&q.text);
            check(&q.answer);
            for sub in &q.subs {
                check(&sub.text);
                check(&w.tools.search_text(&sub.text));
            }
            // Noise-0 transcripts of every question, noisy ones of every eighth.
            let noises: &[f64] = if i % 8 == 0 { &[0.0, 0.3] } else { &[0.0] };
            for &noise in noises {
                let t = run_expert_episode(w, q, noise, noise, i as u64);
                let n = compositional(t.main.segments(), &t.main.context());
                if noise == 0.0 {
                    main_lens.push(n);
                } else {
                    noisy_max.0 = noisy_max.0.max(n);
                }
                for c in &t.calls {
                    let n = compositional(c.segments(), &c.context());
                    if noise == 0.0 {
                        sub_lens.push(n);
                    } else {
                        noisy_max.1 = noisy_max.1.max(n);
                    }
                }
                let (single, _) = run_single_expert(w, q, noise, i as u64);
                let n = compositional(single.segments(), &single.context());
                if noise == 0.0 {
                    single_lens.push(n);
                }
            }
        }
    }
    eprintln!(
        "context tokens (noise-0 experts, all splits): main {}",
        percentiles(main_lens.clone())
    );
    eprintln!("context tokens: sub {}", percentiles(sub_lens.clone()));
    eprintln!(
        "context tokens: single {}",
        percentiles(single_lens.clone())
    );
    eprintln!(
        "context tokens, noise-0.3 experts: main max {}, sub max {}",
        noisy_max.0, noisy_max.1
    );
    assert!(main_lens.iter().max().unwrap() <= &128 && sub_lens.iter().max().unwrap() <= &256);
    assert!(noisy_max.0 <= 128 && noisy_max.1 <= 256);
    // The protocol's five closing tags, and </call> and </tool_call> of the built-in tool.
    assert_eq!(codec.stop_ids().len(), 5 + 2);
    for stop in mgrpo_env::protocol::tags::STOPS {
        assert_eq!(codec.encode(stop).len(), 1, "{stop} is one token");
    }
}

#[test]
fn demonstrations_cover_every_role() {
    let w = world();
    let demos = demonstrations(w, Split::Train, 20, 5);
    for role in [
        mgrpo_env::DemoRole::Main,
        mgrpo_env::DemoRole::Sub,
        mgrpo_env::DemoRole::Single,
    ] {
        assert!(demos.iter().any(|d| d.role == role));
    }
    assert!(demos.iter().all(|d| d.segments.iter().any(|s| s.generated)));
    assert_eq!(demos, demonstrations(w, Split::Train, 20, 5));
    let mains = demos
        .iter()
        .filter(|d| d.role == mgrpo_env::DemoRole::Main)
        .count();
    assert_eq!(mains, 20);
    assert_eq!(
        demos
            .iter()
            .filter(|d| d.role == mgrpo_env::DemoRole::Single)
            .count(),
        20
    );
    // The default noise makes some sub demonstrations open a document.
    let demos = demonstrations(w, Split::Train, 200, 5);
    let opens = demos
        .iter()
        .filter(|d| {
            d.role == mgrpo_env::DemoRole::Sub
                && d.segments
                    .iter()
                    .any(|s| s.generated && s.text.starts_with("<open>"))
        })
        .count();
    eprintln!(
        "{} demonstrations from 200 questions, {opens} sub demos open a document",
        demos.len()
    );
    assert!(opens > 0);
}

#[test]
fn tools_bound_their_output_and_refuse_unknown_ids() {
    let w = world();
    let c = &w.config;
    for q in w.questions(Split::Dev) {
        let hits = w.tools.search(&q.text);
        assert!(hits.len() <= c.top_k);
        assert!(
            hits.iter()
                .all(|h| h.snippet.split_whitespace().count() <= c.snippet_words)
        );
    }
    let titles: BTreeSet<&str> = w.tools.docs().iter().map(|d| d.title.as_str()).collect();
    assert_eq!(titles.len(), w.tools.docs().len(), "titles are distinct");
    for d in w.tools.docs() {
        let text = w.tools.open(&d.title).unwrap();
        assert!(text.starts_with(&format!("{} : ", d.title)));
        assert!(text.split_whitespace().count() <= c.doc_words);
        assert_eq!(w.tools.open(&d.id).unwrap(), text);
    }
    let d = &w.tools.docs()[0];
    assert_eq!(
        w.tools
            .open(&format!("  {}  ", d.title.replace(' ', "   "))),
        w.tools.open(&d.title)
    );
    assert_eq!(
        w.tools.open("d100000"),
        Err(mgrpo_env::ToolError::UnknownDoc("d100000".into()))
    );
    assert_eq!(
        w.tools.open_text("nope at all , really"),
        "no document nope at all ,"
    );
    assert!(w.tools.search("").is_empty() && w.tools.search(" ?! ").is_empty());
    assert_eq!(w.tools.search_text("zzzz"), "no results");
}

#[test]
fn a_vocabulary_with_tools_adds_the_call_tags_and_nothing_else_changes_without() {
    // A world without the built-in tool: the call tags are the MCP tools' only.
    let w = &World::generate(&WorldConfig {
        compare_tool: false,
        ..WorldConfig::default()
    })
    .unwrap();
    let plain = TextCodec::build(w).unwrap();
    assert_eq!(
        TextCodec::build_with_tools(w, None)
            .unwrap()
            .to_json()
            .unwrap(),
        plain.to_json().unwrap(),
        "no tools: the world's tokenizer, id for id"
    );
    assert_eq!(plain.encode("<call>"), [1], "the world has no call tag");
    let names = vec!["add".to_string(), "convert".to_string()];
    let tools = TextCodec::build_with_tools(w, Some(&names)).unwrap();
    let text = "<call> add 1935 1954 </call> <output> error : unknown tool convert </output> \
                <tool_call> </tool_call> <tool_response> </tool_response>";
    let ids = tools.encode(text);
    assert!(!ids.contains(&1), "every tool word is known: {ids:?}");
    assert_eq!(tools.decode(&ids), text);
    let stops = |c: &TextCodec| c.stop_ids().len();
    assert_eq!(
        stops(&tools),
        stops(&plain) + 2,
        "</call> and </tool_call> stop"
    );
    let reloaded = TextCodec::from_json(&tools.to_json().unwrap()).unwrap();
    assert_eq!(reloaded.stop_ids(), tools.stop_ids());
}

#[test]
fn a_holdout_splits_the_train_questions_between_the_warm_start_and_rl() {
    let task = mgrpo_env::Task::World(Box::new(World::generate(&WorldConfig::default()).unwrap()));
    let train = world().questions(Split::Train);
    let texts = |idx: &[usize]| -> BTreeSet<String> {
        idx.iter()
            .map(|&i| format!("<question> {} </question>", train[i].text))
            .collect()
    };
    // Without a holdout both use every train question, and the demonstrations are the old ones.
    assert_eq!(task.rl_questions(0.0).len(), train.len());
    let old = demonstrations(world(), Split::Train, 300, 9);
    let same = task.warm_demonstrations(300, 9, 0.0);
    assert_eq!(old, same);
    // With half held out: RL gets every other question, the warm start never shows one of them.
    let rl = task.rl_questions(0.5);
    assert_eq!(rl.len(), train.len() / 2);
    assert!(rl.iter().all(|i| i % 2 == 1), "evenly spaced");
    let held = texts(&rl);
    let all: Vec<usize> = (0..train.len()).collect();
    let demos = task.warm_demonstrations(1200, 9, 0.5);
    let mut shown = BTreeSet::new();
    for d in demos.iter().filter(|d| d.role == mgrpo_env::DemoRole::Main) {
        let q = &d.segments[0].text;
        assert!(!held.contains(q), "{q} is RL's");
        shown.insert(q.clone());
    }
    assert_eq!(
        shown.len(),
        train.len() - rl.len(),
        "every other question demonstrated"
    );
    assert!(shown.is_subset(&texts(&all)));
    // Every kind keeps its share on both sides.
    for kind in ["hop1", "hop2", "hop3", "compare"] {
        let of = |idx: &[usize]| idx.iter().filter(|&&i| train[i].kind == kind).count();
        let (r, a) = (of(&rl), of(&all));
        assert!(r * 5 >= a * 2 && r * 5 <= a * 3, "{kind}: {r} of {a}");
    }
}

/// `[warmup] copies`: the warm start's episodes are the same train questions, some asked in
/// the world's renamed copies (their names new, the copies RL asks in); none without copies.
#[test]
fn warm_demonstrations_in_copies_ask_some_questions_with_new_names() {
    use mgrpo_env::experts::DemoRole;
    let task = mgrpo_env::Task::World(Box::new(World::generate(&WorldConfig::default()).unwrap()));
    let w = task.world().unwrap();
    let texts = |w: &World| -> BTreeSet<String> {
        w.questions(Split::Train)
            .iter()
            .map(|q| format!("<question> {} </question>", q.text))
            .collect()
    };
    let asked = |demos: &[mgrpo_env::experts::Demo]| -> Vec<String> {
        demos
            .iter()
            .filter(|d| d.role == DemoRole::Main)
            .map(|d| d.segments[0].text.clone())
            .collect()
    };
    let plain = task.warm_demonstrations_in_copies(300, 5, 0.0, 0).unwrap();
    assert_eq!(asked(&plain), asked(&task.warm_demonstrations(300, 5, 0.0)));
    let own = texts(w);
    assert!(asked(&plain).iter().all(|q| own.contains(q)));
    let copied = task.warm_demonstrations_in_copies(300, 5, 0.0, 2).unwrap();
    let questions = asked(&copied);
    assert_eq!(questions.len(), 300);
    let renamed: BTreeSet<String> = (1..=2)
        .flat_map(|i| texts(&w.variant(i, true).unwrap()))
        .collect();
    let in_copies = questions.iter().filter(|q| !own.contains(*q)).count();
    assert!(
        (100..=300).contains(&in_copies),
        "{in_copies} of 300 episodes asked in a copy"
    );
    assert!(
        questions
            .iter()
            .all(|q| own.contains(q) || renamed.contains(q))
    );
    assert_eq!(
        asked(&task.warm_demonstrations_in_copies(300, 5, 0.0, 2).unwrap()),
        questions,
        "deterministic"
    );
}
