//! The world's built-in `earlier` tool (`[world] compare_tool = true`): a comparison the
//! sub-agents' tools compute.
//!
//! Why: a compare question (*Who was born first , A or B ?*) needs two lookups, which the agents
//! learn well, and then a comparison of two four-digit years read from the context, which the
//! preset models never learn — over every study of docs/results.md they answer compare questions
//! below the 0.5 of a coin flip, because the demonstrations show *which name* wins on train
//! subjects and nothing on test subjects says which year is the earlier. With this tool the
//! comparison becomes a third delegation, `earlier of A 1947 or B 1952`, whose sub-agent calls
//! `<call> earlier A 1947 or B 1952 </call>`, reads `<output> A </output>` and returns `A`; the
//! main agent answers the result just before it, as it answers a chain's last hop. Every step is
//! a copy or a delegation, the skills this system learns.
//!
//! The tool answers with the earlier candidate's *name*, not its position (`first`): a probe
//! with positions (commit 61b6229) had the main agent map `first` to the question's first name
//! over a long context, and it chose and copied wrong more often than not (docs/results.md).
//!
//! The tool runs in process (no MCP server): the search tools (`Tools`) answer it inside the
//! episode, so every driver (rollouts, evaluation, the experts) gets it without a tool round trip.
use serde_json::{Value, json};

use crate::protocol::CallForm;
use crate::tool_call::{CallError, ToolSpec, bind, observation};

/// The tool's name, as a call writes it.
pub const NAME: &str = "earlier";
/// The output when the years are equal.
pub const SAME: &str = "same";
/// Every word the tool and its sub-task add to a vocabulary (names and years are the world's).
pub const WORDS: &str = "earlier of or same";

/// Two candidates and their years, in the question's order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pair {
    /// The first candidate's name.
    pub a: String,
    /// Its year.
    pub year_a: i64,
    /// The second candidate's name.
    pub b: String,
    /// Its year.
    pub year_b: i64,
}

impl Pair {
    /// The tool's answer: the name with the earlier year, or [`SAME`].
    pub fn earlier(&self) -> &str {
        match self.year_a.cmp(&self.year_b) {
            std::cmp::Ordering::Less => &self.a,
            std::cmp::Ordering::Greater => &self.b,
            std::cmp::Ordering::Equal => SAME,
        }
    }

    /// The other candidate than `name` (the first if `name` is neither).
    pub fn other(&self, name: &str) -> &str {
        if name == self.a { &self.b } else { &self.a }
    }
}

/// The words of a pair as a call and a sub-task write them: `A 1947 or B 1952`.
pub fn words(a: &str, year_a: &str, b: &str, year_b: &str) -> String {
    format!("{a} {year_a} or {b} {year_b}")
}

/// Reads `A 1947 or B 1952` (each side a name, then its year as the last word).
pub fn parse_words(text: &str) -> Option<Pair> {
    let (left, right) = text.trim().split_once(" or ")?;
    let side = |s: &str| -> Option<(String, i64)> {
        let (name, year) = s.trim().rsplit_once(' ')?;
        let name = name.trim();
        (!name.is_empty()).then(|| Some((name.to_string(), year.parse().ok()?)))?
    };
    let ((a, year_a), (b, year_b)) = (side(left)?, side(right)?);
    Some(Pair {
        a,
        year_a,
        b,
        year_b,
    })
}

/// The sub-task that asks for the comparison (`earlier of A 1947 or B 1952`).
pub fn task(a: &str, year_a: &str, b: &str, year_b: &str) -> String {
    format!("{NAME} of {}", words(a, year_a, b, year_b))
}

/// Reads a sub-task written as [`task`] writes it.
pub fn parse_task(text: &str) -> Option<Pair> {
    parse_words(text_after_of(text)?)
}

/// The call a sub-agent makes for a comparison sub-task: the task's pair after the tool's name.
pub fn call_for(task: &str) -> Option<String> {
    let pair = text_after_of(task)?;
    Some(format!("{NAME} {pair}"))
}

