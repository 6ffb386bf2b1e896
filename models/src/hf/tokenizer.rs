//! A role's tokenizer and chat template, from its HF folder.
//!
//! The tokenizer is the folder's `tokenizer.json` through the `tokenizers` crate (built with the
//! fancy-regex engine: a look-ahead in a pre-tokenizer regex, as Qwen2's has, needs it; a regex
//! failure there silently ends a split, which the byte-level fixture test guards). The chat
//! template is `chat_template.jinja`, or `chat_template` in `tokenizer_config.json` (a string, or
//! a list of named templates, of which `default` or the first is used), rendered with minijinja
//! plus minijinja-contrib's Python-compatibility methods (`.strip()`, `.startswith()`, …) under
//! the settings transformers uses: `trim_blocks`, `lstrip_blocks`, `raise_exception`.
use std::fs;
use std::path::Path;

use minijinja::{Environment, ErrorKind, context};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokenizers::decoders::wordpiece::WordPiece as WordPieceDecoder;
use tokenizers::{ModelWrapper, Tokenizer};

use crate::error::{ModelError, Result};

/// One chat message (`role` is `system`, `user`, `assistant` or `tool`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChatMessage {
    /// Who speaks.
    pub role: String,
    /// What they say.
    pub content: String,
}

impl ChatMessage {
    /// A message of `role` with `content`.
    pub fn new(role: impl Into<String>, content: impl Into<String>) -> Self {
        Self {
            role: role.into(),
            content: content.into(),
        }
    }
}

/// A folder's tokenizer, its chat template (if any) and the special tokens the template uses.
#[derive(Clone)]
pub struct HfTokenizer {
    tokenizer: Tokenizer,
    template: Option<String>,
    bos_token: String,
    eos_token: String,
    pad_token: String,
}

impl std::fmt::Debug for HfTokenizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HfTokenizer")
            .field("vocab_size", &self.vocab_size())
            .field("chat_template", &self.template.is_some())
            .finish()
    }
}

fn token_text(value: Option<&Value>) -> String {
    match value {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Object(o)) => o
            .get("content")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string(),
        _ => String::new(),
    }
}

fn template_of(value: &Value) -> Option<String> {
    match value {
        Value::String(s) => Some(s.clone()),
        Value::Array(named) => {
            let pick = named
                .iter()
                .find(|t| t.get("name").and_then(Value::as_str) == Some("default"))
                .or_else(|| named.first())?;
            pick.get("template")
                .and_then(Value::as_str)
                .map(String::from)
        }
        _ => None,
    }
}

/// A WordPiece tokenizer that names no decoder gets WordPiece's own (no clean-up): without one,
/// `tokenizers` joins every token with a space, so the world's split numbers would read
/// `19 ##47` instead of `1947` and every year a role wrote would be wrong. `mgrpo hf init`
/// writes this decoder into the folder (so transformers decodes the same); folders it wrote
/// before that lack it, and are read as if they had it.
fn joining_word_pieces(mut tokenizer: Tokenizer) -> Tokenizer {
    if tokenizer.get_decoder().is_none()
        && let ModelWrapper::WordPiece(model) = tokenizer.get_model()
    {
        let prefix = model.continuing_subword_prefix.clone();
        tokenizer.with_decoder(Some(WordPieceDecoder::new(prefix, false)));
    }
    tokenizer
}

impl HfTokenizer {
    /// Loads `tokenizer.json` (required: a folder with only config + weights has none, because
    /// transformers saves the tokenizer separately) and the chat template, if present.
    pub fn from_folder(dir: &Path) -> Result<Self> {
        let path = dir.join("tokenizer.json");
        if !path.is_file() {
            return Err(ModelError::MissingFile {
                path,
                why: "tokenizing needs the model's tokenizer (transformers saves it separately: \
                      tokenizer.save_pretrained(folder))"
                    .into(),
            });
        }
        let tokenizer = Tokenizer::from_file(&path)
            .map_err(|e| ModelError::Tokenizer(format!("{}: {e}", path.display())))?;
        let tokenizer = joining_word_pieces(tokenizer);
        let config_path = dir.join("tokenizer_config.json");
        let config: Value = if config_path.is_file() {
            let bytes = fs::read(&config_path).map_err(|source| ModelError::Io {
                path: config_path.clone(),
                source,
            })?;
            serde_json::from_slice(&bytes)
                .map_err(|e| ModelError::Tokenizer(format!("{}: {e}", config_path.display())))?
        } else {
            Value::Null
        };
        let jinja = dir.join("chat_template.jinja");
        let template = if jinja.is_file() {
            Some(fs::read_to_string(&jinja).map_err(|source| ModelError::Io {
                path: jinja,
                source,
            })?)
        } else {
            config.get("chat_template").and_then(template_of)
        };
        Ok(Self {
            tokenizer,
            template,
            bos_token: token_text(config.get("bos_token")),
            eos_token: token_text(config.get("eos_token")),
            pad_token: token_text(config.get("pad_token")),
        })
    }

