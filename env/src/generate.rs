//! [`World`]: everything a run needs from the task world — knowledge, corpus, tools,
//! questions — generated deterministically from `[world]`.
use crate::config::{ConfigError, WorldConfig};
use crate::corpus::build_corpus;
use crate::questions::{Question, Split, generate_questions, subject_splits};
use crate::search::{SearchError, Tools};
use crate::world::Knowledge;

/// Why a world could not be built.
#[derive(Debug, thiserror::Error)]
pub enum WorldError {
    /// A `[world]` value is invalid.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The search index failed.
    #[error(transparent)]
    Search(#[from] SearchError),
}

/// The generated task world.
#[derive(Debug)]
pub struct World {
    /// The settings it was generated from.
    pub config: WorldConfig,
    /// Entities and facts.
    pub knowledge: Knowledge,
    /// Search and open over the corpus.
    pub tools: Tools,
    pub(crate) questions: [Vec<Question>; 3],
}

/// Search and open over the corpus of `knowledge`, with the built-in `earlier` tool where
/// `config.compare_tool` asks for it: the world's tools, and a variant's of its own facts.
pub(crate) fn corpus_tools(
    knowledge: &Knowledge,
    config: &WorldConfig,
) -> Result<Tools, SearchError> {
    let corpus = build_corpus(knowledge, config);
    let tools = Tools::new(corpus, config.top_k, config.snippet_words, config.doc_words)?;
    Ok(if config.compare_tool {
        tools.with_earlier()
    } else {
        tools
    })
}

impl World {
    /// Generates the world (validates the config first).
    pub fn generate(config: &WorldConfig) -> Result<Self, WorldError> {
        config.validate()?;
        let mut knowledge = Knowledge::generate(config);
        let splits = subject_splits(&knowledge, config.seed);
        knowledge.share_years(|e| splits[e] == Some(Split::Train), config.seed);
        let tools = corpus_tools(&knowledge, config)?;
        let questions = generate_questions(&knowledge, config);
        Ok(Self {
            config: config.clone(),
            knowledge,
            tools,
            questions,
        })
    }

    /// The questions of a split.
    pub fn questions(&self, split: Split) -> &[Question] {
        match split {
            Split::Train => &self.questions[0],
            Split::Dev => &self.questions[1],
            Split::Test => &self.questions[2],
        }
    }

    /// A question by id.
    pub fn question(&self, id: &str) -> Option<&Question> {
        let split = match id.split('-').next()? {
            "train" => Split::Train,
            "dev" => Split::Dev,
            "test" => Split::Test,
            _ => return None,
        };
        self.questions(split).iter().find(|q| q.id == id)
    }
}
