//! The tokenizer: a word-level Hugging Face tokenizer over the task's vocabulary (the world's, or
//! every word of a dataset's text) and the protocol's tags, saved as a standard `tokenizer.json`.
//!
//! Every string the world, the tools and the experts produce is canonical (words separated by
//! single spaces), so it round-trips exactly; and because segments are joined by single spaces,
//! `encode(a + " " + b) == encode(a) ++ encode(b)` — a driver may tokenize segment by segment.
use std::collections::BTreeSet;

use tokenizers::decoders::wordpiece::WordPiece as WordPieceDecoder;
use tokenizers::models::wordlevel::WordLevel;
use tokenizers::models::wordpiece::WordPiece;
use tokenizers::pre_tokenizers::whitespace::WhitespaceSplit;
use tokenizers::{ModelWrapper, Tokenizer};

use crate::earlier;
use crate::episode::NO_RESULT;
use crate::generate::World;
use crate::protocol::tags;
use crate::questions::{CHAINS, COMPARES, Split};
use crate::world::Relation;

/// Padding token (id 0).
pub const PAD: &str = "[PAD]";
/// Unknown word (id 1).
pub const UNK: &str = "[UNK]";

/// The prefix of a number's digits after its first (`split_digits`).
const DIGIT_PREFIX: &str = "##";

/// Whether `w` is a number: digits only.
fn is_number(w: &str) -> bool {
    !w.is_empty() && w.bytes().all(|b| b.is_ascii_digit())
}

/// Every string of 1 to `n` digits, shortest first (`0`…`9`, then `00`…`99`, …).
fn digit_pieces(n: usize) -> Vec<String> {
    (1..=n as u32)
        .flat_map(|len| (0..10u32.pow(len)).map(move |v| format!("{v:0len$}", len = len as usize)))
        .collect()
}

/// Why a tokenizer could not be built or loaded.
#[derive(Debug, thiserror::Error)]
#[error("tokenizer: {0}")]
pub struct TokenizerError(String);

/// Text ↔ token ids, with the ids the drivers need.
#[derive(Clone)]
pub struct TextCodec {
    tokenizer: Tokenizer,
    pad_id: u32,
    vocab_size: usize,
    stop_ids: Vec<u32>,
}

impl std::fmt::Debug for TextCodec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TextCodec")
            .field("vocab_size", &self.vocab_size)
            .finish()
    }
}

/// Every word the world can produce, sorted (so ids do not depend on iteration order).
fn vocabulary(world: &World) -> BTreeSet<String> {
    let mut words = BTreeSet::new();
    let mut add = |text: &str| {
        for w in text.split_whitespace() {
            words.insert(w.to_string());
        }
    };
    for doc in world.tools.docs() {
        add(&doc.title);
        for s in &doc.sentences {
            add(s);
        }
    }
    for e in &world.knowledge.entities {
        add(&e.name);
    }
    for split in Split::ALL {
        for q in world.questions(split) {
            add(&q.text);
            add(&q.answer);
            for s in &q.subs {
                add(&s.text);
            }
        }
    }
    for t in CHAINS {
        add(t.prefix);
        add(t.suffix);
    }
    for t in COMPARES {
        add(t.prefix);
    }
    for r in Relation::ALL {
        add(r.phrase());
    }
    add_protocol_words(&mut add);
    words
}

/// The tags, and the words tools and episodes add: separators, empty results, unknown
/// results, corpus templates.
fn add_protocol_words(add: &mut impl FnMut(&str)) {
    for (open, close) in tags::ALL {
        add(open);
        add(close);
    }
    add(&format!(
        "{NO_RESULT} no results document | : . , ? or The of is the has as"
    ));
}

/// The words a task with tools adds: the call and output tags, what error observations say,
/// and the tools' names (a preset role can only name a tool its vocabulary has).
fn tool_vocabulary(tool_names: &[String]) -> BTreeSet<String> {
    let mut words: BTreeSet<String> = tags::TOOLS
        .iter()
        .flat_map(|(open, close)| [open.to_string(), close.to_string()])
        .collect();
    let said = "error : no output unknown tool ( tools ) bad arguments for timed out after ms \
                server failed";
    words.extend(said.split_whitespace().map(str::to_string));
    words.extend(
        tool_names
            .iter()
            .flat_map(|n| n.split_whitespace().map(str::to_string)),
    );
    words
}

