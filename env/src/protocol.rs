//! The call-return protocol's grammar and its strict parsers (docs/protocol.md).
//!
//! One action per turn, written as `<tag> content </tag>`: the open tag first, the matching close
//! tag last, non-empty content in between with no tag inside. Anything else is a format error
//! with a reason. The parsers never panic, whatever the input.
use serde::{Deserialize, Serialize};

/// Tags and markers of the protocol.
pub mod tags {
    /// Wraps the question in the main agent's (and single agent's) prompt.
    pub const QUESTION: (&str, &str) = ("<question>", "</question>");
    /// Main agent: delegate a sub-task.
    pub const DELEGATE: (&str, &str) = ("<delegate>", "</delegate>");
    /// Main agent (and single agent): the final answer.
    pub const ANSWER: (&str, &str) = ("<answer>", "</answer>");
    /// Appended to the main agent's context: what the sub-agent returned.
    pub const RESULT: (&str, &str) = ("<result>", "</result>");
    /// Wraps the sub-task in the sub-agent's prompt.
    pub const TASK: (&str, &str) = ("<task>", "</task>");
    /// Sub-agent (and single agent): search the corpus.
    pub const SEARCH: (&str, &str) = ("<search>", "</search>");
    /// Sub-agent (and single agent): open a document.
    pub const OPEN: (&str, &str) = ("<open>", "</open>");
    /// Sub-agent: return the result to the main agent.
    pub const RETURN: (&str, &str) = ("<return>", "</return>");
    /// Appended after a search.
    pub const RESULTS: (&str, &str) = ("<results>", "</results>");
    /// Appended after an open.
    pub const DOC: (&str, &str) = ("<doc>", "</doc>");
    /// Sub-agent: call a tool, `<call> NAME ARGS… </call>` (only where the task has tools).
    pub const CALL: (&str, &str) = ("<call>", "</call>");
    /// Appended after a `<call>`: the tool's output, or `error : why`.
    pub const OUTPUT: (&str, &str) = ("<output>", "</output>");
    /// Sub-agent: call a tool in Qwen's form, `<tool_call> {"name": …, "arguments": {…}}
    /// </tool_call>` (only where the task has tools).
    pub const TOOL_CALL: (&str, &str) = ("<tool_call>", "</tool_call>");
    /// Appended after a `<tool_call>`: the tool's output, or `error : why`.
    pub const TOOL_RESPONSE: (&str, &str) = ("<tool_response>", "</tool_response>");

    /// Every tag pair.
    pub const ALL: [(&str, &str); 10] = [
        QUESTION, DELEGATE, ANSWER, RESULT, TASK, SEARCH, OPEN, RETURN, RESULTS, DOC,
    ];

    /// Close tags that end an agent's turn (the sampling stop markers).
    pub const STOPS: [&str; 5] = [DELEGATE.1, ANSWER.1, SEARCH.1, OPEN.1, RETURN.1];

    /// The tags of tool calls. Kept out of [`ALL`] and [`STOPS`]: they join a vocabulary, a
    /// parser and the stop markers only where the task configures tools, so a world without
    /// tools keeps its tokenizer (and every seeded run) bit for bit.
    pub const TOOLS: [(&str, &str); 4] = [CALL, OUTPUT, TOOL_CALL, TOOL_RESPONSE];

    /// Close tags of tool calls: stop markers where the vocabulary has them.
    pub const TOOL_STOPS: [&str; 2] = [CALL.1, TOOL_CALL.1];
}

/// What the main agent may do.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum MainAction {
    /// Call a sub-agent with this sub-task.
    Delegate(String),
    /// Answer and end.
    Answer(String),
}

/// What a sub-agent may do.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum SubAction {
    /// Search the corpus.
    Search(String),
    /// Open a document by id.
    Open(String),
    /// Return a result to the main agent and end the call.
    Return(String),
    /// Call a tool: the call's words (`NAME ARGS…`, or Qwen's JSON) in their form.
    Call(String, CallForm),
}

/// How a tool call is written, and so how its output is tagged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum CallForm {
    /// `<call> NAME ARGS… </call>`, answered by `<output> … </output>`: the preset roles' form.
    Words,
    /// `<tool_call> {"name": …, "arguments": {…}} </tool_call>`, answered by
    /// `<tool_response> … </tool_response>`: Qwen's form, for HF roles.
    Json,
}

