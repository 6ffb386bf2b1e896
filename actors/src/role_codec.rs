//! How one role's policy reads and writes the protocol: its tokenizer, and, when its Hugging
//! Face folder has a chat template, the template's frame around each message.
//!
//! A preset role speaks the world's word-level tokenizer (every segment encoded on its own,
//! which that tokenizer guarantees equals encoding the whole context), and its turns end at the
//! protocol's close tags. An `hf` role speaks its folder's tokenizer. With a chat template the
//! episode is a chat: the prompt is the first user message, every observation (a search's
//! results, a sub-agent's return) the next user message, every turn an assistant message that
//! ends with the template's end-of-turn token — so sampling stops there, and the scripted
//! experts' demonstrations end the same way. Without one, the folder's tokenizer must hold the
//! close tags as single tokens (a folder made by `mgrpo hf init` does).
//!
//! The frame is found once by rendering a sentinel conversation through the template, so an
//! episode's tokens are exactly what `apply_chat_template` gives for the conversation so far,
//! with each sampled turn kept as sampled (never re-tokenized).
use std::path::Path;

use mgrpo_env::TextCodec;
use mgrpo_env::protocol::tags;
use mgrpo_models::hf::{ChatMessage, HfTokenizer};
use mgrpo_models::{ModelError, PolicyConfig, Sampled};

/// Where the next context message lands.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Place {
    /// Nothing before it: the prompt.
    #[default]
    Start,
    /// After a sampled turn; `closed` when the turn ended with the end-of-turn token.
    AfterTurn {
        /// The turn ended with the end-of-turn token.
        closed: bool,
    },
    /// Right after other context (no turn between).
    AfterContext,
}

/// The chat template's text around messages, found with sentinel contents.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChatFrame {
    /// Before the first user message's content (system prompt, BOS, user header).
    pub before_prompt: String,
    /// After the first user message, up to where the assistant writes.
    pub after_prompt: String,
    /// After an assistant turn's content, up to the next user message's content.
    pub after_turn: String,
    /// After a later user message, up to where the assistant writes.
    pub after_observation: String,
}

const SENTINELS: [&str; 3] = [
    "\u{E000}prompt\u{E000}",
    "\u{E001}turn\u{E001}",
    "\u{E002}obs\u{E002}",
];

impl ChatFrame {
    /// Renders a sentinel conversation (user, assistant, user + generation prompt) and cuts it
    /// at the sentinels; checks that the frame reproduces the template on a second
    /// conversation, so that a template which rewrites contents is refused rather than
    /// mis-framed. With `tools` (a chat template's tool definitions) the template renders them
    /// where it puts them — Qwen's, a `# Tools` system message before the first user message,
    /// so they land in `before_prompt`.
    pub fn of(tokenizer: &HfTokenizer, tools: Option<&serde_json::Value>) -> Result<Self, String> {
        let convo = |a: &str, b: &str, c: &str| {
            vec![
                ChatMessage::new("user", a),
                ChatMessage::new("assistant", b),
                ChatMessage::new("user", c),
            ]
        };
        let [p, t, o] = SENTINELS;
        let full = tokenizer
            .render_chat_with_tools(&convo(p, t, o), true, tools)
            .map_err(|e| e.to_string())?;
        let cut = |s: &str| {
            full.find(s).ok_or_else(|| {
                format!(
                    "the chat template does not render message contents verbatim ({s:?} missing)"
                )
            })
        };
        let (ip, it, io) = (cut(p)?, cut(t)?, cut(o)?);
        if !(ip < it && it < io) {
            return Err("the chat template reorders messages".into());
        }
        let frame = Self {
            before_prompt: full[..ip].to_string(),
            after_prompt: full[ip + p.len()..it].to_string(),
            after_turn: full[it + t.len()..io].to_string(),
            after_observation: full[io + o.len()..].to_string(),
        };
        let check = convo(
            "<question> a b </question>",
            "<answer> c </answer>",
            "<result> d </result>",
        );
        let rendered = tokenizer
            .render_chat_with_tools(&check, true, tools)
            .map_err(|e| e.to_string())?;
        let framed = format!(
            "{}{}{}{}{}{}{}",
            frame.before_prompt,
            check[0].content,
            frame.after_prompt,
            check[1].content,
            frame.after_turn,
            check[2].content,
            frame.after_observation
        );
        if rendered != framed {
            return Err("the chat template's frame depends on message contents".into());
        }
        Ok(frame)
    }
}

/// The tokenizer behind a role's codec.
#[derive(Debug, Clone)]
enum Text {
    World(TextCodec),
    Hf(HfTokenizer),
}

