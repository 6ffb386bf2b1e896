//! `calc-mcp`: a small MCP server over stdio — arithmetic and unit conversion — for tasks whose
//! questions need a calculation, and the real server process the MCP tests and `mgrpo bench`
//! talk to. It logs to stderr only: stdout carries the protocol.
//!
//! Tools: `add`, `subtract`, `multiply`, `divide` (a b → number) and `convert` (value from to →
//! number; km m mi ft, kg lb, c f). A division by zero or an unknown unit is a tool error
//! (`isError`), which the agent sees as `error : …`.
use rmcp::handler::server::wrapper::Parameters;
use rmcp::{ServerHandler, ServiceExt, tool, tool_handler, tool_router, transport::stdio};

/// Two operands.
#[derive(serde::Deserialize, schemars::JsonSchema)]
struct Operands {
    /// The first operand.
    a: f64,
    /// The second operand.
    b: f64,
}

/// A quantity to convert.
#[derive(serde::Deserialize, schemars::JsonSchema)]
struct Conversion {
    /// The amount.
    value: f64,
    /// Its unit: km m mi ft kg lb c f.
    from: String,
    /// The unit wanted.
    to: String,
}

/// A number as one canonical word: integers without a fraction, others to 6 significant
/// decimals without trailing zeros.
fn word(x: f64) -> Result<String, String> {
    if !x.is_finite() {
        return Err("result out of range".into());
    }
    if x.fract() == 0.0 && x.abs() < 1e15 {
        return Ok(format!("{}", x as i64));
    }
    let s = format!("{x:.6}");
    Ok(s.trim_end_matches('0').trim_end_matches('.').to_string())
}

/// A unit's dimension and its factor to the dimension's base unit (metre, kilogram).
fn unit(u: &str) -> Option<(&'static str, f64)> {
    Some(match u.to_lowercase().as_str() {
        "km" => ("length", 1000.0),
        "m" => ("length", 1.0),
        "mi" => ("length", 1609.344),
        "ft" => ("length", 0.3048),
        "kg" => ("mass", 1.0),
        "lb" => ("mass", 0.453_592_37),
        "c" => ("temperature", 1.0),
        "f" => ("temperature", 1.0),
        _ => return None,
    })
}

#[derive(Clone)]
struct Calc;

#[tool_router]
impl Calc {
    #[tool(description = "Add two numbers: a + b")]
    fn add(&self, Parameters(Operands { a, b }): Parameters<Operands>) -> Result<String, String> {
        word(a + b)
    }

    #[tool(description = "Subtract two numbers: a - b")]
    fn subtract(
        &self,
        Parameters(Operands { a, b }): Parameters<Operands>,
    ) -> Result<String, String> {
        word(a - b)
    }

    #[tool(description = "Multiply two numbers: a * b")]
    fn multiply(
        &self,
        Parameters(Operands { a, b }): Parameters<Operands>,
    ) -> Result<String, String> {
        word(a * b)
    }

    #[tool(description = "Divide two numbers: a / b")]
    fn divide(
        &self,
        Parameters(Operands { a, b }): Parameters<Operands>,
    ) -> Result<String, String> {
        if b == 0.0 {
            return Err("division by zero".into());
        }
        word(a / b)
    }

    #[tool(
        description = "Convert a value between units: km m mi ft (length), kg lb (mass), c f (temperature)"
    )]
    fn convert(
        &self,
        Parameters(Conversion { value, from, to }): Parameters<Conversion>,
    ) -> Result<String, String> {
        let (Some((d1, f1)), Some((d2, f2))) = (unit(&from), unit(&to)) else {
            return Err(format!(
                "unknown unit ( units : km m mi ft kg lb c f ) in {from} {to}"
            ));
        };
        if d1 != d2 {
            return Err(format!("cannot convert {d1} to {d2}"));
        }
        if d1 == "temperature" {
            let celsius = if from.eq_ignore_ascii_case("f") {
                (value - 32.0) * 5.0 / 9.0
            } else {
                value
            };
            let out = if to.eq_ignore_ascii_case("f") {
                celsius * 9.0 / 5.0 + 32.0
            } else {
                celsius
            };
            return word(out);
        }
        word(value * f1 / f2)
    }
}

#[tool_handler]
impl ServerHandler for Calc {}

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .init();
    Calc.serve(stdio()).await?.waiting().await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_are_one_canonical_word() {
        assert_eq!(word(5.0).unwrap(), "5");
        assert_eq!(word(-2.5).unwrap(), "-2.5");
        assert_eq!(word(1.0 / 3.0).unwrap(), "0.333333");
        assert!(word(f64::INFINITY).is_err());
    }
}
