//! JSON lines as a task's files hold them: one object a line, blank lines skipped, every bad
//! line reported with its file and line number (and reading goes on), and ids that are strings
//! or numbers, unique in their file.
use std::collections::BTreeMap;
use std::path::Path;

use serde::de::DeserializeOwned;

/// One parsed line: its number (from 1), its place (`file:line`) and its value.
pub struct Line<T> {
    /// 1-based line number.
    pub number: usize,
    /// `file:line`, for messages.
    pub place: String,
    /// The line's object.
    pub value: T,
}

/// The lines of `path` that parse as `T`; the others (and an unreadable file, named as `what`)
/// go to `problems`.
pub fn read_lines<T: DeserializeOwned>(
    path: &Path,
    what: &str,
    problems: &mut Vec<String>,
) -> Vec<Line<T>> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) => {
            problems.push(format!("{}: cannot read the {what}: {e}", path.display()));
            return Vec::new();
        }
    };
    let mut out = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        if raw.trim().is_empty() {
            continue;
        }
        let place = format!("{}:{}", path.display(), i + 1);
        match serde_json::from_str(raw) {
            Ok(value) => out.push(Line {
                number: i + 1,
                place,
                value,
            }),
            Err(e) => problems.push(format!("{place}: {e}")),
        }
    }
    out
}

/// Unique ids of one file: each id's first line.
#[derive(Default)]
pub struct Ids(BTreeMap<String, usize>);

impl Ids {
    /// The id `value` names (a non-empty string or a number), recorded for `line`; a problem
    /// (pushed) when it is neither or repeats an earlier line.
    pub fn take(
        &mut self,
        value: &serde_json::Value,
        line: &Line<impl Sized>,
        problems: &mut Vec<String>,
    ) -> Option<String> {
        let id = match value {
            serde_json::Value::String(s) if !s.trim().is_empty() => s.clone(),
            serde_json::Value::Number(n) => n.to_string(),
            other => {
                problems.push(format!(
                    "{}: id {other} is not a string or number",
                    line.place
                ));
                return None;
            }
        };
        if let Some(first) = self.0.insert(id.clone(), line.number) {
            problems.push(format!("{}: id {id:?} repeats line {first}", line.place));
            return None;
        }
        Some(id)
    }
}
