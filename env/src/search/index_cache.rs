//! The corpus's tantivy index on disk, keyed by the corpus's content, so that a node opening the
//! same corpus again (a resumed run, another node of a cluster, another run sharing
//! `task.index_cache`) reads the index instead of building it, and a changed corpus — one
//! document, one sentence, one title — gets a new key and is built afresh.
//!
//! The index is built and searched in RAM (tantivy's `mmap` directory is not compiled in); the
//! cache holds the files of that RAM directory, written to a staging directory and renamed into
//! place whole, so a reader never sees half an index and two nodes building at once both end
//! with a complete one (the second rename loses, and its node keeps what it built). An entry
//! that cannot be read, or whose passage count is not the corpus's, is built again.
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};

use tantivy::Index;
use tantivy::directory::{Directory, RamDirectory};

use crate::corpus::Document;

/// Bumped whenever what is indexed, or how, changes: old entries are then never read.
const FORMAT: u32 = 1;

/// tantivy's own bookkeeping files, written beside the segments.
const META_FILES: [&str; 2] = ["meta.json", ".managed.json"];

/// Where an index came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IndexSource {
    /// Built from the documents (and, with a cache, saved there).
    Built,
    /// Read from the cache.
    Reused,
}

/// The cache entry of `docs`: `dir/<key>`, the key a hash of every document's id, title and
/// sentences (length-prefixed, in order), the format and tantivy's version.
pub fn entry(dir: &Path, docs: &[Document]) -> PathBuf {
    // SipHash with fixed keys: stable for a given Rust release; a new one at worst rebuilds.
    let mut h = std::hash::DefaultHasher::new();
    (FORMAT, tantivy::version_string()).hash(&mut h);
    for d in docs {
        (&d.id, &d.title, &d.sentences).hash(&mut h);
    }
    let mut h2 = std::hash::DefaultHasher::new();
    (h.finish(), docs.len()).hash(&mut h2);
    dir.join(format!("{:016x}{:016x}", h.finish(), h2.finish()))
}

/// The index saved in `entry`, if it is there and whole.
pub fn load(entry: &Path) -> Option<Index> {
    let ram = RamDirectory::create();
    for file in std::fs::read_dir(entry).ok()? {
        let file = file.ok()?;
        let bytes = std::fs::read(file.path()).ok()?;
        ram.atomic_write(Path::new(&file.file_name()), &bytes)
            .ok()?;
    }
    Index::open(ram).ok()
}

/// Saves `index` (a RAM index, committed) as `entry`: its files to a staging directory beside
/// it, then one rename. An entry that appeared meanwhile is kept.
pub fn save(index: &Index, entry: &Path) -> std::io::Result<()> {
    let parent = entry.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(parent)?;
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    let staged = parent.join(format!(".staging-{}-{nanos}", std::process::id()));
    std::fs::create_dir(&staged)?;
    let written = write_files(index, &staged);
    let installed = written.and_then(|()| std::fs::rename(&staged, entry));
    if let Err(e) = installed {
        let _ = std::fs::remove_dir_all(&staged);
        if !entry.is_dir() {
            return Err(e);
        }
    }
    Ok(())
}

/// Writes the files of `index` into `dir`.
fn write_files(index: &Index, dir: &Path) -> std::io::Result<()> {
    let managed = index.directory();
    let mut files: Vec<PathBuf> = managed.list_managed_files().into_iter().collect();
    files.extend(META_FILES.iter().map(PathBuf::from));
    files.sort();
    files.dedup();
    for f in files {
        // A managed file already deleted (a merged-away segment) is not part of the index.
        let Ok(bytes) = managed.atomic_read(&f) else {
            continue;
        };
        std::fs::write(dir.join(&f), bytes)?;
    }
    Ok(())
}
