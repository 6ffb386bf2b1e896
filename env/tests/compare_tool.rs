//! The world's built-in `earlier` tool (`[world] compare_tool = true`) end to end: the experts
//! delegate the comparison and answer the name the tool gives, the sub-agent's episode runs the
//! call in process, the judge scores the comparison sub-task, the tokenizer knows every word.
use std::sync::OnceLock;

use mgrpo_env::earlier;
use mgrpo_env::judge::expert_score;
use mgrpo_env::questions::{Plan, parse_plan};
use mgrpo_env::{
    EvalReport, Split, SubEpisode, TextCodec, ToolStep, World, WorldConfig, eval_experts,
    render_transcript, run_expert_episode, run_single_expert,
};

fn world() -> &'static World {
    static W: OnceLock<World> = OnceLock::new();
    W.get_or_init(|| {
        World::generate(&WorldConfig {
            compare_tool: true,
            ..WorldConfig::default()
        })
        .unwrap()
    })
}

/// A compare question's candidates and their years, in the question's order.
fn candidates(w: &World, plan: &Plan) -> [String; 4] {
    let Plan::Compare { a, b, relation } = plan else {
        panic!("not a comparison")
    };
    let year = |name: &str| {
        let e = w.knowledge.by_name[name];
        w.knowledge.render(w.knowledge.fact(e, *relation).unwrap())
    };
    [a.clone(), year(a), b.clone(), year(b)]
}

#[test]
fn the_expert_delegates_the_comparison_and_answers_the_tools_name() {
    let w = world();
    let mut compares = 0;
    for (i, q) in w.questions(Split::Dev).iter().enumerate() {
        let t = run_expert_episode(w, q, 0.0, 0.0, i as u64);
        assert!(t.correct, "{}", render_transcript(&t));
        let plan = parse_plan(&q.text).unwrap();
        if !matches!(plan, Plan::Compare { .. }) {
            assert_eq!(t.calls.len(), q.hops, "{}", q.text);
            continue;
        }
        compares += 1;
        assert_eq!(t.calls.len(), 3, "{}", render_transcript(&t));
        let [a, ya, b, yb] = candidates(w, &plan);
        let call = &t.calls[2];
        assert_eq!(call.task(), earlier::task(&a, &ya, &b, &yb));
        let texts: Vec<&str> = call.segments().iter().map(|s| s.text.as_str()).collect();
        assert_eq!(
            texts[1..],
            [
                format!("<call> earlier {a} {ya} or {b} {yb} </call>").as_str(),
                format!("<output> {} </output>", q.answer).as_str(),
                format!("<return> {} </return>", q.answer).as_str(),
            ],
            "{}",
            render_transcript(&t)
        );
        assert_eq!(call.result(), q.answer);
        assert_eq!(
            expert_score(&w.knowledge, call.task(), call.result(), false),
            1.0
        );
        assert_eq!(
            expert_score(
                &w.knowledge,
                call.task(),
                if q.answer == a { &b } else { &a },
                false
            ),
            0.0
        );
    }
    assert!(compares > 20, "{compares} compare questions in dev");
    let q = w
        .questions(Split::Dev)
        .iter()
        .find(|q| q.kind == "compare")
        .unwrap();
    eprintln!(
        "{}",
        render_transcript(&run_expert_episode(w, q, 0.0, 0.0, 0))
    );
}

#[test]
fn noisy_experts_with_the_tool_still_make_mistakes_on_every_kind() {
    let w = world();
    let perfect = eval_experts(w, Split::Test, 0.0, 0.0, 1, None);
    assert!(perfect.accuracy >= 0.99, "{}", perfect.table());
    let noisy = eval_experts(
        w,
        Split::Test,
        w.config.main_noise,
        w.config.sub_noise,
        1,
        None,
    );
    eprintln!(
        "noisy experts with the earlier tool (test):\n{}",
        noisy.table()
    );
    assert!(noisy.accuracy < perfect.accuracy - 0.1);
    let compare = noisy.by_kind["compare"].accuracy;
    assert!((0.4..0.95).contains(&compare), "compare {compare}");
}

