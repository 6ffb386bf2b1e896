//! The reward formulas, `R_M = α1·r_format + α2·r_correct` and
//! `R_S = β1·r_format + β2·r_main_correct + β3·r_expert` (each 0 on a format error), with
//! defaults α = (0.1, 0.9) and β = (0.1, 0.5, 0.4).
//!
//! They live in `mgrpo-algo` (the learners and the judge share one definition); this module
//! re-exports them next to the judge that fills their parts ([`crate::judge::main_parts`],
//! [`crate::judge::sub_parts`]), and tests the full reward table against the world's judge.
pub use mgrpo_algo::{MainParts, RewardWeights, SubParts};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_the_documented_weights() {
        let w = RewardWeights::default();
        let json = serde_json::to_value(w).unwrap();
        let back: RewardWeights = serde_json::from_value(json).unwrap();
        assert_eq!(back, w);
        let main = |format, correct| w.main_reward(&MainParts { format, correct });
        assert_eq!(main(false, false), 0.0);
        assert_eq!(main(false, true), 0.0, "a format error zeroes R_M");
        assert!((main(true, false) - 0.1).abs() < 1e-6);
        assert!((main(true, true) - 1.0).abs() < 1e-6);
        let sub =
            |format, expert, main_correct| w.sub_reward(&SubParts { format, expert }, main_correct);
        assert_eq!(sub(false, 1.0, true), 0.0, "a format error zeroes R_S");
        assert!((sub(true, 0.0, false) - 0.1).abs() < 1e-6);
        assert!((sub(true, 1.0, false) - 0.5).abs() < 1e-6);
        assert!((sub(true, 0.0, true) - 0.6).abs() < 1e-6);
        assert!((sub(true, 1.0, true) - 1.0).abs() < 1e-6);
        assert!((sub(true, 0.5, true) - 0.8).abs() < 1e-6);
    }
}
