//! The token trace of one episode as its policy sees it: context tokens (prompt and
//! observations, framed and tokenized by the role's [`RoleCodec`]) and sampled tokens with their
//! sampling-time log-probs, kept exactly as sampled.
//!
//! Context segments wait until the next turn (or the end) and are then tokenized as one
//! message, so that a chat template frames all that arrived between two turns once.
use mgrpo_algo::Trajectory;
use mgrpo_env::Segment;
use mgrpo_models::{ModelError, Sampled};

use crate::role_codec::{Place, RoleCodec};

/// A token trace under construction.
#[derive(Debug, Clone, Default)]
pub struct Trace {
    tokens: Vec<u32>,
    generated: Vec<bool>,
    logprobs: Vec<f32>,
    /// Context segments not tokenized yet.
    pending: Vec<String>,
    /// Where the waiting context lands.
    place: Place,
    /// Transcript segments already taken in.
    synced: usize,
}

impl Trace {
    /// Tokenizes the waiting context segments as one message.
    pub fn flush(&mut self, codec: &RoleCodec) -> Result<(), ModelError> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let texts: Vec<&str> = self.pending.iter().map(String::as_str).collect();
        let ids = codec.context(&texts, self.place)?;
        self.pending.clear();
        self.generated.extend(std::iter::repeat_n(false, ids.len()));
        self.logprobs.extend(std::iter::repeat_n(0.0, ids.len()));
        self.tokens.extend(ids);
        self.place = if self.tokens.is_empty() {
            Place::Start
        } else {
            Place::AfterContext
        };
        Ok(())
    }

    /// Appends a sampled turn (trained on), after any waiting context.
    pub fn sampled(&mut self, codec: &RoleCodec, s: &Sampled) -> Result<(), ModelError> {
        self.flush(codec)?;
        self.tokens.extend(&s.tokens);
        self.generated
            .extend(std::iter::repeat_n(true, s.tokens.len()));
        self.logprobs.extend(&s.logprobs);
        self.place = Place::AfterTurn {
            closed: codec.closes_turn(s.tokens.last().copied()),
        };
        Ok(())
    }

    /// Takes in the transcript segments added since the last sync: context segments wait for
    /// [`Self::flush`]; generated ones are already in as sampled tokens (the transcript holds
    /// their whitespace-normalised text).
    pub fn sync(&mut self, segments: &[Segment]) {
        for seg in &segments[self.synced.min(segments.len())..] {
            if !seg.generated {
                self.pending.push(seg.text.clone());
            }
        }
        self.synced = segments.len();
    }

    /// The tokens so far (after [`Self::flush`]: the next turn's prompt).
    pub fn tokens(&self) -> &[u32] {
        &self.tokens
    }

    /// The finished trajectory (waiting context tokenized in).
    pub fn into_trajectory(mut self, codec: &RoleCodec) -> Result<Trajectory, ModelError> {
        self.flush(codec)?;
        Ok(Trajectory {
            tokens: self.tokens,
            generated: self.generated,
            logprobs: self.logprobs,
        })
    }

    /// A scripted transcript (a warm-start demonstration) as its role's policy would see and
    /// write it: the same framing as a sampled episode, each generated segment tokenized as a
    /// turn ([`RoleCodec::scripted_turn`]).
    pub fn demonstration(
        codec: &RoleCodec,
        segments: &[Segment],
    ) -> Result<Trajectory, ModelError> {
        let mut t = Trace::default();
        for seg in segments {
            if seg.generated {
                t.sampled(codec, &codec.scripted_turn(&seg.text)?)?;
            } else {
                t.pending.push(seg.text.clone());
            }
        }
        t.synced = segments.len();
        t.into_trajectory(codec)
    }
}