impl CallForm {
    /// The tag pair of the call.
    pub fn call_tag(self) -> (&'static str, &'static str) {
        match self {
            CallForm::Words => tags::CALL,
            CallForm::Json => tags::TOOL_CALL,
        }
    }

    /// The tag pair of its observation.
    pub fn output_tag(self) -> (&'static str, &'static str) {
        match self {
            CallForm::Words => tags::OUTPUT,
            CallForm::Json => tags::TOOL_RESPONSE,
        }
    }
}

/// What the single agent (the `single` baseline) may do.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum SingleAction {
    /// Search the corpus.
    Search(String),
    /// Open a document by id.
    Open(String),
    /// Answer and end.
    Answer(String),
    /// Call a tool (the world's built-in `earlier`): the call's words in their form.
    Call(String, CallForm),
}

/// A turn that does not parse, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[error("format error: {0}")]
pub struct FormatError(pub String);

fn is_tag(word: &str) -> bool {
    word.len() > 2 && word.starts_with('<') && word.ends_with('>')
}

/// Parses `<tag> content </tag>` for one of `allowed` tag pairs; returns (index, content).
fn parse_tagged(output: &str, allowed: &[(&str, &str)]) -> Result<(usize, String), FormatError> {
    let words: Vec<&str> = output.split_whitespace().collect();
    let Some((&first, rest)) = words.split_first() else {
        return Err(FormatError("empty output".into()));
    };
    let Some(i) = allowed.iter().position(|(open, _)| *open == first) else {
        let expected: Vec<&str> = allowed.iter().map(|(o, _)| *o).collect();
        return Err(FormatError(format!(
            "expected one of {} first, got {:?}",
            expected.join(" "),
            first.chars().take(40).collect::<String>()
        )));
    };
    let close = allowed[i].1;
    let Some(end) = rest.iter().position(|w| is_tag(w)) else {
        return Err(FormatError(format!("missing closing tag {close}")));
    };
    if rest[end] != close {
        return Err(FormatError(format!(
            "expected {close}, got {:?}",
            rest[end].chars().take(40).collect::<String>()
        )));
    }
    if end + 1 != rest.len() {
        return Err(FormatError(format!("text after {close}")));
    }
    if end == 0 {
        return Err(FormatError(format!("empty {} content", allowed[i].0)));
    }
    Ok((i, rest[..end].join(" ")))
}

/// Parses one main-agent turn.
pub fn parse_main_action(output: &str) -> Result<MainAction, FormatError> {
    let (i, content) = parse_tagged(output, &[tags::DELEGATE, tags::ANSWER])?;
    Ok(if i == 0 {
        MainAction::Delegate(content)
    } else {
        MainAction::Answer(content)
    })
}

/// A turn of a tool-using agent (sub-agent or single agent): the index of its action among
/// search, open, the protocol's `finish` tag and — with `calls` — `<call>` and `<tool_call>`,
/// and the content. One list for both protocols, so they differ only in their finish tag.
fn parse_tool_turn(
    output: &str,
    finish: (&'static str, &'static str),
    calls: bool,
) -> Result<(usize, String), FormatError> {
    let allowed = [
        tags::SEARCH,
        tags::OPEN,
        finish,
        tags::CALL,
        tags::TOOL_CALL,
    ];
    parse_tagged(output, &allowed[..if calls { 5 } else { 3 }])
}

/// Parses one sub-agent turn; with `calls`, `<call>` and `<tool_call>` are actions too.
pub fn parse_sub_turn(output: &str, calls: bool) -> Result<SubAction, FormatError> {
    let (i, content) = parse_tool_turn(output, tags::RETURN, calls)?;
    Ok(match i {
        0 => SubAction::Search(content),
        1 => SubAction::Open(content),
        2 => SubAction::Return(content),
        3 => SubAction::Call(content, CallForm::Words),
        _ => SubAction::Call(content, CallForm::Json),
    })
}

/// Parses one single-agent turn; with `calls` (a world with a built-in tool), `<call>` and
/// `<tool_call>` are actions too.
pub fn parse_single_turn(output: &str, calls: bool) -> Result<SingleAction, FormatError> {
    let (i, content) = parse_tool_turn(output, tags::ANSWER, calls)?;
    Ok(match i {
        0 => SingleAction::Search(content),
        1 => SingleAction::Open(content),
        2 => SingleAction::Answer(content),
        3 => SingleAction::Call(content, CallForm::Words),
        _ => SingleAction::Call(content, CallForm::Json),
    })
}