#[test]
fn the_single_expert_calls_the_tool_too() {
    let w = world();
    let outcomes: Vec<_> = w
        .questions(Split::Test)
        .iter()
        .enumerate()
        .map(|(i, q)| {
            let (ep, correct) = run_single_expert(w, q, 0.0, i as u64);
            let called = ep
                .segments()
                .iter()
                .any(|s| s.generated && s.text.starts_with("<call> earlier "));
            assert_eq!(called, q.kind == "compare", "{:?}", ep.segments());
            (q, correct)
        })
        .collect();
    let report = EvalReport::from_outcomes(outcomes);
    assert!(report.accuracy >= 0.99, "{}", report.table());
}

#[test]
fn a_sub_agents_call_is_answered_in_process_and_a_bad_one_is_an_error_observation() {
    let w = world();
    let task = earlier::task("Ann Lee", "1990", "Bo Ek", "1950");
    let mut ep = SubEpisode::new(&task, 4);
    assert_eq!(
        ep.apply(
            "<call> earlier Ann Lee 1990 or Bo Ek 1950 </call>",
            &w.tools
        ),
        ToolStep::Continue
    );
    assert_eq!(
        ep.segments().last().unwrap().text,
        "<output> Bo Ek </output>"
    );
    assert_eq!(
        ep.apply("<call> earlier Ann Lee 1990 or soon </call>", &w.tools),
        ToolStep::Continue
    );
    assert!(
        ep.segments()
            .last()
            .unwrap()
            .text
            .starts_with("<output> error : bad arguments for earlier"),
        "{:?}",
        ep.segments()
    );
    assert_eq!(
        ep.apply("<return> Bo Ek </return>", &w.tools),
        ToolStep::Done
    );
    assert!(ep.format_ok());
    assert_eq!(
        expert_score(&w.knowledge, ep.task(), ep.result(), false),
        1.0
    );
    assert_eq!(expert_score(&w.knowledge, ep.task(), "Ann Lee", false), 0.0);
    // Without the tool a call is not an action of the world's sub-agents.
    let plain = World::generate(&WorldConfig {
        compare_tool: false,
        ..WorldConfig::default()
    })
    .unwrap();
    let mut ep = SubEpisode::new(&task, 4);
    assert_eq!(
        ep.apply(
            "<call> earlier Ann Lee 1990 or Bo Ek 1950 </call>",
            &plain.tools
        ),
        ToolStep::Done
    );
    assert!(!ep.format_ok());
}

#[test]
fn the_tokenizer_knows_every_word_of_the_tool_and_a_world_without_it_does_not() {
    let w = world();
    let codec = TextCodec::build(w).unwrap();
    let (a, b) = (&w.knowledge.entities[0].name, &w.knowledge.entities[1].name);
    let text = format!(
        "<delegate> earlier of {a} 1947 or {b} 1952 </delegate> <call> earlier {a} 1947 or {b} \
         1952 </call> <output> {a} </output> <return> same </return> <output> error : bad \
         arguments for earlier </output>"
    );
    let ids = codec.encode(&text);
    assert!(!ids.contains(&1), "every word is known: {ids:?}");
    assert_eq!(codec.decode(&ids), text);
    let stop = codec.encode("</call>");
    assert!(codec.stop_ids().contains(&stop[0]), "</call> ends a turn");
    let plain = TextCodec::build(
        &World::generate(&WorldConfig {
            compare_tool: false,
            ..WorldConfig::default()
        })
        .unwrap(),
    )
    .unwrap();
    assert_eq!(plain.encode("<call> earlier"), [1, 1]);
    assert_eq!(codec.stop_ids().len(), plain.stop_ids().len() + 2);
}
