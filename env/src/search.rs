//! The tools: `search(query) → top-k (doc id, title, snippet)` ranked by BM25 with tantivy over
//! an in-RAM index of the corpus's sentences, and `open(title or id) → text`. Output sizes are
//! bounded by config. The index can be cached on disk by the corpus's content
//! ([`index_cache`]).
pub mod index_cache;

use std::collections::BTreeMap;
use std::path::Path;

use tantivy::collector::TopDocs;
use tantivy::query::{BooleanQuery, Occur, Query, TermQuery};
use tantivy::schema::{INDEXED, IndexRecordOption, STORED, Schema, TEXT, Value};
use tantivy::{Index, IndexReader, TantivyDocument, Term, doc};

use crate::corpus::Document;
use crate::protocol::CallForm;
use index_cache::IndexSource;

/// One search result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SearchHit {
    /// Document id (`d17`).
    pub doc_id: String,
    /// Document title.
    pub title: String,
    /// The matching sentence, bounded to `snippet_words` words.
    pub snippet: String,
}

/// Why the index could not be built.
#[derive(Debug, thiserror::Error)]
#[error("search index: {0}")]
pub struct SearchError(#[from] tantivy::TantivyError);

/// A tool call that cannot be served; its text is what the agent is shown.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ToolError {
    /// `open` of an id no document has.
    #[error("no document {0}")]
    UnknownDoc(String),
}

/// The search and open tools over one corpus.
pub struct Tools {
    docs: Vec<Document>,
    by_id: BTreeMap<String, usize>,
    by_title: BTreeMap<String, usize>,
    /// `(doc index, sentence index)` of each indexed passage.
    passages: Vec<(usize, usize)>,
    reader: IndexReader,
    text_field: tantivy::schema::Field,
    passage_field: tantivy::schema::Field,
    top_k: usize,
    snippet_words: usize,
    doc_words: usize,
    /// Whether the built-in `earlier` tool answers the agents' tool calls ([`crate::earlier`]).
    earlier: bool,
}

impl std::fmt::Debug for Tools {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tools")
            .field("docs", &self.docs.len())
            .field("passages", &self.passages.len())
            .finish()
    }
}

/// Lower-cased alphanumeric words, as tantivy's default tokenizer splits them.
fn query_terms(query: &str) -> Vec<String> {
    let mut terms: Vec<String> = query
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty() && w.len() < 40)
        .map(str::to_lowercase)
        .collect();
    terms.sort();
    terms.dedup();
    terms
}

/// A RAM index of `docs`' passages, in corpus order (passage `p` is the `p`-th sentence).
fn build_index(docs: &[Document]) -> Result<Index, SearchError> {
    let mut schema = Schema::builder();
    let text_field = schema.add_text_field("text", TEXT);
    let passage_field = schema.add_u64_field("passage", INDEXED | STORED);
    let index = Index::create_in_ram(schema.build());
    // One thread and one commit: a single segment, so ties break the same way every time.
    let mut writer = index.writer_with_num_threads(1, 30_000_000)?;
    let mut p = 0u64;
    for doc in docs {
        for sentence in &doc.sentences {
            writer.add_document(doc!(
                text_field => format!("{} {}", doc.title, sentence),
                passage_field => p,
            ))?;
            p += 1;
        }
    }
    writer.commit()?;
    Ok(index)
}

fn bound(text: &str, words: usize) -> String {
    text.split_whitespace()
        .take(words)
        .collect::<Vec<_>>()
        .join(" ")
}

impl Tools {
    /// Indexes the corpus (one passage per sentence, title included in each passage), in RAM.
    pub fn new(
        docs: Vec<Document>,
        top_k: usize,
        snippet_words: usize,
        doc_words: usize,
    ) -> Result<Self, SearchError> {
        let index = build_index(&docs)?;
        Self::over(docs, index, [top_k, snippet_words, doc_words])
    }

    /// [`Tools::new`], with the index read from the cache directory `cache` when it holds this
    /// corpus's, and saved there otherwise ([`index_cache`]); the tools are the same either
    /// way, hit for hit. A cache that cannot be written costs only the saving: its error is
    /// returned beside the tools, for the caller to report.
    pub fn cached(
        docs: Vec<Document>,
        [top_k, snippet_words, doc_words]: [usize; 3],
        cache: &Path,
    ) -> Result<(Self, IndexSource, Option<std::io::Error>), SearchError> {
        let entry = index_cache::entry(cache, &docs);
        let passages = docs.iter().map(|d| d.sentences.len() as u64).sum::<u64>();
        let reused = index_cache::load(&entry).filter(|index| {
            index
                .reader()
                .is_ok_and(|r| r.searcher().num_docs() == passages)
        });
        let (index, source, unsaved) = match reused {
            Some(index) => (index, IndexSource::Reused, None),
            None => {
                // An entry that is there but unreadable (cut short, another format) goes.
                let _ = std::fs::remove_dir_all(&entry);
                let index = build_index(&docs)?;
                let unsaved = index_cache::save(&index, &entry).err();
                (index, IndexSource::Built, unsaved)
            }
        };
        let tools = Self::over(docs, index, [top_k, snippet_words, doc_words])?;
        Ok((tools, source, unsaved))
    }

