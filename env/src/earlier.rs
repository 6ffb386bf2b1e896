//! The world's built-in `earlier` tool (`[world] compare_tool = true`): a comparison the
//! sub-agents' tools compute.
//!
//! Why: a compare question (*Who was born first , A or B ?*) needs two lookups, which the agents
//! learn well, and then a comparison of two four-digit years read from the context, which the
//! preset models never learn — over every study of docs/results.md they answer compare questions
//! below the 0.5 of a coin flip, because the demonstrations show *which name* wins on train
//! subjects and nothing on test subjects says which year is the earlier. With this tool the
//! comparison becomes a third delegation, `earlier of 1947 or 1952`, whose sub-agent calls
//! `<call> earlier 1947 1952 </call>`, reads `<output> first </output>` and returns `first`; the
//! main agent then answers the first candidate of its question. Every step is a copy or a
//! delegation, the skills this system learns.
//!
//! The tool runs in process (no MCP server): the search tools (`Tools`) answer it inside the
//! episode, so every driver (rollouts, evaluation, the experts) gets it without a tool round trip.
use serde_json::{Map, Value, json};

use crate::protocol::CallForm;
use crate::tool_call::{CallError, ToolSpec, bind, observation};

/// The tool's name, as a call writes it.
pub const NAME: &str = "earlier";
/// The output when the first year is the earlier.
pub const FIRST: &str = "first";
/// The output when the second year is the earlier.
pub const SECOND: &str = "second";
/// The output when the years are equal.
pub const SAME: &str = "same";
/// Every word the tool and its sub-task add to a vocabulary.
pub const WORDS: &str = "earlier of or first second same";

/// The sub-task that asks for the comparison of two years (`earlier of 1947 or 1952`).
pub fn task(a: &str, b: &str) -> String {
    format!("{NAME} of {a} or {b}")
}

/// Reads a sub-task written as [`task`] writes it back into its two years.
pub fn parse_task(text: &str) -> Option<(i64, i64)> {
    let rest = text
        .trim()
        .strip_prefix(NAME)?
        .trim_start()
        .strip_prefix("of ")?;
    let (a, b) = rest.split_once(" or ")?;
    Some((a.trim().parse().ok()?, b.trim().parse().ok()?))
}

/// The tool's answer for years `a` and `b`: [`FIRST`], [`SECOND`] or [`SAME`].
pub fn answer(a: i64, b: i64) -> &'static str {
    match a.cmp(&b) {
        std::cmp::Ordering::Less => FIRST,
        std::cmp::Ordering::Greater => SECOND,
        std::cmp::Ordering::Equal => SAME,
    }
}

/// The tool's description and schema: two integers, `a` then `b`.
pub fn spec() -> ToolSpec {
    let schema = json!({
        "type": "object",
        "properties": {"a": {"type": "integer"}, "b": {"type": "integer"}},
        "required": ["a", "b"],
    });
    let Value::Object(input_schema) = schema else {
        unreachable!("a JSON object literal")
    };
    ToolSpec {
        name: NAME.to_string(),
        description: "Which of two years is the earlier: first, second or same".to_string(),
        input_schema,
    }
}

fn integer(arguments: &Map<String, Value>, key: &str) -> Result<i64, CallError> {
    arguments
        .get(key)
        .and_then(Value::as_i64)
        .ok_or_else(|| CallError::BadArguments {
            tool: NAME.to_string(),
            why: format!("{key} must be an integer"),
        })
}

/// Runs one call's content (`earlier 1947 1952`, or Qwen's JSON) and returns the observation the
/// agent is shown, tagged for the call's form: the answer, or `error : why` for a call naming
/// another tool or arguments that are not two integers.
pub fn run(content: &str, form: CallForm, max_words: usize) -> String {
    let result = bind(content, form, &[spec()]).and_then(|call| {
        Ok(answer(
            integer(&call.arguments, "a")?,
            integer(&call.arguments, "b")?,
        ))
    });
    match result {
        Ok(out) => observation(form, Ok(out), max_words),
        Err(e) => observation(form, Err(&e.to_string()), max_words),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_task_reads_back_into_its_years() {
        assert_eq!(parse_task(&task("1947", "1952")), Some((1947, 1952)));
        assert_eq!(parse_task("earlier of 2001 or 1999"), Some((2001, 1999)));
        for bad in [
            "birth year of Ann Lee",
            "earlier of 1947",
            "earlier of x or 1952",
            "earlier 1947 or 1952",
            "",
        ] {
            assert_eq!(parse_task(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn the_tool_answers_the_position_of_the_earlier_year() {
        assert_eq!(
            run("earlier 1947 1952", CallForm::Words, 16),
            "<output> first </output>"
        );
        assert_eq!(
            run("earlier 1952 1947", CallForm::Words, 16),
            "<output> second </output>"
        );
        assert_eq!(
            run("earlier 1950 1950", CallForm::Words, 16),
            "<output> same </output>"
        );
        assert_eq!(
            run(
                r#"{"name": "earlier", "arguments": {"a": 3, "b": 2}}"#,
                CallForm::Json,
                16
            ),
            "<tool_response> second </tool_response>"
        );
    }

    #[test]
    fn a_bad_call_is_an_error_observation_never_a_panic() {
        let unknown = run("later 1 2", CallForm::Words, 16);
        assert!(
            unknown.starts_with("<output> error : unknown tool"),
            "{unknown}"
        );
        let words = run("earlier 1947 soon", CallForm::Words, 16);
        assert!(
            words.starts_with("<output> error : bad arguments for earlier"),
            "{words}"
        );
        let missing = run("earlier", CallForm::Words, 16);
        assert!(missing.starts_with("<output> error :"), "{missing}");
        let garbage = run("{{{", CallForm::Json, 16);
        assert!(garbage.starts_with("<tool_response> error :"), "{garbage}");
    }
}
