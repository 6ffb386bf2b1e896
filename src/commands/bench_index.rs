//! `mgrpo bench index`: the corpus tools at scale — how fast a generated corpus of N documents
//! is indexed (documents/s, the tantivy index a run builds at start), and the latency of
//! `search` over it (p50 / p99 of seeded three-word queries). The corpus is synthetic: seeded
//! words of a fixed vocabulary, five sentences a document, so the figures depend on size only.
//! It also times the index cache (`task.index_cache`): saving the built index, and opening it
//! again from the cache instead of building it.
use std::time::Instant;

use anyhow::Result;
use mgrpo_env::Tools;
use mgrpo_env::corpus::Document;
use mgrpo_env::search::index_cache::IndexSource;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// Words of the synthetic corpus.
const WORDS: usize = 20_000;

/// Runs `mgrpo bench index`.
pub fn index(docs: usize, queries: usize, json: bool) -> Result<()> {
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    let word = |rng: &mut ChaCha8Rng| format!("w{}", rng.random_range(0..WORDS));
    let corpus: Vec<Document> = (0..docs)
        .map(|i| Document {
            id: format!("d{i}"),
            title: format!("doc {i}"),
            sentences: (0..5)
                .map(|_| {
                    let mut s: Vec<String> = (0..10).map(|_| word(&mut rng)).collect();
                    s.push(".".into());
                    s.join(" ")
                })
                .collect(),
        })
        .collect();
    let cache = tempfile::tempdir()?;
    let t0 = Instant::now();
    let (_, built, _) = Tools::cached(corpus.clone(), [3, 16, 60], cache.path())?;
    let build_and_save_s = t0.elapsed().as_secs_f64();
    let t0 = Instant::now();
    let (tools, reused, _) = Tools::cached(corpus.clone(), [3, 16, 60], cache.path())?;
    let cached_open_s = t0.elapsed().as_secs_f64();
    anyhow::ensure!(
        (built, reused) == (IndexSource::Built, IndexSource::Reused),
        "the index cache was not used ({built:?}, {reused:?})"
    );
    let t0 = Instant::now();
    let tools_in_ram = Tools::new(corpus, 3, 16, 60)?;
    let index_s = t0.elapsed().as_secs_f64();
    drop(tools_in_ram);
    let mut latencies: Vec<f64> = (0..queries)
        .map(|_| {
            let q = format!("{} {} {}", word(&mut rng), word(&mut rng), word(&mut rng));
            let t = Instant::now();
            std::hint::black_box(tools.search(&q));
            t.elapsed().as_secs_f64() * 1e3
        })
        .collect();
    latencies.sort_by(f64::total_cmp);
    let pct = |p: f64| latencies[((latencies.len() - 1) as f64 * p).round() as usize];
    let row = serde_json::json!({
        "documents": docs,
        "passages": docs * 5,
        "index_s": index_s,
        "documents_per_s": docs as f64 / index_s,
        "queries": queries,
        "search_p50_ms": pct(0.5),
        "search_p99_ms": pct(0.99),
        "build_and_save_s": build_and_save_s,
        "cached_open_s": cached_open_s,
    });
    if json {
        println!("{row}");
    } else {
        println!(
            "indexed {docs} documents ({} passages) in {index_s:.2} s: {:.0} documents/s; \
             search over {queries} queries: p50 {:.3} ms, p99 {:.3} ms; \
             index cache: build and save {build_and_save_s:.2} s, open from the cache {cached_open_s:.2} s",
            docs * 5,
            docs as f64 / index_s,
            pct(0.5),
            pct(0.99)
        );
    }
    Ok(())
}
