//! Tool calls, generic over the tool: which tool a turn names and with which arguments, bound
//! against the tool's input schema, and the observation the agent is shown (docs/protocol.md,
//! "Tool calls").
//!
//! Why here and pure: a call is protocol text until it is bound, and the binding decides what
//! is a malformed call (an error observation the agent sees) — the same for every tool, and
//! testable without a server. Running the call is I/O and belongs to the driver (the MCP
//! servers live in the actors crate).
//!
//! Two forms (see [`CallForm`]): positional words for the preset roles, whose word-level
//! tokenizer would shred JSON into one-off tokens (`{"a":`), and Qwen's JSON for HF roles.
//! Words bind in the order of the schema's `required` list, each converted to its property's
//! type; the last parameter, when it is a string, takes every remaining word (like a search
//! query). A words call may also give its arguments as one JSON object (`<call> add {"a": 2,
//! "b": 3} </call>`), the way to pass optional parameters.
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::protocol::{CallForm, wrap};

/// What a tool offers: its name, what it does, and the JSON schema of its arguments.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ToolSpec {
    /// The name a call uses.
    pub name: String,
    /// What it does (for the user and for HF chat templates).
    pub description: String,
    /// The JSON schema (an object schema) of its arguments.
    pub input_schema: Map<String, Value>,
}

/// A bound call: the tool and its arguments.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ToolCall {
    /// The tool.
    pub name: String,
    /// Its arguments (a JSON object).
    pub arguments: Map<String, Value>,
}

/// Why a call could not be bound: shown to the agent as an error observation.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CallError {
    /// No such tool.
    #[error("unknown tool {name} ( tools : {known} )")]
    UnknownTool {
        /// The name the call gave.
        name: String,
        /// The tools there are, space-separated.
        known: String,
    },
    /// The arguments do not fit the schema, or are not valid JSON.
    #[error("bad arguments for {tool} : {why}")]
    BadArguments {
        /// The tool.
        tool: String,
        /// What is wrong.
        why: String,
    },
}

/// The parameters positional words bind to: the schema's `required` list in order (or, with
/// none, every property in the schema's order), each with its JSON type.
fn parameters(schema: &Map<String, Value>) -> Vec<(String, String)> {
    let props = schema.get("properties").and_then(Value::as_object);
    let names: Vec<String> = match schema.get("required").and_then(Value::as_array) {
        Some(req) => req
            .iter()
            .filter_map(|v| v.as_str().map(str::to_string))
            .collect(),
        None => props
            .map(|p| p.keys().cloned().collect())
            .unwrap_or_default(),
    };
    names
        .into_iter()
        .map(|n| {
            let ty = props
                .and_then(|p| p.get(&n))
                .map(json_type)
                .unwrap_or_else(|| "string".to_string());
            (n, ty)
        })
        .collect()
}

/// A property's JSON type (`"type": ["integer", "null"]` → `integer`; none → `string`).
fn json_type(prop: &Value) -> String {
    match prop.get("type") {
        Some(Value::String(t)) => t.clone(),
        Some(Value::Array(ts)) => ts
            .iter()
            .filter_map(Value::as_str)
            .find(|t| *t != "null")
            .unwrap_or("string")
            .to_string(),
        _ => "string".to_string(),
    }
}

/// How a preset role calls `spec`, for people (`mgrpo task check`, the docs): the words form
/// with each positional parameter and its type, then what the tool does —
/// `<call> add a:number b:number </call> : Add two numbers`.
pub fn usage(spec: &ToolSpec) -> String {
    let params: Vec<String> = parameters(&spec.input_schema)
        .into_iter()
        .map(|(name, ty)| format!("{name}:{ty}"))
        .collect();
    let mut call = vec![spec.name.as_str()];
    call.extend(params.iter().map(String::as_str));
    let mut line = wrap(CallForm::Words.call_tag(), &call.join(" "));
    if !spec.description.trim().is_empty() {
        line = format!("{line} : {}", spec.description.trim());
    }
    line
}

/// The tools as a chat template's `tools` (transformers' `apply_chat_template(tools=…)`): one
/// `{"type": "function", "function": {"name", "description", "parameters"}}` each, in order —
/// what Qwen's template renders into its system prompt's `# Tools` block, so that an HF role
/// reads the tools' names and schemas before it writes `<tool_call>`.
pub fn chat_template_tools(specs: &[ToolSpec]) -> Value {
    specs
        .iter()
        .map(|s| {
            serde_json::json!({
                "type": "function",
                "function": {
                    "name": s.name,
                    "description": s.description,
                    "parameters": s.input_schema,
                },
            })
        })
        .collect()
}

