//! `mgrpo` — the command line of the M-GRPO system. Thin: it parses arguments, loads the
//! config and calls into the library crates; every error reaches the user through `anyhow`
//! with the file and key that caused it.
mod allocator;
mod chaos;
mod cli;
mod commands;
mod dashboard;
mod experiment;
mod pipe;
mod tensorboard;

use clap::Parser;

fn main() -> std::process::ExitCode {
    allocator::configure();
    pipe::quiet_on_broken_pipe();
    let cli = cli::Cli::parse();
    // A cluster node reports peers joining and leaving (info); ractor_cluster's own session
    // chatter is left to -vv.
    let node = matches!(cli.command, cli::Command::Node(_));
    // `chaos` loses peers on purpose: its control client's warnings would only be noise.
    let quiet = matches!(cli.command, cli::Command::Chaos(_));
    init_tracing(cli.verbose, node, quiet);
    match commands::run(cli) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(err) if pipe::is_broken_pipe(&err) => std::process::ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn init_tracing(verbose: u8, node: bool, quiet: bool) {
    let default = match (verbose, node) {
        (0, false) if quiet => "error",
        (0, false) => "warn,ractor_cluster=error",
        (0, true) | (1, _) => {
            "info,ractor=warn,ractor_cluster=error,ractor_cluster::net=warn,tantivy=warn"
        }
        _ => "debug",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_env("MGRPO_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr)
        .init();
}