    /// A tokenizer from `tokenizer.json` bytes, without a chat template.
    pub fn from_json_bytes(bytes: &[u8]) -> Result<Self> {
        Ok(Self {
            tokenizer: joining_word_pieces(
                Tokenizer::from_bytes(bytes).map_err(|e| ModelError::Tokenizer(e.to_string()))?,
            ),
            template: None,
            bos_token: String::new(),
            eos_token: String::new(),
            pad_token: String::new(),
        })
    }

    /// Number of ids, added tokens included.
    pub fn vocab_size(&self) -> usize {
        self.tokenizer.get_vocab_size(true)
    }

    /// Token ids of `text` (no special tokens added: templates place them).
    pub fn encode(&self, text: &str) -> Result<Vec<u32>> {
        Ok(self
            .tokenizer
            .encode(text, false)
            .map_err(|e| ModelError::Tokenizer(e.to_string()))?
            .get_ids()
            .to_vec())
    }

    /// The text of `ids` (special tokens kept).
    pub fn decode(&self, ids: &[u32]) -> Result<String> {
        self.tokenizer
            .decode(ids, false)
            .map_err(|e| ModelError::Tokenizer(e.to_string()))
    }

    /// The text of `ids` without special tokens (what a model's turn says, its end-of-turn
    /// marker dropped).
    pub fn decode_text(&self, ids: &[u32]) -> Result<String> {
        self.tokenizer
            .decode(ids, true)
            .map_err(|e| ModelError::Tokenizer(e.to_string()))
    }

    /// `tokenizer_config.json`'s `eos_token` (empty when it names none): the token a chat
    /// template closes each turn with.
    pub fn eos_token(&self) -> &str {
        &self.eos_token
    }

    /// `tokenizer_config.json`'s `pad_token` (empty when it names none).
    pub fn pad_token(&self) -> &str {
        &self.pad_token
    }

    /// The id of a token, if the vocabulary has it.
    pub fn token_id(&self, token: &str) -> Option<u32> {
        self.tokenizer.token_to_id(token)
    }

    /// Whether the folder had a chat template.
    pub fn has_chat_template(&self) -> bool {
        self.template.is_some()
    }

    /// Renders `messages` through the chat template, as transformers'
    /// `apply_chat_template(messages, tokenize=False, add_generation_prompt=…)` does.
    pub fn render_chat(
        &self,
        messages: &[ChatMessage],
        add_generation_prompt: bool,
    ) -> Result<String> {
        self.render_chat_with_tools(messages, add_generation_prompt, None)
    }

    /// [`Self::render_chat`] with `tools`: the function definitions transformers passes as
    /// `apply_chat_template(…, tools=[…])` (a list of `{"type": "function", "function":
    /// {"name", "description", "parameters"}}`), which a template such as Qwen's renders into
    /// its system prompt (`# Tools`).
    pub fn render_chat_with_tools(
        &self,
        messages: &[ChatMessage],
        add_generation_prompt: bool,
        tools: Option<&serde_json::Value>,
    ) -> Result<String> {
        let template = self.template.as_deref().ok_or_else(|| {
            ModelError::ChatTemplate(
                "the tokenizer has no chat template (chat_template.jinja or \
                 tokenizer_config.json's chat_template)"
                    .into(),
            )
        })?;
        render(
            template,
            messages,
            add_generation_prompt,
            &self.bos_token,
            &self.eos_token,
            tools,
        )
    }
}

/// Renders a chat template with transformers' environment settings (`tools` absent: the
/// template sees none, as without `tools=`).
pub fn render(
    template: &str,
    messages: &[ChatMessage],
    add_generation_prompt: bool,
    bos_token: &str,
    eos_token: &str,
    tools: Option<&serde_json::Value>,
) -> Result<String> {
    let mut env = Environment::new();
    env.set_trim_blocks(true);
    env.set_lstrip_blocks(true);
    env.set_unknown_method_callback(minijinja_contrib::pycompat::unknown_method_callback);
    minijinja_contrib::add_to_environment(&mut env);
    env.add_filter("tojson", super::tojson::tojson);
    env.add_function(
        "raise_exception",
        |message: String| -> std::result::Result<String, minijinja::Error> {
            Err(minijinja::Error::new(ErrorKind::InvalidOperation, message))
        },
    );
    let bad = |e: minijinja::Error| ModelError::ChatTemplate(format!("{e:#}"));
    env.add_template("chat", template).map_err(bad)?;
    env.get_template("chat")
        .map_err(bad)?
        .render(context! {
            messages => messages,
            add_generation_prompt => add_generation_prompt,
            bos_token => bos_token,
            eos_token => eos_token,
            tools => tools,
        })
        .map_err(bad)
}
