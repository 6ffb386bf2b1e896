//! The engine of `mgrpo algo --input groups.json`: the M-GRPO maths on a user's own numbers.
//! The input format is documented in docs/algorithm.md with an example in docs/examples/.
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::advantages::{GroupStats, StdKind};
use crate::rewards::{MainParts, RewardWeights};
use crate::stats::{
    STATS_VERSION, StatsError, SubCallStat, SubSettings, main_advantages, publish_main_group,
    sub_advantages,
};

/// Why the input could not be used.
#[derive(Debug, thiserror::Error)]
pub enum InspectError {
    /// Not JSON of the documented shape.
    #[error("input is not a valid groups document: {0}")]
    Json(#[from] serde_json::Error),
    /// A group is inconsistent.
    #[error("group {group}: {source}")]
    Group {
        /// Index of the group in the input.
        group: usize,
        /// Why.
        #[source]
        source: StatsError,
    },
    /// `d_max` must be at least 1.
    #[error("d_max must be at least 1")]
    DMax,
}

/// The input document.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InspectInput {
    /// The run seed (alignment draws derive from it).
    #[serde(default)]
    pub run_seed: u64,
    /// The step the groups belong to.
    #[serde(default)]
    pub step: u64,
    /// Slots per rollout.
    #[serde(default = "default_d_max")]
    pub d_max: usize,
    /// `population` or `unbiased`.
    #[serde(default)]
    pub std: StdKind,
    /// ε.
    #[serde(default = "default_eps")]
    pub eps: f32,
    /// Reward weights (defaults of ALGORITHM.md when absent).
    #[serde(default)]
    pub weights: RewardWeights,
    /// The query groups.
    pub groups: Vec<InputGroup>,
}

fn default_d_max() -> usize {
    4
}

fn default_eps() -> f32 {
    1e-6
}

/// One query group: its K rollouts.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InputGroup {
    /// The rollouts, in rollout order.
    pub rollouts: Vec<InputRollout>,
}

/// One main rollout's parts and its calls' parts.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InputRollout {
    /// Main r_format.
    pub format: bool,
    /// Main r_correct.
    pub correct: bool,
    /// The sub-agent calls, in call order.
    #[serde(default)]
    pub calls: Vec<InputCall>,
}

/// One call's parts.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InputCall {
    /// The call's r_format.
    pub format: bool,
    /// The judge's r_expert.
    pub expert: f32,
}

/// An `f32` as the JSON number with its shortest decimal form (0.1, not 0.10000000149011612).
fn num(x: f32) -> Value {
    x.to_string()
        .parse::<f64>()
        .ok()
        .and_then(serde_json::Number::from_f64)
        .map_or(Value::Null, Value::Number)
}

fn stats_json(s: &GroupStats) -> Value {
    json!({ "mean": num(s.mean), "std": num(s.std), "count": s.count })
}

