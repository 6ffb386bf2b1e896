//! The `tojson` filter of chat templates, as transformers defines it (`json.dumps(x,
//! ensure_ascii=False)` with Python's default separators `", "` and `": "`): Qwen's template
//! writes each tool definition with it into the `# Tools` block. minijinja's own `tojson` (its
//! `json` feature) writes compact JSON, so a tool block would differ from the one the model saw
//! in training by every space. One difference remains: object keys come out sorted (serde_json
//! without `preserve_order`), where Python keeps the order they were built in.
use std::io;

use serde_json::ser::Formatter;

/// serde_json's compact output with Python's separators.
struct PythonSeparators;

/// `", "` before every element but the first (of an array or an object).
fn comma<W: ?Sized + io::Write>(w: &mut W, first: bool) -> io::Result<()> {
    if first { Ok(()) } else { w.write_all(b", ") }
}

impl Formatter for PythonSeparators {
    fn begin_array_value<W: ?Sized + io::Write>(
        &mut self,
        w: &mut W,
        first: bool,
    ) -> io::Result<()> {
        comma(w, first)
    }

    fn begin_object_key<W: ?Sized + io::Write>(
        &mut self,
        w: &mut W,
        first: bool,
    ) -> io::Result<()> {
        comma(w, first)
    }

    fn begin_object_value<W: ?Sized + io::Write>(&mut self, w: &mut W) -> io::Result<()> {
        w.write_all(b": ")
    }
}

/// The template error of a value `tojson` could not write.
fn failed(e: impl std::fmt::Display) -> minijinja::Error {
    minijinja::Error::new(
        minijinja::ErrorKind::InvalidOperation,
        format!("tojson: {e}"),
    )
}

/// `value | tojson`.
pub(super) fn tojson(value: minijinja::Value) -> Result<minijinja::Value, minijinja::Error> {
    let mut out = Vec::new();
    let mut ser = serde_json::Serializer::with_formatter(&mut out, PythonSeparators);
    serde::Serialize::serialize(&value, &mut ser).map_err(failed)?;
    let text = String::from_utf8(out).map_err(failed)?;
    Ok(minijinja::Value::from_safe_string(text))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_json_as_python_does() {
        let v = minijinja::Value::from_serialize(serde_json::json!({
            "name": "convert", "required": ["value", "from"], "n": 1.5, "s": "é \"q\""
        }));
        let out = tojson(v).unwrap();
        assert_eq!(
            out.as_str().unwrap(),
            r#"{"n": 1.5, "name": "convert", "required": ["value", "from"], "s": "é \"q\""}"#
        );
    }
}