    /// The tools over `docs` and their committed `index`.
    fn over(
        docs: Vec<Document>,
        index: Index,
        [top_k, snippet_words, doc_words]: [usize; 3],
    ) -> Result<Self, SearchError> {
        let schema = index.schema();
        let text_field = schema.get_field("text")?;
        let passage_field = schema.get_field("passage")?;
        let passages = docs
            .iter()
            .enumerate()
            .flat_map(|(d, doc)| (0..doc.sentences.len()).map(move |s| (d, s)))
            .collect();
        let reader = index.reader()?;
        let by_id = docs
            .iter()
            .enumerate()
            .map(|(i, d)| (d.id.clone(), i))
            .collect();
        let by_title = docs
            .iter()
            .enumerate()
            .map(|(i, d)| (d.title.clone(), i))
            .collect();
        Ok(Self {
            docs,
            by_id,
            by_title,
            passages,
            reader,
            text_field,
            passage_field,
            top_k,
            snippet_words,
            doc_words,
            earlier: false,
        })
    }

    /// These tools with the built-in `earlier` tool (`[world] compare_tool`): every tool call
    /// an agent makes is then answered in process, by [`Tools::run_builtin`].
    pub fn with_earlier(mut self) -> Self {
        self.earlier = true;
        self
    }

    /// Whether tool calls are answered in process (the world's `earlier` tool) rather than by a
    /// driver's MCP servers.
    pub fn has_builtin(&self) -> bool {
        self.earlier
    }

    /// The observation of a tool call answered in process: the `earlier` tool's answer, or an
    /// error observation for a call it cannot bind (another tool, other arguments).
    pub fn run_builtin(&self, call: &str, form: CallForm) -> String {
        crate::earlier::run(call, form, self.snippet_words)
    }

    /// The documents.
    pub fn docs(&self) -> &[Document] {
        &self.docs
    }

    /// Top-k passages for `query` by BM25 (ties by corpus order). Never fails: a query with no
    /// usable word, or an index error, gives no hits.
    pub fn search(&self, query: &str) -> Vec<SearchHit> {
        let terms = query_terms(query);
        if terms.is_empty() {
            return Vec::new();
        }
        let clauses: Vec<(Occur, Box<dyn Query>)> = terms
            .iter()
            .map(|t| {
                let q: Box<dyn Query> = Box::new(TermQuery::new(
                    Term::from_field_text(self.text_field, t),
                    IndexRecordOption::WithFreqs,
                ));
                (Occur::Should, q)
            })
            .collect();
        let query = BooleanQuery::new(clauses);
        let searcher = self.reader.searcher();
        let Ok(top) = searcher.search(&query, &TopDocs::with_limit(self.top_k * 4)) else {
            return Vec::new();
        };
        let mut scored: Vec<(f32, usize)> = top
            .into_iter()
            .filter_map(|(score, addr)| {
                let doc: TantivyDocument = searcher.doc(addr).ok()?;
                let p = doc.get_first(self.passage_field)?.as_u64()? as usize;
                Some((score, p))
            })
            .collect();
        scored.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
        scored
            .into_iter()
            .take(self.top_k)
            .map(|(_, p)| {
                let (d, s) = self.passages[p];
                let doc = &self.docs[d];
                SearchHit {
                    doc_id: doc.id.clone(),
                    title: doc.title.clone(),
                    snippet: bound(&doc.sentences[s], self.snippet_words),
                }
            })
            .collect()
    }

    /// The search observation as the agent sees it (inside `<results> … </results>`):
    /// `title : snippet` per hit, hits separated by ` | `, or `no results`. Documents are shown
    /// and opened by title, whose words are entity-name words the models know (a per-document
    /// id would be a token of its own that held-out questions alone would use).
    pub fn search_text(&self, query: &str) -> String {
        let hits = self.search(query);
        if hits.is_empty() {
            return "no results".to_string();
        }
        hits.iter()
            .map(|h| format!("{} : {}", h.title, h.snippet))
            .collect::<Vec<_>>()
            .join(" | ")
    }

    /// The document with this title or id (`title : text`), bounded to `doc_words` words.
    /// Whitespace in `doc` is normalised first.
    pub fn open(&self, doc: &str) -> Result<String, ToolError> {
        let key = bound(doc, usize::MAX);
        let Some(&d) = self.by_title.get(&key).or_else(|| self.by_id.get(&key)) else {
            return Err(ToolError::UnknownDoc(bound(doc, 4)));
        };
        let d = &self.docs[d];
        Ok(bound(
            &format!("{} : {}", d.title, d.text()),
            self.doc_words,
        ))
    }

    /// The open observation (inside `<doc> … </doc>`): the document, or the error's text
    /// (`no document <first words>`).
    pub fn open_text(&self, doc: &str) -> String {
        self.open(doc).unwrap_or_else(|e| e.to_string())
    }
}
