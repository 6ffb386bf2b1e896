//! The health check a swap runs on every instance before anything changes: the candidate
//! policy scores a probe prompt (the first train question, as the main agent sees it) and
//! every log-prob must be finite. (That a model directory carries the run's tokenizer is
//! [`super::tokenizer_check`].)
use mgrpo_env::{MainEpisode, Split};
use mgrpo_models::Policy;

use crate::context::NodeContext;
use crate::role::LearnerRole;
use crate::role_codec::Place;

/// The probe prompt's tokens in `role`'s codec.
pub fn probe(ctx: &NodeContext, role: LearnerRole) -> Result<Vec<u32>, String> {
    let text = ctx
        .task
        .questions(Split::Train)
        .first()
        .map(|q| MainEpisode::new(&q.text, 1).context())
        .unwrap_or_default();
    ctx.codec(role)
        .map_err(|e| e.to_string())?
        .context(&[&text], Place::Start)
        .map_err(|e| e.to_string())
}

/// Scores `probe` with `policy` (cut to its context): an error unless every log-prob is finite.
pub fn check(policy: &Policy, probe: &[u32]) -> Result<(), String> {
    let n = probe.len().min(policy.config().max_seq_len);
    let scored = policy
        .score(&[probe[..n].to_vec()])
        .map_err(|e| format!("health check: the policy cannot score a probe prompt: {e}"))?;
    match scored.iter().flatten().find(|x| !x.is_finite()) {
        Some(x) => Err(format!(
            "health check: the policy gives a non-finite log-prob ({x}) on the probe prompt"
        )),
        None => Ok(()),
    }
}