/// A role's codec: context text to tokens, sampled tokens to the text the world parses, the
/// ids sampling stops at.
#[derive(Debug, Clone)]
pub struct RoleCodec {
    text: Text,
    chat: Option<ChatFrame>,
    /// The chat template's end-of-turn token (its text and id).
    end_of_turn: Option<(String, u32)>,
    stop_ids: Vec<u32>,
    pad_id: u32,
    vocab_size: usize,
    tokenizer_json: String,
}

impl RoleCodec {
    /// The world's word-level tokenizer (a preset role).
    pub fn world(codec: TextCodec) -> Result<Self, String> {
        Ok(Self {
            stop_ids: codec.stop_ids().to_vec(),
            pad_id: codec.pad_id(),
            vocab_size: codec.vocab_size(),
            tokenizer_json: codec.to_json().map_err(|e| e.to_string())?,
            text: Text::World(codec),
            chat: None,
            end_of_turn: None,
        })
    }

    /// The tokenizer (and chat template, if any) of the HF folder `dir` whose model config is
    /// `config`.
    pub fn hf(dir: &Path, config: &PolicyConfig) -> Result<Self, String> {
        Self::hf_with_tools(dir, config, None)
    }

    /// [`Self::hf`] for a role that may call tools: with a chat template, `tools` (see
    /// [`mgrpo_env::tool_call::chat_template_tools`]) are rendered into every prompt as the
    /// template renders them (Qwen's `# Tools` block).
    pub fn hf_with_tools(
        dir: &Path,
        config: &PolicyConfig,
        tools: Option<&serde_json::Value>,
    ) -> Result<Self, String> {
        let what = format!("HF folder {}", dir.display());
        let tokenizer = HfTokenizer::from_folder(dir).map_err(|e| format!("{what}: {e}"))?;
        let json_path = dir.join("tokenizer.json");
        let tokenizer_json = std::fs::read_to_string(&json_path)
            .map_err(|e| format!("{}: {e}", json_path.display()))?;
        let vocab_size = tokenizer.vocab_size();
        if vocab_size > config.vocab_size {
            return Err(format!(
                "{what}: its tokenizer has {vocab_size} tokens but the model's vocab_size is {}",
                config.vocab_size
            ));
        }
        let config_eos = config
            .hf
            .as_ref()
            .map(|a| a.eos_token_ids.clone())
            .unwrap_or_default();
        let (chat, end_of_turn, mut stop_ids) = if tokenizer.has_chat_template() {
            let frame = ChatFrame::of(&tokenizer, tools).map_err(|e| format!("{what}: {e}"))?;
            let eot = tokenizer.eos_token().to_string();
            let id = tokenizer
                .token_id(&eot)
                .or_else(|| config_eos.first().copied())
                .ok_or_else(|| {
                    format!(
                        "{what}: no end-of-turn token (tokenizer_config.json's eos_token or config.json's eos_token_id)"
                    )
                })?;
            let text = if eot.is_empty() {
                tokenizer.decode(&[id]).map_err(|e| e.to_string())?
            } else {
                eot
            };
            (Some(frame), Some((text, id)), vec![id])
        } else {
            let ids = tags::STOPS
                .iter()
                .map(|t| {
                    tokenizer.token_id(t).ok_or_else(|| {
                        format!(
                            "{what}: without a chat template the tokenizer must hold the protocol's close tags as tokens, and {t:?} is not one (add a chat template, or start from `mgrpo hf init`)"
                        )
                    })
                })
                .collect::<Result<Vec<u32>, String>>()?;
            (None, None, ids)
        };
        for id in config_eos {
            if !stop_ids.contains(&id) {
                stop_ids.push(id);
            }
        }
        let pad_id = [tokenizer.pad_token(), mgrpo_env::tokenizer::PAD]
            .iter()
            .find_map(|t| tokenizer.token_id(t))
            .or(end_of_turn.as_ref().map(|(_, id)| *id))
            .unwrap_or(0);
        Ok(Self {
            text: Text::Hf(tokenizer),
            chat,
            end_of_turn,
            stop_ids,
            pad_id,
            vocab_size,
            tokenizer_json,
        })
    }

    fn encode(&self, text: &str) -> Result<Vec<u32>, ModelError> {
        match &self.text {
            Text::World(c) => Ok(c.encode(text)),
            Text::Hf(t) => t.encode(text),
        }
    }

