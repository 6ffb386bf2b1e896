//! One function per subcommand. Each loads what it needs and calls into the library crates.
mod plot;

use anyhow::{Context, Result};

use crate::cli::{BenchCommand, Cli, Command, StoreCommand};

/// Runs the parsed command line.
pub fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Store {
            command: StoreCommand::Dump { run, json: _ },
        } => store_dump(&run),
        Command::Plot(args) => {
            plot::plot(&args.runs, &args.out)?;
            println!("wrote {}", args.out.display());
            Ok(())
        }
        Command::World(_)
        | Command::Eval(_)
        | Command::Algo(_)
        | Command::Warmup(_)
        | Command::Train(_)
        | Command::Bench {
            command: BenchCommand::Models { .. },
        } => anyhow::bail!("not built yet"),
    }
}

fn store_dump(run: &std::path::Path) -> Result<()> {
    let path = run.join("store");
    anyhow::ensure!(
        path.is_dir(),
        "{} has no store/ (is it a run directory?)",
        run.display()
    );
    let store = mgrpo_store::Store::open(&path)
        .with_context(|| format!("opening the store of {}", run.display()))?;
    use std::io::Write;
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    for value in store.dump()? {
        writeln!(out, "{value}")?;
    }
    Ok(())
}
