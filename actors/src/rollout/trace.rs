//! The token trace of one episode as its policy sees it: context tokens (prompt and
//! observations, tokenized segment by segment, which the tokenizer guarantees equals tokenizing
//! the whole context) and sampled tokens with their sampling-time log-probs.
use mgrpo_algo::Trajectory;
use mgrpo_env::{Segment, TextCodec};
use mgrpo_models::Sampled;

/// A token trace under construction.
#[derive(Debug, Clone, Default)]
pub struct Trace {
    tokens: Vec<u32>,
    generated: Vec<bool>,
    logprobs: Vec<f32>,
    /// Transcript segments already in the trace.
    synced: usize,
}

impl Trace {
    /// Appends context text (not trained on).
    fn context(&mut self, codec: &TextCodec, text: &str) {
        let ids = codec.encode(text);
        self.generated.extend(std::iter::repeat_n(false, ids.len()));
        self.logprobs.extend(std::iter::repeat_n(0.0, ids.len()));
        self.tokens.extend(ids);
    }

    /// Appends a sampled turn (trained on).
    pub fn sampled(&mut self, s: &Sampled) {
        self.tokens.extend(&s.tokens);
        self.generated
            .extend(std::iter::repeat_n(true, s.tokens.len()));
        self.logprobs.extend(&s.logprobs);
    }

    /// Brings the trace up to date with the episode's transcript: the context segments added
    /// since the last sync are tokenized in; generated segments are already in as sampled
    /// tokens (the transcript holds their whitespace-normalised text).
    pub fn sync(&mut self, codec: &TextCodec, segments: &[Segment]) {
        for seg in &segments[self.synced.min(segments.len())..] {
            if !seg.generated {
                self.context(codec, &seg.text);
            }
        }
        self.synced = segments.len();
    }

    /// The tokens so far (the next turn's prompt).
    pub fn tokens(&self) -> &[u32] {
        &self.tokens
    }

    /// The finished trajectory.
    pub fn into_trajectory(self) -> Trajectory {
        Trajectory {
            tokens: self.tokens,
            generated: self.generated,
            logprobs: self.logprobs,
        }
    }
}