    /// The tokens of context `segments` (consecutive protocol segments, one message) placed at
    /// `place`.
    pub fn context(&self, segments: &[&str], place: Place) -> Result<Vec<u32>, ModelError> {
        if segments.is_empty() {
            return Ok(Vec::new());
        }
        let joined = segments.join(" ");
        match (&self.text, &self.chat) {
            // Segment by segment, as the word-level tokenizer guarantees is the same.
            (Text::World(c), _) => Ok(segments.iter().flat_map(|s| c.encode(s)).collect()),
            (Text::Hf(_), None) => match place {
                Place::Start => self.encode(&joined),
                _ => self.encode(&format!(" {joined}")),
            },
            (Text::Hf(_), Some(frame)) => {
                let text = match place {
                    Place::Start => {
                        format!("{}{joined}{}", frame.before_prompt, frame.after_prompt)
                    }
                    Place::AfterTurn { closed } => {
                        let head = match (&self.end_of_turn, closed) {
                            (Some((eot, _)), true) => frame
                                .after_turn
                                .strip_prefix(eot.as_str())
                                .unwrap_or(&frame.after_turn),
                            _ => &frame.after_turn,
                        };
                        format!("{head}{joined}{}", frame.after_observation)
                    }
                    Place::AfterContext => format!(" {joined}"),
                };
                self.encode(&text)
            }
        }
    }

    /// A scripted turn (an expert's, a demonstration's) as if the policy had sampled it: its
    /// tokens with the end-of-turn token where a chat template closes turns with one, log-prob
    /// 0 (never trained on as a policy sample).
    pub fn scripted_turn(&self, text: &str) -> Result<Sampled, ModelError> {
        let mut tokens = self.encode(text)?;
        if let Some((_, id)) = self.end_of_turn {
            tokens.push(id);
        }
        Ok(Sampled {
            logprobs: vec![0.0; tokens.len()],
            tokens,
            stopped: true,
        })
    }

    /// Whether a sampled turn ended with the end-of-turn token.
    pub fn closes_turn(&self, last: Option<u32>) -> bool {
        matches!((&self.end_of_turn, last), (Some((_, eot)), Some(l)) if *eot == l)
    }

    /// The text of a sampled turn as the world parses it: the world's tokenizer's words, or an
    /// HF tokenizer's text without special tokens, protocol tags set apart by spaces and
    /// whitespace runs collapsed (so `<answer>Paris</answer>` parses like
    /// `<answer> Paris </answer>`).
    pub fn turn_text(&self, tokens: &[u32]) -> String {
        match &self.text {
            Text::World(c) => c.decode(tokens),
            Text::Hf(t) => {
                // A decoding error leaves an empty turn, which the world scores as a format
                // error (never a panic).
                let mut text = t.decode_text(tokens).unwrap_or_default();
                for (open, close) in tags::ALL {
                    text = text.replace(open, &format!(" {open} "));
                    text = text.replace(close, &format!(" {close} "));
                }
                text.split_whitespace().collect::<Vec<_>>().join(" ")
            }
        }
    }

    /// Ids that end a turn.
    pub fn stop_ids(&self) -> &[u32] {
        &self.stop_ids
    }

    /// The padding id of batches.
    pub fn pad_id(&self) -> u32 {
        self.pad_id
    }

    /// Number of ids the tokenizer has.
    pub fn vocab_size(&self) -> usize {
        self.vocab_size
    }

    /// The tokenizer as `tokenizer.json` text (saved with every checkpoint of the role).
    pub fn tokenizer_json(&self) -> &str {
        &self.tokenizer_json
    }

    /// Whether turns are chat messages (the folder has a chat template).
    pub fn is_chat(&self) -> bool {
        self.chat.is_some()
    }

    /// The chat template's frame around messages (none without a template): what a prompt
    /// starts with — the system prompt, and with tools their definitions — and so on.
    pub fn chat_frame(&self) -> Option<&ChatFrame> {
        self.chat.as_ref()
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use std::path::{Path, PathBuf};

    use super::*;
    use crate::rollout::trace::Trace;

    /// The byte-level BPE tokenizer with a ChatML template that the models crate's parity
    /// fixtures were made with (transformers 5.24).
    fn fixture() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../models/tests/fixtures/hf/tokenizer")
    }

    /// The fixture as a role codec, with its tokenizer.
    pub(crate) fn chat_codec() -> (RoleCodec, HfTokenizer) {
        let tokenizer = HfTokenizer::from_folder(&fixture()).unwrap();
        let config = PolicyConfig::preset("tiny", tokenizer.vocab_size()).unwrap();
        (RoleCodec::hf(&fixture(), &config).unwrap(), tokenizer)
    }