fn text_after_of(task: &str) -> Option<&str> {
    Some(
        task.trim()
            .strip_prefix(NAME)?
            .trim_start()
            .strip_prefix("of ")?
            .trim(),
    )
}

/// The tool's description and schema: one string, `A 1947 or B 1952`.
pub fn spec() -> ToolSpec {
    let schema = json!({
        "type": "object",
        "properties": {"pair": {"type": "string", "description": "NAME YEAR or NAME YEAR"}},
        "required": ["pair"],
    });
    let Value::Object(input_schema) = schema else {
        unreachable!("a JSON object literal")
    };
    ToolSpec {
        name: NAME.to_string(),
        description: "Which of two named years is the earlier: NAME YEAR or NAME YEAR → that NAME"
            .to_string(),
        input_schema,
    }
}

/// Runs one call's content (`earlier A 1947 or B 1952`, or Qwen's JSON) and returns the
/// observation the agent is shown, tagged for the call's form: the earlier name, or
/// `error : why` for a call naming another tool or a pair it cannot read.
pub fn run(content: &str, form: CallForm, max_words: usize) -> String {
    let result = bind(content, form, &[spec()]).and_then(|call| {
        call.arguments
            .get("pair")
            .and_then(Value::as_str)
            .and_then(parse_words)
            .ok_or_else(|| CallError::BadArguments {
                tool: NAME.to_string(),
                why: "write NAME YEAR or NAME YEAR".to_string(),
            })
    });
    match result {
        Ok(pair) => observation(form, Ok(pair.earlier()), max_words),
        Err(e) => observation(form, Err(&e.to_string()), max_words),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_task_reads_back_into_its_pair() {
        let t = task("Ann Lee", "1947", "The Dark Tower", "1952");
        assert_eq!(t, "earlier of Ann Lee 1947 or The Dark Tower 1952");
        let pair = parse_task(&t).unwrap();
        assert_eq!(
            pair,
            Pair {
                a: "Ann Lee".into(),
                year_a: 1947,
                b: "The Dark Tower".into(),
                year_b: 1952
            }
        );
        assert_eq!(pair.earlier(), "Ann Lee");
        assert_eq!(pair.other("Ann Lee"), "The Dark Tower");
        assert_eq!(
            call_for(&t).unwrap(),
            "earlier Ann Lee 1947 or The Dark Tower 1952"
        );
        for bad in [
            "birth year of Ann Lee",
            "earlier of Ann Lee 1947",
            "earlier of Ann Lee or Bo 1952",
            "earlier of 1947 or 1952",
            "earlier Ann 1947 or Bo 1952",
            "",
        ] {
            assert_eq!(parse_task(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn the_tool_answers_the_name_with_the_earlier_year() {
        assert_eq!(
            run("earlier Ann Lee 1947 or Bo 1952", CallForm::Words, 16),
            "<output> Ann Lee </output>"
        );
        assert_eq!(
            run("earlier Ann Lee 1952 or Bo 1947", CallForm::Words, 16),
            "<output> Bo </output>"
        );
        assert_eq!(
            run("earlier Ann 1950 or Bo 1950", CallForm::Words, 16),
            "<output> same </output>"
        );
        assert_eq!(
            run(
                r#"{"name": "earlier", "arguments": {"pair": "Ann 3 or Bo 2"}}"#,
                CallForm::Json,
                16
            ),
            "<tool_response> Bo </tool_response>"
        );
    }

    #[test]
    fn a_bad_call_is_an_error_observation_never_a_panic() {
        let unknown = run("later 1 2", CallForm::Words, 16);
        assert!(
            unknown.starts_with("<output> error : unknown tool"),
            "{unknown}"
        );
        for bad in [
            "earlier Ann 1947 or Bo soon",
            "earlier 1947 1952",
            "earlier",
        ] {
            let out = run(bad, CallForm::Words, 16);
            assert!(
                out.starts_with("<output> error : bad arguments for earlier"),
                "{bad}: {out}"
            );
        }
        let garbage = run("{{{", CallForm::Json, 16);
        assert!(garbage.starts_with("<tool_response> error :"), "{garbage}");
    }
}