/// `<tag> content </tag>` for a tag pair.
pub fn wrap(tag: (&str, &str), content: &str) -> String {
    format!("{} {} {}", tag.0, content, tag.1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn accepts_well_formed_turns() {
        assert_eq!(
            parse_main_action("<delegate> birthplace of Alma Voss </delegate>"),
            Ok(MainAction::Delegate("birthplace of Alma Voss".into()))
        );
        assert_eq!(
            parse_main_action("  <answer> Tarsk </answer> "),
            Ok(MainAction::Answer("Tarsk".into()))
        );
        assert_eq!(
            parse_sub_turn("<open> d17 </open>", false),
            Ok(SubAction::Open("d17".into()))
        );
        assert_eq!(
            parse_sub_turn("<return> 1954 </return>", false),
            Ok(SubAction::Return("1954".into()))
        );
        assert_eq!(
            parse_single_turn("<search> x y </search>", false),
            Ok(SingleAction::Search("x y".into()))
        );
    }

    #[test]
    fn rejects_with_reasons() {
        let reason = |s: &str| parse_main_action(s).unwrap_err().0;
        assert_eq!(reason(""), "empty output");
        assert!(reason("hello").contains("expected one of"));
        assert!(reason("<delegate> x").contains("missing closing tag"));
        assert!(reason("<delegate> x </answer>").contains("expected </delegate>"));
        assert!(reason("<delegate> </delegate>").contains("empty"));
        assert!(reason("<delegate> x </delegate> y").contains("text after"));
        assert!(reason("<delegate> a <answer> b </delegate>").contains("expected </delegate>"));
        assert!(
            parse_main_action("<search> x </search>").is_err(),
            "a sub action is not a main action"
        );
        assert!(parse_sub_turn("<answer> x </answer>", false).is_err());
        assert!(parse_single_turn("<return> x </return>", false).is_err());
    }

    #[test]
    fn calls_parse_only_where_tools_are_configured() {
        let call = "<call> add 2 3 </call>";
        assert!(
            parse_sub_turn(call, false).is_err(),
            "without tools a call is not an action"
        );
        assert_eq!(
            parse_sub_turn(call, true),
            Ok(SubAction::Call("add 2 3".into(), CallForm::Words))
        );
        assert_eq!(
            parse_sub_turn(
                r#"<tool_call> {"name": "add", "arguments": {"a": 2}} </tool_call>"#,
                true
            ),
            Ok(SubAction::Call(
                r#"{"name": "add", "arguments": {"a": 2}}"#.into(),
                CallForm::Json
            ))
        );
        assert_eq!(
            parse_sub_turn("<search> x </search>", true),
            Ok(SubAction::Search("x".into()))
        );
        let reason = parse_sub_turn("<call> add 2 </output>", true)
            .unwrap_err()
            .0;
        assert!(reason.contains("expected </call>"), "{reason}");
        assert!(parse_sub_turn("<call> </call>", true).is_err());
        assert!(parse_sub_turn("<output> 5 </output>", true).is_err());
    }

    proptest! {
        #[test]
        fn never_panics(s in ".{0,200}") {
            let _ = parse_main_action(&s);
            let _ = parse_sub_turn(&s, false);
            let _ = parse_sub_turn(&s, true);
            let _ = parse_single_turn(&s, false);
        }

        #[test]
        fn never_panics_on_tag_soup(words in prop::collection::vec(prop::sample::select(vec![
            "<delegate>", "</delegate>", "<answer>", "</answer>", "<search>", "</search>", "<return>",
            "</return>", "x", "Alma", "<", ">", "<>", "</", "of", "\u{1F600}", "<open>", "</open>",
        ]), 0..12)) {
            let s = words.join(" ");
            if let Ok(MainAction::Delegate(c) | MainAction::Answer(c)) = parse_main_action(&s) {
                prop_assert!(!c.is_empty());
                prop_assert!(!c.split_whitespace().any(is_tag));
            }
            let _ = parse_sub_turn(&s, false);
        }
    }
}
