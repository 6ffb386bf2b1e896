//! Prints the models benchmark table: `cargo run --release -p mgrpo-models --example bench_models
//! [-- tiny,small [flex|tch [cpu|cuda:0]]]`. `mgrpo bench models` is the CLI front end.
use mgrpo_models::DeviceSpec;
use mgrpo_models::bench::{BenchOptions, format_table, run_bench};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut options = BenchOptions::default();
    if let Some(presets) = args.first() {
        options.presets = presets.split(',').map(str::to_string).collect();
    }
    if let Some(backend) = args.get(1) {
        let device = args.get(2).map_or("cpu", String::as_str);
        options.device = DeviceSpec::parse(backend, device)?;
    }
    // BENCH_BATCHES=1,8 picks sampling batch sizes ("" skips sampling); BENCH_REPEATS=n.
    if let Ok(batches) = std::env::var("BENCH_BATCHES") {
        options.batch_sizes = batches
            .split(',')
            .filter_map(|b| b.trim().parse().ok())
            .collect();
    }
    if let Some(repeats) = std::env::var("BENCH_REPEATS")
        .ok()
        .and_then(|r| r.parse().ok())
    {
        options.repeats = repeats;
    }
    if let Ok(threads) = std::env::var("RAYON_NUM_THREADS") {
        eprintln!("RAYON_NUM_THREADS={threads}");
    }
    let rows = run_bench(&options)?;
    print!("{}", format_table(&rows));
    Ok(())
}
