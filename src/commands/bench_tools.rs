//! `mgrpo bench tools`: what a sub-agent's MCP tool call costs — one server's start (spawn, MCP
//! handshake, tool list) and the round trip of calls made the way the driver makes them (bind
//! the words, call over stdio, build the observation), one at a time, as p50 / p99.
//!
//! The server is `calc-mcp` (built beside `mgrpo`) unless `--server` names another; the call is
//! `add 2 3` unless `--call` says otherwise.
use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use mgrpo_actors::mcp::{CallStatus, McpTools, ToolServerConfig};
use mgrpo_env::protocol::CallForm;

/// `calc-mcp`, beside the running binary.
fn calc_mcp() -> Result<PathBuf> {
    let exe = std::env::current_exe().context("locating the mgrpo binary")?;
    let calc = exe.with_file_name("calc-mcp");
    if !calc.exists() {
        bail!(
            "{} not found: build it (`cargo build --release --bin calc-mcp`) or pass --server",
            calc.display()
        );
    }
    Ok(calc)
}

/// The `q`-quantile (nearest rank) of sorted `values`.
fn quantile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

/// Runs `mgrpo bench tools`.
pub fn tools(server: &[String], call: &str, calls: usize, json: bool) -> Result<()> {
    let config = match server.split_first() {
        None => ToolServerConfig::new("calc", &calc_mcp()?.to_string_lossy(), &[]),
        Some((command, args)) => {
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            ToolServerConfig::new("bench", command, &args)
        }
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let (start_ms, mut micros, observation) = rt.block_on(async {
        let t = Instant::now();
        let tools = McpTools::start(std::slice::from_ref(&config)).await?;
        let start_ms = t.elapsed().as_secs_f64() * 1e3;
        // A few calls first: the server's and the client's first-call costs are not the trip.
        let first = tools.run(call, CallForm::Words).await;
        if first.status != CallStatus::Ok {
            bail!("`{call}` does not succeed: {}", first.observation);
        }
        for _ in 0..10 {
            tools.run(call, CallForm::Words).await;
        }
        let mut micros = Vec::with_capacity(calls);
        for _ in 0..calls {
            let t = Instant::now();
            let u = tools.run(call, CallForm::Words).await;
            micros.push(t.elapsed().as_secs_f64() * 1e6);
            if u.status != CallStatus::Ok {
                bail!("call failed during the bench: {}", u.observation);
            }
        }
        tools.shutdown().await;
        Ok::<_, anyhow::Error>((start_ms, micros, first.observation))
    })?;
    micros.sort_by(f64::total_cmp);
    let p50 = quantile(&micros, 0.5);
    let p99 = quantile(&micros, 0.99);
    let mean = micros.iter().sum::<f64>() / micros.len().max(1) as f64;
    if json {
        println!(
            "{}",
            serde_json::json!({
                "server": config.mcp.command, "call": call, "calls": calls,
                "start_ms": start_ms, "p50_us": p50, "p99_us": p99, "mean_us": mean,
                "observation": observation,
            })
        );
    } else {
        println!("MCP tool call: `{call}` on {}", config.mcp.command);
        println!("{:<44} {:>12}", "measure", "value");
        println!(
            "{:<44} {:>9.1} ms",
            "server start (spawn, handshake, tool list)", start_ms
        );
        println!(
            "{:<44} {:>9.0} µs",
            format!("round trip p50 ({calls} calls, one at a time)"),
            p50
        );
        println!("{:<44} {:>9.0} µs", "round trip p99", p99);
        println!("{:<44} {:>9.0} µs", "round trip mean", mean);
        println!("observation: {observation}");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_are_nearest_rank() {
        let v: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(quantile(&v, 0.5), 50.0);
        assert_eq!(quantile(&v, 0.99), 99.0);
        assert_eq!(quantile(&v[..1], 0.99), 1.0);
        assert!(quantile(&[], 0.5).is_nan());
    }
}
