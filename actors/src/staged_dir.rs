//! Directories written whole or not at all. A checkpoint is several files (weights, optimiser
//! state, progress); a process killed while writing them in place leaves a directory that looks
//! like a checkpoint and is not one — a truncated optimiser state, or weights with no progress,
//! read back as "step 0". So a directory is written under a staging name beside its target,
//! every file and the directory are synced, and only then is it renamed into place; names that
//! start with a dot are never read as checkpoints, so a kill at any moment leaves either the old
//! directory or the new one.
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

/// The staging directory for `target` (`.staging-<name>` beside it).
fn staging_path(target: &Path) -> PathBuf {
    sibling(target, ".staging-")
}

/// Where a replaced directory waits while its successor is renamed in.
fn replaced_path(target: &Path) -> PathBuf {
    sibling(target, ".replaced-")
}

fn sibling(target: &Path, prefix: &str) -> PathBuf {
    let name = target
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    target.with_file_name(format!("{prefix}{name}"))
}

/// Writes directory `target` atomically: `fill` writes the files into an empty staging
/// directory; then every file and the directory are synced and the directory renamed to
/// `target` (an existing `target` is replaced). If `fill` fails, `target` is untouched.
pub fn write_dir<E: From<String>>(
    target: &Path,
    fill: impl FnOnce(&Path) -> Result<(), E>,
) -> Result<(), E> {
    let io = |what: &str, p: &Path, e: io::Error| E::from(format!("{what} {}: {e}", p.display()));
    let staging = staging_path(target);
    let parent = target.parent().unwrap_or(Path::new("."));
    fs::create_dir_all(parent).map_err(|e| io("creating", parent, e))?;
    if staging.exists() {
        // Left by a write that was killed: never installed, so never read.
        fs::remove_dir_all(&staging).map_err(|e| io("removing", &staging, e))?;
    }
    fs::create_dir(&staging).map_err(|e| io("creating", &staging, e))?;
    if let Err(e) = fill(&staging) {
        let _ = fs::remove_dir_all(&staging);
        return Err(e);
    }
    sync_tree(&staging).map_err(|e| io("syncing", &staging, e))?;
    let replaced = replaced_path(target);
    if target.exists() {
        if replaced.exists() {
            fs::remove_dir_all(&replaced).map_err(|e| io("removing", &replaced, e))?;
        }
        fs::rename(target, &replaced).map_err(|e| io("moving aside", target, e))?;
    }
    fs::rename(&staging, target).map_err(|e| io("installing", target, e))?;
    sync_dir(parent).map_err(|e| io("syncing", parent, e))?;
    if replaced.exists() {
        fs::remove_dir_all(&replaced).map_err(|e| io("removing", &replaced, e))?;
    }
    Ok(())
}

/// Puts back a directory that a kill left moved aside (killed between the two renames of
/// [`write_dir`]): the replaced directory is whole, its successor never arrived.
pub fn recover(target: &Path) -> io::Result<()> {
    let replaced = replaced_path(target);
    if replaced.exists() && !target.exists() {
        fs::rename(&replaced, target)?;
    }
    Ok(())
}

/// Puts back every directory under `parent` that a kill left moved aside.
pub fn recover_all(parent: &Path) -> io::Result<()> {
    let Ok(entries) = fs::read_dir(parent) else {
        return Ok(());
    };
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if let Some(orig) = name.strip_prefix(".replaced-") {
            recover(&parent.join(orig))?;
        }
    }
    Ok(())
}

fn sync_tree(dir: &Path) -> io::Result<()> {
    for e in fs::read_dir(dir)? {
        let e = e?;
        if e.file_type()?.is_file() {
            fs::File::open(e.path())?.sync_all()?;
        }
    }
    sync_dir(dir)
}

fn sync_dir(dir: &Path) -> io::Result<()> {
    fs::File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failed_fill_leaves_the_old_directory_and_no_staging() {
        let tmp = tempfile::tempdir().unwrap();
        let target = tmp.path().join("7");
        write_dir::<String>(&target, |d| {
            fs::write(d.join("a"), b"old").map_err(|e| e.to_string())
        })
        .unwrap();
        let r = write_dir::<String>(&target, |d| {
            fs::write(d.join("a"), b"new").map_err(|e| e.to_string())?;
            Err("disk full".into())
        });
        assert_eq!(r.unwrap_err(), "disk full");
        assert_eq!(fs::read(target.join("a")).unwrap(), b"old");
        assert!(!staging_path(&target).exists());
        write_dir::<String>(&target, |d| {
            fs::write(d.join("b"), b"new").map_err(|e| e.to_string())
        })
        .unwrap();
        assert!(!target.join("a").exists(), "replaced whole");
        assert_eq!(fs::read(target.join("b")).unwrap(), b"new");
    }

    #[test]
    fn a_kill_between_the_renames_is_put_back() {
        let tmp = tempfile::tempdir().unwrap();
        let target = tmp.path().join("3");
        fs::create_dir(replaced_path(&target)).unwrap();
        fs::write(replaced_path(&target).join("a"), b"whole").unwrap();
        recover_all(tmp.path()).unwrap();
        assert_eq!(fs::read(target.join("a")).unwrap(), b"whole");
    }
}