/// Computes rewards, alignment and advantages for every group of the input.
pub fn run(input_json: &str) -> Result<Value, InspectError> {
    let input: InspectInput = serde_json::from_str(input_json)?;
    if input.d_max == 0 {
        return Err(InspectError::DMax);
    }
    let mut groups = Vec::new();
    for (q, g) in input.groups.iter().enumerate() {
        let parts: Vec<MainParts> = g
            .rollouts
            .iter()
            .map(|r| MainParts {
                format: r.format,
                correct: r.correct,
            })
            .collect();
        let d: Vec<u32> = g.rollouts.iter().map(|r| r.calls.len() as u32).collect();
        let (main, published) =
            publish_main_group(input.step, q as u32, &parts, &d, &input.weights, input.std);
        let (adv, _) = main_advantages(&main, input.std, input.eps)
            .map_err(|source| InspectError::Group { group: q, source })?;
        let calls: Vec<SubCallStat> = g
            .rollouts
            .iter()
            .enumerate()
            .flat_map(|(k, r)| {
                r.calls.iter().enumerate().map(move |(i, c)| SubCallStat {
                    version: STATS_VERSION,
                    step: input.step,
                    query: q as u32,
                    rollout: k as u32,
                    call: i as u32,
                    format: c.format,
                    expert: c.expert,
                })
            })
            .collect();
        let settings = SubSettings {
            d_max: input.d_max,
            run_seed: input.run_seed,
            weights: input.weights,
            std: input.std,
            eps: input.eps,
        };
        let sub = sub_advantages(&main, &calls, &settings)
            .map_err(|source| InspectError::Group { group: q, source })?;
        let rollouts: Vec<Value> = main
            .iter()
            .zip(&adv)
            .zip(&sub.alignment)
            .enumerate()
            .map(|(k, ((m, a), al))| {
                let slots: Vec<Value> = al
                    .slots
                    .iter()
                    .enumerate()
                    .map(|(j, s)| {
                        json!({
                            "slot": s,
                            "reward": num(sub.slot_rewards[k][j]),
                            "advantage": num(sub.slot_advantages[k][j]),
                        })
                    })
                    .collect();
                json!({
                    "rollout": k,
                    "reward": num(m.reward),
                    "advantage": num(*a),
                    "calls": m.calls,
                    "dropped_calls": al.dropped,
                    "slots": slots,
                })
            })
            .collect();
        groups.push(json!({
            "query": q,
            "main_stats": stats_json(&published.stats),
            "sub_stats": stats_json(&sub.published.stats),
            "rollouts": rollouts,
        }));
    }
    Ok(json!({
        "run_seed": input.run_seed,
        "step": input.step,
        "d_max": input.d_max,
        "std": input.std,
        "eps": num(input.eps),
        "weights": {
            "alpha_format": num(input.weights.alpha_format),
            "alpha_correct": num(input.weights.alpha_correct),
            "beta_format": num(input.weights.beta_format),
            "beta_main_correct": num(input.weights.beta_main_correct),
            "beta_expert": num(input.weights.beta_expert),
        },
        "groups": groups,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn example_file_runs() {
        let text = include_str!("../../docs/examples/groups.json");
        let out = run(text).unwrap();
        let g0 = &out["groups"][0];
        assert_eq!(g0["rollouts"].as_array().unwrap().len(), 4);
        for r in g0["rollouts"].as_array().unwrap() {
            assert_eq!(r["slots"].as_array().unwrap().len(), 4);
        }
        // Rollout 0 is correct and formatted: reward 1.0 and a positive advantage.
        assert_eq!(g0["rollouts"][0]["reward"], 1.0);
        assert!(g0["rollouts"][0]["advantage"].as_f64().unwrap() > 0.0);
        // Rollout with no call: all padding.
        assert_eq!(g0["rollouts"][3]["slots"][0]["slot"], "padding");
        // Hand-computed: R_M = [1.0, 0.1, 0.0 (format error), 1.0], mean 0.525.
        let rewards: Vec<f64> = g0["rollouts"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["reward"].as_f64().unwrap())
            .collect();
        assert_eq!(rewards, vec![1.0, 0.1, 0.0, 1.0]);
        assert_eq!(g0["main_stats"]["mean"], 0.525);
        // Rollout 1 made 6 calls: 4 kept, 2 dropped; rollout 2 made 1: duplicated 4 times.
        assert_eq!(
            g0["rollouts"][1]["dropped_calls"].as_array().unwrap().len(),
            2
        );
        assert!(
            g0["rollouts"][2]["slots"]
                .as_array()
                .unwrap()
                .iter()
                .all(|s| s["slot"]["call"] == 0)
        );
        // 12 non-padding sub slots (4 + 4 + 4 + 0).
        assert_eq!(g0["sub_stats"]["count"], 12);
        // Group 1: all rewards equal → advantages 0, never NaN.
        let g1 = &out["groups"][1];
        assert_eq!(g1["rollouts"][0]["advantage"], 0.0);
        assert_eq!(g1["rollouts"][1]["slots"][3]["advantage"], 0.0);
    }

    #[test]
    fn bad_input_is_an_error() {
        assert!(matches!(run("{"), Err(InspectError::Json(_))));
        assert!(matches!(
            run(r#"{"groups": [], "d_max": 0}"#),
            Err(InspectError::DMax)
        ));
        assert!(run(r#"{"groups": [], "colour": 1}"#).is_err());
    }
}