/// One word as a value of JSON type `ty`.
fn convert(word: &str, ty: &str) -> Result<Value, String> {
    let bad = || format!("{ty} wanted , got {word}");
    match ty {
        "integer" => word.parse::<i64>().map(Value::from).map_err(|_| bad()),
        "number" => match word.parse::<i64>() {
            Ok(i) => Ok(Value::from(i)),
            Err(_) => word
                .parse::<f64>()
                .ok()
                .and_then(serde_json::Number::from_f64)
                .map(Value::Number)
                .ok_or_else(bad),
        },
        "boolean" => word.parse::<bool>().map(Value::Bool).map_err(|_| bad()),
        _ => Ok(Value::String(word.to_string())),
    }
}

fn object(tool: &str, text: &str) -> Result<Map<String, Value>, CallError> {
    match serde_json::from_str::<Value>(text) {
        Ok(Value::Object(m)) => Ok(m),
        Ok(_) => Err(CallError::BadArguments {
            tool: tool.to_string(),
            why: "arguments must be a JSON object".into(),
        }),
        Err(e) => Err(CallError::BadArguments {
            tool: tool.to_string(),
            why: format!("invalid JSON ( {e} )"),
        }),
    }
}

/// Positional words bound to `spec`'s parameters.
fn bind_words(spec: &ToolSpec, words: &[&str]) -> Result<Map<String, Value>, CallError> {
    let bad = |why: String| CallError::BadArguments {
        tool: spec.name.clone(),
        why,
    };
    let params = parameters(&spec.input_schema);
    let usage = || {
        let names: Vec<&str> = params.iter().map(|(n, _)| n.as_str()).collect();
        format!(
            "{} takes {} word(s) : {}",
            spec.name,
            names.len(),
            names.join(" ")
        )
    };
    let last_takes_rest = params.last().is_some_and(|(_, t)| t == "string");
    let fits = if last_takes_rest {
        words.len() >= params.len()
    } else {
        words.len() == params.len()
    };
    if !fits {
        return Err(bad(format!("{} , got {} word(s)", usage(), words.len())));
    }
    let mut args = Map::new();
    for (i, (name, ty)) in params.iter().enumerate() {
        let value = if i + 1 == params.len() && last_takes_rest {
            Value::String(words[i..].join(" "))
        } else {
            convert(words[i], ty).map_err(|w| bad(format!("{name} : {w}")))?
        };
        args.insert(name.clone(), value);
    }
    Ok(args)
}

/// Binds a call's content (what stood between its tags) in `form` against the tools `specs`.
pub fn bind(content: &str, form: CallForm, specs: &[ToolSpec]) -> Result<ToolCall, CallError> {
    let find = |name: &str| {
        specs
            .iter()
            .find(|s| s.name == name)
            .ok_or_else(|| CallError::UnknownTool {
                name: name.chars().take(40).collect(),
                known: specs
                    .iter()
                    .map(|s| s.name.as_str())
                    .collect::<Vec<_>>()
                    .join(" "),
            })
    };
    match form {
        CallForm::Words => {
            let words: Vec<&str> = content.split_whitespace().collect();
            let (name, rest) = words.split_first().map_or(("", &[][..]), |(n, r)| (*n, r));
            let spec = find(name)?;
            let arguments = if rest.first().is_some_and(|w| w.starts_with('{')) {
                object(name, &rest.join(" "))?
            } else {
                bind_words(spec, rest)?
            };
            Ok(ToolCall {
                name: name.to_string(),
                arguments,
            })
        }
        CallForm::Json => {
            let mut call = object("tool_call", content)?;
            let name = match call.remove("name") {
                Some(Value::String(n)) => n,
                _ => {
                    return Err(CallError::BadArguments {
                        tool: "tool_call".into(),
                        why: "a string \"name\" is required".into(),
                    });
                }
            };
            find(&name)?;
            let arguments = match call.remove("arguments") {
                None | Some(Value::Null) => Map::new(),
                Some(Value::Object(m)) => m,
                // Some models write the arguments as a JSON string.
                Some(Value::String(s)) => object(&name, &s)?,
                Some(_) => {
                    return Err(CallError::BadArguments {
                        tool: name,
                        why: "\"arguments\" must be a JSON object".into(),
                    });
                }
            };
            Ok(ToolCall { name, arguments })
        }
    }
}

/// Canonical observation words: single spaces, no tag-like word (a tool cannot open or close
/// the protocol's tags), at most `max_words` words; `no output` when nothing is left.
pub fn observation_words(text: &str, max_words: usize) -> String {
    let words: Vec<&str> = text
        .split_whitespace()
        .filter(|w| !(w.starts_with('<') && w.ends_with('>')))
        .take(max_words)
        .collect();
    if words.is_empty() {
        "no output".to_string()
    } else {
        words.join(" ")
    }
}