/// The words of the built-in `earlier` tool: its call and output tags, its name, and the
/// words of its sub-task and answers.
fn earlier_vocabulary() -> BTreeSet<String> {
    let mut words = tool_vocabulary(&[earlier::NAME.to_string()]);
    words.extend(earlier::WORDS.split_whitespace().map(str::to_string));
    words
}

impl TextCodec {
    /// Builds the tokenizer of a world.
    pub fn build(world: &World) -> Result<Self, TokenizerError> {
        Self::build_with_tools(world, None)
    }

    /// Builds the tokenizer of a world whose sub-agents also call tools (`Some(names)`): the
    /// vocabulary gains the tool-call tags, the words of error observations and the tools'
    /// names; `</call>` and `</tool_call>` become stop markers. `None` is [`Self::build`],
    /// word for word and id for id.
    pub fn build_with_tools(
        world: &World,
        tool_names: Option<&[String]>,
    ) -> Result<Self, TokenizerError> {
        let mut words = vocabulary(world);
        if let Some(names) = tool_names {
            words.extend(tool_vocabulary(names));
        }
        if world.tools.has_builtin() {
            words.extend(earlier_vocabulary());
        }
        Self::from_vocabulary(words, world.config.number_pieces())
    }

    /// Builds a tokenizer whose words are every word of `texts` and of the protocol (a
    /// dataset task's), plus the tool words as [`Self::build_with_tools`] adds them (those of
    /// the built-in `earlier` tool with `earlier_tool`); `number_pieces` as
    /// [`WorldConfig::number_pieces`](crate::config::WorldConfig::number_pieces).
    pub fn from_texts<'a>(
        texts: impl IntoIterator<Item = &'a str>,
        tool_names: Option<&[String]>,
        earlier_tool: bool,
        number_pieces: Option<usize>,
    ) -> Result<Self, TokenizerError> {
        let mut words = BTreeSet::new();
        let mut add = |text: &str| {
            for w in text.split_whitespace() {
                words.insert(w.to_string());
            }
        };
        for t in texts {
            add(t);
        }
        add_protocol_words(&mut add);
        if let Some(names) = tool_names {
            words.extend(tool_vocabulary(names));
        }
        if earlier_tool {
            words.extend(earlier_vocabulary());
        }
        Self::from_vocabulary(words, number_pieces)
    }

    /// A tokenizer of `words`; with `number_pieces = Some(n)`, numbers are not words of their
    /// own but pieces of at most `n` digits: a number's first piece, then each next one as a
    /// `##` continuation, longest first (a WordPiece model whose only pieces are digits, so
    /// every other word is still one token; `n = 1` gives one token per digit).
    fn from_vocabulary(
        words: BTreeSet<String>,
        number_pieces: Option<usize>,
    ) -> Result<Self, TokenizerError> {
        let mut vocab: Vec<String> = vec![PAD.into(), UNK.into()];
        if let Some(n) = number_pieces {
            vocab.extend(words.into_iter().filter(|w| !is_number(w)));
            let pieces = digit_pieces(n);
            vocab.extend(pieces.iter().cloned());
            vocab.extend(pieces.iter().map(|p| format!("{DIGIT_PREFIX}{p}")));
        } else {
            vocab.extend(words);
        }
        let map = || {
            vocab
                .iter()
                .enumerate()
                .map(|(i, w)| (w.clone(), i as u32))
                .collect()
        };
        let mut tokenizer = if number_pieces.is_some() {
            Tokenizer::new(
                WordPiece::builder()
                    .vocab(map())
                    .unk_token(UNK.into())
                    .continuing_subword_prefix(DIGIT_PREFIX.into())
                    // A known word of any length stays one token, as in the word-level model.
                    .max_input_chars_per_word(usize::MAX)
                    .build()
                    .map_err(|e| TokenizerError(e.to_string()))?,
            )
        } else {
            Tokenizer::new(
                WordLevel::builder()
                    .vocab(map())
                    .unk_token(UNK.into())
                    .build()
                    .map_err(|e| TokenizerError(e.to_string()))?,
            )
        };
        tokenizer.with_pre_tokenizer(Some(WhitespaceSplit));
        Self::from_tokenizer(tokenizer)
    }

    fn from_tokenizer(tokenizer: Tokenizer) -> Result<Self, TokenizerError> {
        let id = |w: &str| {
            tokenizer
                .token_to_id(w)
                .ok_or_else(|| TokenizerError(format!("vocabulary lacks {w:?}")))
        };
        let pad_id = id(PAD)?;
        let mut stop_ids: Vec<u32> = tags::STOPS
            .iter()
            .map(|t| id(t))
            .collect::<Result<_, _>>()?;
        // A vocabulary with tool calls stops at their close tags too.
        stop_ids.extend(tags::TOOL_STOPS.iter().filter_map(|t| id(t).ok()));
        Ok(Self {
            vocab_size: tokenizer.get_vocab_size(true),
            tokenizer,
            pad_id,
            stop_ids,
        })
    }

    /// Loads a `tokenizer.json` (as saved by [`TextCodec::to_json`]).
    pub fn from_json(json: &str) -> Result<Self, TokenizerError> {
        let tokenizer: Tokenizer = json
            .parse()
            .map_err(|e: tokenizers::Error| TokenizerError(e.to_string()))?;
        Self::from_tokenizer(tokenizer)
    }

    /// The standard `tokenizer.json` text.
    pub fn to_json(&self) -> Result<String, TokenizerError> {
        self.tokenizer
            .to_string(true)
            .map_err(|e| TokenizerError(e.to_string()))
    }

    /// The `tokenizer.json` of a Hugging Face folder made from this tokenizer (`mgrpo hf init`):
    /// [`Self::to_json`] plus, when numbers are pieces, WordPiece's decoder, so a reader of the
    /// folder (transformers, an HF role) decodes `19 ##47` as `1947`, as [`Self::decode`] does.
    /// The run's own `tokenizer.json` stays [`Self::to_json`]'s: checkpoints compare it byte
    /// for byte.
    pub fn to_hf_json(&self) -> Result<String, TokenizerError> {
        let mut tokenizer = self.tokenizer.clone();
        if matches!(tokenizer.get_model(), ModelWrapper::WordPiece(_)) {
            tokenizer.with_decoder(Some(WordPieceDecoder::new(DIGIT_PREFIX.into(), false)));
        }
        tokenizer
            .to_string(true)
            .map_err(|e| TokenizerError(e.to_string()))
    }

    /// Token ids of `text` (unknown words map to `[UNK]`).
    pub fn encode(&self, text: &str) -> Vec<u32> {
        self.tokenizer
            .encode(text, false)
            .map(|e| e.get_ids().to_vec())
            .unwrap_or_default()
    }

    /// The text of `ids` (words joined by single spaces; padding and unknown ids included, so
    /// a malformed generation stays visible and fails to parse rather than vanishing).
    pub fn decode(&self, ids: &[u32]) -> String {
        let mut text = String::new();
        for &i in ids {
            let token = self
                .tokenizer
                .id_to_token(i)
                .unwrap_or_else(|| UNK.to_string());
            match token.strip_prefix(DIGIT_PREFIX) {
                // A number's next digits continue its word (a text's own `##word` does not).
                Some(digit) if is_number(digit) && !text.is_empty() => text.push_str(digit),
                _ => {
                    if !text.is_empty() {
                        text.push(' ');
                    }
                    text.push_str(&token);
                }
            }
        }
        text
    }

    /// Vocabulary size.
    pub fn vocab_size(&self) -> usize {
        self.vocab_size
    }

    /// The padding id.
    pub fn pad_id(&self) -> u32 {
        self.pad_id
    }

    /// Ids of the close tags that end an agent's turn.
    pub fn stop_ids(&self) -> &[u32] {
        &self.stop_ids
    }
}
