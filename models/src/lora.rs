//! LoRA training of a policy: the projection matrices are frozen and each gets a trainable
//! low-rank update `W + (α/r)·A·B` (burn's `Module::apply_lora`), so a large model trains in the
//! memory of its adapters' gradients and moments.
//!
//! Which matrices: every attention and MLP projection of both architectures (`*_proj`, `qkv`,
//! `attn_out`, `mlp_in`, `mlp_out`); embeddings, heads and norms stay frozen. `A` is drawn from
//! burn's backend RNG, which is process-global: it is seeded from the role's seed under one
//! lock, so two learners in a process still get their own reproducible draws. Inference and
//! exports see the merged weights (`materialize`); the learner's checkpoint also keeps the
//! unmerged base and factors so that a resumed run continues exactly.
use std::sync::Mutex;

use burn::module::{Lora, Module, ParamGroup};
use burn::tensor::Device;
use serde::{Deserialize, Serialize};

use crate::error::{ModelError, Result};
use crate::transformer::PolicyModel;

/// Rank, scale and seed of the adapters.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LoraSettings {
    /// Rank `r` of `A` (`[d_in, r]`) and `B` (`[r, d_out]`).
    pub rank: usize,
    /// `α`: the update is scaled by `α / r`.
    pub alpha: f64,
    /// Seed of `A`'s draw (`B` starts at 0, so the model is unchanged when adapters attach).
    pub seed: u64,
}

/// The projections that get adapters (parameter paths end with one of these).
const ADAPTED: &str = r"(_proj|qkv|attn_out|mlp_in|mlp_out)\.weight$";

/// Serialises seeding + drawing on the process-global backend RNG.
static BACKEND_RNG: Mutex<()> = Mutex::new(());

impl LoraSettings {
    /// Checks rank and scale.
    pub fn validate(&self) -> Result<()> {
        if self.rank == 0 || !(self.alpha.is_finite() && self.alpha > 0.0) {
            return Err(ModelError::InvalidConfig(format!(
                "LoRA rank {} and alpha {} must be positive",
                self.rank, self.alpha
            )));
        }
        Ok(())
    }

    /// Attaches adapters to `model`'s projections (all other parameters are frozen).
    pub(crate) fn apply(&self, model: PolicyModel, device: &Device) -> Result<PolicyModel> {
        self.validate()?;
        let group = ParamGroup::from_regex(ADAPTED)
            .map_err(|e| ModelError::InvalidConfig(format!("LoRA parameter group: {e:?}")))?;
        let _guard = BACKEND_RNG
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        device.seed(self.seed);
        Ok(model.apply_lora(Lora::new(self.rank, self.alpha).set_param_group(group)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::learner::{Learner, LearnerConfig};
    use crate::policy::Policy;
    use crate::test_support::{batch_from_rows, test_device, tiny_config};

    fn settings(seed: u64) -> LearnerConfig {
        LearnerConfig {
            lr: 1e-2,
            lora: Some(LoraSettings {
                rank: 4,
                alpha: 8.0,
                seed,
            }),
            ..LearnerConfig::default()
        }
    }

    #[test]
    fn adapters_start_neutral_train_and_resume_exactly() {
        let base = Policy::new(tiny_config(), &test_device()).unwrap();
        let rows = vec![vec![1, 5, 9, 3, 2, 17, 30], vec![7, 7, 4, 19, 2]];
        let score = |p: &Policy| p.score(&rows).unwrap();
        let mut a = Learner::from_policy(base.clone(), settings(5)).unwrap();
        assert_eq!(
            score(&a.policy()),
            score(&base),
            "B = 0: attaching changes nothing"
        );
        let batch = batch_from_rows(&rows, &[1, 1], &[1.0, 1.0]);
        let first = a.sft_step(&batch).unwrap();
        for _ in 0..4 {
            a.sft_step(&batch).unwrap();
        }
        assert!(
            a.sft_loss(&batch).unwrap() < first,
            "LoRA SFT did not learn"
        );
        // Resume from the unmerged state + optimiser state: the next updates are identical.
        let state = a.lora_state().unwrap().expect("a LoRA learner has a state");
        let optimizer = a.optimizer_state().unwrap();
        let mut b =
            Learner::from_lora_state(tiny_config(), &state, &test_device(), settings(5)).unwrap();
        b.load_optimizer_state(&optimizer).unwrap();
        assert_eq!(score(&a.policy()), score(&b.policy()));
        let other = batch_from_rows(&rows, &[3, 2], &[1.0, -0.5]);
        for _ in 0..2 {
            a.sft_step(&other).unwrap();
            b.sft_step(&other).unwrap();
        }
        assert_eq!(score(&a.policy()), score(&b.policy()), "resume diverged");
        // Seeded: the same seed draws the same adapters, another seed others.
        let mut c = Learner::from_policy(base.clone(), settings(5)).unwrap();
        let mut d = Learner::from_policy(base.clone(), settings(6)).unwrap();
        let mut e = Learner::from_policy(base, settings(5)).unwrap();
        for l in [&mut c, &mut d, &mut e] {
            l.sft_step(&batch).unwrap();
        }
        assert_eq!(score(&c.policy()), score(&e.policy()));
        assert_ne!(score(&c.policy()), score(&d.policy()));
    }

    #[test]
    fn bad_settings_are_refused() {
        let base = Policy::new(tiny_config(), &test_device()).unwrap();
        let mut config = settings(1);
        config.lora.as_mut().unwrap().rank = 0;
        assert!(matches!(
            Learner::from_policy(base, config),
            Err(ModelError::InvalidConfig(_))
        ));
    }
}
