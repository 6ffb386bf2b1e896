//! Reading a dataset's corpus: a folder of `.txt` / `.md` files (id = the path relative to the
//! folder, title = the first non-empty line, text = the rest) or a JSONL file of
//! `{"id", "title", "text"}` objects. Text is made canonical and split into sentences (the
//! passages the search tool indexes); every problem is reported with its file (and line).
use std::collections::BTreeMap;
use std::path::Path;

use serde::Deserialize;

use crate::corpus::Document;
use crate::task::jsonl::{Ids, read_lines};
use crate::task::text::{canonical, sentences};

/// One JSONL corpus line.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Line {
    id: serde_json::Value,
    #[serde(default)]
    title: Option<String>,
    text: String,
}

/// The documents of `path` (a folder or a JSONL file); problems are appended to `problems`.
pub fn read_corpus(path: &Path, problems: &mut Vec<String>) -> Vec<Document> {
    let before = problems.len();
    let mut docs = Vec::new();
    // Where each title was first seen, so that a repeated one names both places.
    let mut seen: BTreeMap<String, String> = BTreeMap::new();
    let mut add = |doc: Document, place: String, problems: &mut Vec<String>| {
        if doc.sentences.is_empty() {
            problems.push(format!("{place}: the document has no text"));
        } else if let Some(first) = seen.get(&doc.title) {
            problems.push(format!(
                "{place}: title {:?} is also {first}'s (agents open documents by title)",
                doc.title
            ));
        } else {
            seen.insert(doc.title.clone(), place);
            docs.push(doc);
        }
    };
    if path.is_dir() {
        let mut files = Vec::new();
        walk(path, path, &mut files, problems);
        files.sort();
        for rel in files {
            let file = path.join(&rel);
            let text = match std::fs::read_to_string(&file) {
                Ok(t) => t,
                Err(e) => {
                    problems.push(format!("{}: {e}", file.display()));
                    continue;
                }
            };
            let mut lines = text.lines().skip_while(|l| l.trim().is_empty());
            let title = canonical(lines.next().unwrap_or("").trim_start_matches('#'));
            let body = canonical(&lines.collect::<Vec<_>>().join("\n"));
            let doc = Document {
                id: rel.clone(),
                title,
                sentences: sentences(&body),
            };
            add(doc, file.display().to_string(), problems);
        }
    } else {
        let mut ids = Ids::default();
        for line in read_lines::<Line>(path, "corpus", problems) {
            let Some(id) = ids.take(&line.value.id, &line, problems) else {
                continue;
            };
            let (place, line) = (line.place, line.value);
            let title = canonical(line.title.as_deref().unwrap_or(&id));
            let doc = Document {
                id,
                title,
                sentences: sentences(&canonical(&line.text)),
            };
            add(doc, place, problems);
        }
    }
    if docs.is_empty() && problems.len() == before {
        problems.push(format!(
            "{}: the corpus has no documents (a folder of .txt / .md files, or a JSONL file of \
             {{\"id\", \"title\", \"text\"}})",
            path.display()
        ));
    }
    docs
}

/// The `.txt` / `.md` files below `dir`, relative to `root`, with `/` separators.
fn walk(root: &Path, dir: &Path, out: &mut Vec<String>, problems: &mut Vec<String>) {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) => {
            problems.push(format!("{}: {e}", dir.display()));
            return;
        }
    };
    for entry in entries.flatten() {
        let p = entry.path();
        if p.is_dir() {
            walk(root, &p, out, problems);
        } else if matches!(p.extension().and_then(|e| e.to_str()), Some("txt" | "md")) {
            let rel = p.strip_prefix(root).unwrap_or(&p);
            let parts: Vec<String> = rel
                .components()
                .map(|c| c.as_os_str().to_string_lossy().into_owned())
                .collect();
            out.push(parts.join("/"));
        }
    }
}