    /// An episode's tokens are exactly the template's rendering of the conversation so far,
    /// tokenized whole: the prompt, each turn closed by `<|im_end|>`, each observation a user
    /// message, the generation prompt last.
    #[test]
    fn a_chat_trace_is_the_template_rendering_of_the_conversation() {
        let (codec, tokenizer) = chat_codec();
        assert!(codec.is_chat());
        let eot = tokenizer.token_id("<|im_end|>").unwrap();
        assert_eq!(codec.stop_ids(), [eot]);
        assert_eq!(codec.pad_id(), tokenizer.token_id("<|endoftext|>").unwrap());
        let prompt = "<task> who  founded   Émile's café ? </task>";
        let said = "<search> café founder </search>";
        let seen = [
            "<results> 1 | Café Lune : founded by Ada . </results>",
            "<doc> x </doc>",
        ];
        let mut trace = Trace::default();
        trace.sync(&[mgrpo_env::Segment {
            text: prompt.into(),
            generated: false,
        }]);
        trace.flush(&codec).unwrap();
        let convo = |n: usize| {
            let mut m = vec![ChatMessage::new("user", prompt)];
            if n > 0 {
                m.push(ChatMessage::new("assistant", said));
                m.push(ChatMessage::new("user", seen.join(" ")));
            }
            m
        };
        let whole = |n: usize| {
            tokenizer
                .encode(&tokenizer.render_chat(&convo(n), true).unwrap())
                .unwrap()
        };
        assert_eq!(trace.tokens(), whole(0));
        trace
            .sampled(&codec, &codec.scripted_turn(said).unwrap())
            .unwrap();
        let segments: Vec<mgrpo_env::Segment> = std::iter::once((prompt, false))
            .chain([(said, true), (seen[0], false), (seen[1], false)])
            .map(|(t, g)| mgrpo_env::Segment {
                text: t.into(),
                generated: g,
            })
            .collect();
        trace.sync(&segments);
        trace.flush(&codec).unwrap();
        assert_eq!(trace.tokens(), whole(1));
        // A demonstration of the same transcript is the same tokens, its turn trained on.
        let demo = Trace::demonstration(&codec, &segments).unwrap();
        assert_eq!(demo.tokens, whole(1));
        let trained: Vec<u32> = demo
            .tokens
            .iter()
            .zip(&demo.generated)
            .filter(|(_, g)| **g)
            .map(|(t, _)| *t)
            .collect();
        assert_eq!(trained, codec.scripted_turn(said).unwrap().tokens);
        assert_eq!(trained.last(), Some(&eot));
    }

    /// A turn the model writes without spaces around the tags parses like the canonical one;
    /// special tokens never reach the world.
    #[test]
    fn sampled_chat_text_is_canonical_protocol_text() {
        let (codec, tokenizer) = chat_codec();
        let mut ids = tokenizer
            .encode("<answer>Ada\n\n Lovelace</answer>")
            .unwrap();
        ids.push(tokenizer.token_id("<|im_end|>").unwrap());
        assert_eq!(codec.turn_text(&ids), "<answer> Ada Lovelace </answer>");
        assert!(codec.closes_turn(ids.last().copied()));
    }

    /// An HF role over the world's tokenizer (`mgrpo hf init`) reads the numbers it writes as
    /// the world does: `19 ##47` is `1947`, from a folder with WordPiece's decoder and from one
    /// made before `hf init` wrote it (its `tokenizer.json` the run's, without a decoder).
    #[test]
    fn an_hf_role_over_the_world_tokenizer_joins_number_pieces() {
        let world = mgrpo_env::World::generate(&mgrpo_env::WorldConfig::default()).unwrap();
        let text = TextCodec::build(&world).unwrap();
        let said = "<answer> 1947 </answer>";
        let ids = text.encode(said);
        assert!(ids.len() > 3, "the number is pieces: {ids:?}");
        for json in [text.to_hf_json().unwrap(), text.to_json().unwrap()] {
            let dir = tempfile::tempdir().unwrap();
            std::fs::write(dir.path().join("tokenizer.json"), &json).unwrap();
            let config = PolicyConfig::preset("tiny", text.vocab_size()).unwrap();
            let codec = RoleCodec::hf(dir.path(), &config).unwrap();
            assert_eq!(codec.turn_text(&ids), said);
            assert_eq!(codec.turn_text(&ids), text.decode(&ids));
        }
    }

    /// A folder without a chat template whose tokenizer lacks the protocol's close tags as
    /// tokens is refused, naming the tag and the way out.
    #[test]
    fn a_folder_without_template_or_tag_tokens_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::copy(
            fixture().join("tokenizer.json"),
            dir.path().join("tokenizer.json"),
        )
        .unwrap();
        let config = PolicyConfig::preset("tiny", 4096).unwrap();
        let err = RoleCodec::hf(dir.path(), &config).unwrap_err();
        assert!(
            err.contains("\"</delegate>\"") && err.contains("chat template"),
            "{err}"
        );
        let small = PolicyConfig::preset("tiny", 10).unwrap();
        std::fs::copy(
            fixture().join("tokenizer_config.json"),
            dir.path().join("tokenizer_config.json"),
        )
        .unwrap();
        let err = RoleCodec::hf(dir.path(), &small).unwrap_err();
        assert!(err.contains("vocab_size is 10"), "{err}");
    }
}