/// The observation segment of a call in `form`: its output, or `error : why` when the call
/// failed, bounded to `max_words` words (the `error :` prefix included).
pub fn observation(form: CallForm, result: Result<&str, &str>, max_words: usize) -> String {
    let text = match result {
        Ok(out) => observation_words(out, max_words),
        Err(why) => observation_words(&format!("error : {why}"), max_words.max(3)),
    };
    wrap(form.output_tag(), &text)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    fn specs() -> Vec<ToolSpec> {
        let spec = |name: &str, schema: Value| ToolSpec {
            name: name.into(),
            description: String::new(),
            input_schema: schema.as_object().unwrap().clone(),
        };
        vec![
            spec(
                "add",
                json!({"type": "object", "properties": {"b": {"type": "number"},
                    "a": {"type": "number"}}, "required": ["a", "b"]}),
            ),
            spec(
                "lookup",
                json!({"type": "object", "properties": {"limit": {"type": ["integer", "null"]},
                    "query": {"type": "string"}}, "required": ["limit", "query"]}),
            ),
            spec("now", json!({"type": "object"})),
        ]
    }

    fn words(content: &str) -> Result<ToolCall, CallError> {
        bind(content, CallForm::Words, &specs())
    }

    #[test]
    fn words_bind_in_required_order_with_their_types() {
        let c = words("add 2 3.5").unwrap();
        assert_eq!(c.name, "add");
        assert_eq!(Value::Object(c.arguments), json!({"a": 2, "b": 3.5}));
        let c = words("lookup 3 capital of Tarsk").unwrap();
        assert_eq!(
            Value::Object(c.arguments),
            json!({"limit": 3, "query": "capital of Tarsk"}),
            "the last string parameter takes the rest"
        );
        assert!(words("now").unwrap().arguments.is_empty());
        let c = words(r#"add {"a": 1, "b": 2}"#).unwrap();
        assert_eq!(Value::Object(c.arguments), json!({"a": 1, "b": 2}));
    }

    #[test]
    fn malformed_calls_say_why() {
        let e = words("mul 2 3").unwrap_err().to_string();
        assert_eq!(e, "unknown tool mul ( tools : add lookup now )");
        let e = words("add 2").unwrap_err().to_string();
        assert!(e.contains("add takes 2 word(s) : a b , got 1"), "{e}");
        let e = words("add 2 x").unwrap_err().to_string();
        assert!(e.contains("b : number wanted , got x"), "{e}");
        let e = words("add {\"a\": 1").unwrap_err().to_string();
        assert!(e.contains("invalid JSON"), "{e}");
        let e = words("now 1").unwrap_err().to_string();
        assert!(e.contains("got 1 word(s)"), "{e}");
    }

    #[test]
    fn usage_shows_the_words_form_with_types() {
        let mut add = specs().remove(0);
        add.description = "Add two numbers ".into();
        assert_eq!(
            usage(&add),
            "<call> add a:number b:number </call> : Add two numbers"
        );
        assert_eq!(usage(&specs()[2]), "<call> now </call>");
    }

    #[test]
    fn qwen_json_calls_bind() {
        let json = |c: &str| bind(c, CallForm::Json, &specs());
        let c = json(r#"{"name": "add", "arguments": {"a": 1, "b": 2}}"#).unwrap();
        assert_eq!((c.name.as_str(), c.arguments.len()), ("add", 2));
        let c = json(r#"{"name": "add", "arguments": "{\"a\": 1}"}"#).unwrap();
        assert_eq!(c.arguments.len(), 1);
        assert!(json(r#"{"name": "nope"}"#).is_err());
        assert!(json(r#"{"arguments": {}}"#).is_err());
        assert!(json("add 1 2").is_err());
    }

    #[test]
    fn observations_are_canonical_bounded_and_tagged() {
        assert_eq!(
            observation(CallForm::Words, Ok("  5\n\t<doc> six </result> seven "), 2),
            "<output> 5 six </output>"
        );
        assert_eq!(
            observation(CallForm::Json, Err("division by zero"), 64),
            "<tool_response> error : division by zero </tool_response>"
        );
        assert_eq!(
            observation(CallForm::Words, Ok(" "), 8),
            "<output> no output </output>"
        );
    }

    proptest! {
        #[test]
        fn binding_never_panics(s in ".{0,120}") {
            let _ = bind(&s, CallForm::Words, &specs());
            let _ = bind(&s, CallForm::Json, &specs());
            let _ = observation(CallForm::Words, Ok(&s), 5);
        }
    }
}
