//! A role's tokenizer is fixed for the run: weights from a checkpoint, a model directory or a
//! Hugging Face folder are refused unless they carry the run's `tokenizer.json`.

/// Refuses weights whose tokenizer is not the run's: a role's tokenizer is fixed for the run
/// (its trajectories, the protocol's token ids and the other role's statistics depend on it).
pub fn same_tokenizer(found: &[u8], run: &str, what: &str) -> Result<(), String> {
    if found == run.as_bytes() {
        return Ok(());
    }
    let vocab = |bytes: &[u8]| {
        serde_json::from_slice::<serde_json::Value>(bytes)
            .ok()
            .and_then(|v| v["model"]["vocab"].as_object().map(|m| m.len()))
    };
    let describe = |n: Option<usize>| n.map_or("unreadable".to_string(), |n| format!("{n} tokens"));
    Err(format!(
        "{what} has another tokenizer than the run's (vocabulary {} vs the run's {}): a role's tokenizer is fixed for the run",
        describe(vocab(found)),
        describe(vocab(run.as_bytes()))
    ))
}
