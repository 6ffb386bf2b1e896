//! The offline deep-research task world.
//!
//! A seeded knowledge world ([`world`]) rendered into a corpus ([`corpus`]) that the agents
//! search with BM25 and read ([`search`]); multi-hop and comparison questions with gold
//! sub-questions, split by held-out subjects ([`questions`]); the call-return protocol and its
//! strict parsers ([`protocol`]); episodes as state machines ([`episode`]); the judge
//! ([`judge`]) and the reward formulas ([`rewards`]); scripted experts ([`experts`]); the tokenizer ([`tokenizer`]); accuracy reports
//! ([`eval`]); the built-in `earlier` tool ([`earlier`]); tool calls generic over the tool, bound against its schema ([`tool_call`]).
//! [`variants`] redraws the years (and names) of a world for RL. [`task`] puts the generated world and a task read from files (questions, corpus,
//! demonstrations) behind one type. Pure and deterministic: no actors, no tensors.
#![warn(missing_docs)]

pub mod config;
pub mod corpus;
pub mod earlier;
pub mod episode;
pub mod eval;
pub mod experts;
pub mod generate;
pub mod judge;
pub mod protocol;
pub mod questions;
pub mod rewards;
pub mod search;
pub mod task;
pub mod tokenizer;
pub mod tool_call;
pub mod variants;
pub mod world;

pub use config::WorldConfig;
pub use episode::{
    Ending, MainEpisode, MainStep, NO_RESULT, Segment, SingleEpisode, SubEpisode, ToolStep,
};
pub use eval::{EvalReport, SliceStats, SubReport, eval_experts};
pub use experts::{
    Demo, DemoRole, MainExpert, SingleExpert, SubExpert, Transcript, demonstrations,
    render_transcript, run_expert_episode, run_single_expert,
};
pub use generate::{World, WorldError};
pub use questions::{Question, QuestionKind, Split};
pub use rewards::{MainParts, RewardWeights, SubParts};
pub use search::{SearchHit, ToolError, Tools};
pub use task::Task;
pub use tokenizer::TextCodec;
pub use tool_call::{CallError, ToolCall, ToolSpec};
