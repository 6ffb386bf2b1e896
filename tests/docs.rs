//! The docs run as written: every shell command of README.md and docs/*.md is run against the
//! binary, so a renamed command, flag, config key or example file fails here, not in a reader's
//! first hour. And every test docs/semantics.md cites as a promise's proof exists.
//!
//! The convention, for whoever writes the docs:
//!
//! - A ```` ```sh ```` block is run. Its lines are one bash script (`set -euo pipefail`): the
//!   commands in order, a failing one fails the test with the file and line of its block.
//! - A ```` ```sh ```` block whose first line is `# not run: REASON` is skipped — for what needs a
//!   live cluster, libtorch, a GPU or minutes. A synopsis with placeholders (`--model DIR`,
//!   `[--json]`) is not a command: fence it ```` ```text ````.
//! - The blocks of one file run in order in one fresh directory (a later block may use a run an
//!   earlier one trained, as a reader following the page would), holding copies of
//!   `examples/`, `docs/examples/`, `bench/arch/` and the tokenizer fixture under
//!   `models/tests/fixtures/hf/`, and as `cluster.toml` examples/tiny.toml, so every command
//!   that reads the default config trains the tiny world in seconds.
//! - `mgrpo` is the binary under test, and so is `cargo run --release --`; other `cargo` lines
//!   (build, test) are the test's own business and skipped. `--steps N` becomes `--steps 2`:
//!   the commands are checked, not the figures.
use std::path::{Path, PathBuf};
use std::process::Command;

/// The repository root.
fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// One ```` ```sh ```` block: where it starts and its lines.
#[derive(Debug)]
struct Block {
    line: usize,
    lines: Vec<String>,
}

impl Block {
    /// `Some(reason)` when its first line opts it out.
    fn not_run(&self) -> Option<&str> {
        self.lines
            .first()
            .and_then(|l| l.trim().strip_prefix("# not run:"))
            .map(str::trim)
    }
}

/// The ```` ```sh ```` blocks of a Markdown text, in order.
fn sh_blocks(markdown: &str) -> Vec<Block> {
    let mut blocks = Vec::new();
    let mut open: Option<Block> = None;
    let mut in_other_fence = false;
    for (i, line) in markdown.lines().enumerate() {
        let fence = line.trim_start().strip_prefix("```");
        match (fence, open.as_mut()) {
            (Some(_), Some(_)) => blocks.extend(open.take()),
            (Some(_), None) if in_other_fence => in_other_fence = false,
            (Some("sh"), None) => {
                open = Some(Block {
                    line: i + 1,
                    lines: Vec::new(),
                })
            }
            (Some(_), None) => in_other_fence = true,
            (None, Some(b)) => b.lines.push(line.to_string()),
            (None, None) => {}
        }
    }
    blocks
}

/// The script a block runs: `cargo run --release --` is the binary, other cargo lines are
/// skipped, step counts are tiny.
fn script(block: &Block) -> String {
    let mut out = String::from("set -euo pipefail\n");
    for line in &block.lines {
        let line = line.replace("cargo run --release -- ", "mgrpo ");
        if line.trim_start().starts_with("cargo ") {
            out.push_str(&format!("# skipped: {line}\n"));
            continue;
        }
        out.push_str(&tiny_steps(&line));
        out.push('\n');
    }
    out
}

/// `--steps N` → `--steps 2`.
fn tiny_steps(line: &str) -> String {
    let mut words: Vec<&str> = line.split(' ').collect();
    for i in 1..words.len() {
        if words[i - 1] == "--steps" && words[i].parse::<u64>().is_ok() {
            words[i] = "2";
        }
    }
    words.join(" ")
}

/// A fresh directory laid out as the convention says.
fn workdir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for sub in [
        "examples",
        "docs/examples",
        "bench/arch",
        "models/tests/fixtures/hf/tokenizer",
    ] {
        copy_dir(&root().join(sub), &dir.path().join(sub));
    }
    std::fs::copy(
        root().join("examples/tiny.toml"),
        dir.path().join("cluster.toml"),
    )
    .unwrap();
    dir
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let target = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &target);
        } else {
            std::fs::copy(e.path(), target).unwrap();
        }
    }
}

/// README.md and docs/*.md.
fn pages() -> Vec<PathBuf> {
    let mut pages: Vec<PathBuf> = std::fs::read_dir(root().join("docs"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "md"))
        .collect();
    pages.sort();
    pages.insert(0, root().join("README.md"));
    pages
}

/// Runs the page's blocks; the failures, and how many blocks ran.
fn run_page(page: &Path) -> (Vec<String>, usize) {
    let name = page.strip_prefix(root()).unwrap().display().to_string();
    let blocks = sh_blocks(&std::fs::read_to_string(page).unwrap());
    if blocks.iter().all(|b| b.not_run().is_some()) {
        return (Vec::new(), 0);
    }
    let dir = workdir();
    let bin = PathBuf::from(env!("CARGO_BIN_EXE_mgrpo"));
    let path = format!(
        "{}:{}",
        bin.parent().unwrap().display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let mut failures = Vec::new();
    let mut ran = 0;
    for block in blocks.iter().filter(|b| b.not_run().is_none()) {
        let script = script(block);
        let t = std::time::Instant::now();
        let out = Command::new("bash")
            .arg("-c")
            .arg(&script)
            .current_dir(dir.path())
            .env("PATH", &path)
            .env_remove("MGRPO_LOG")
            .output()
            .unwrap();
        println!(
            "{name}:{}: {:.1} s, exit {}",
            block.line,
            t.elapsed().as_secs_f64(),
            out.status
        );
        ran += 1;
        if !out.status.success() {
            let tail = |b: &[u8]| {
                let s = String::from_utf8_lossy(b);
                let lines: Vec<&str> = s.lines().collect();
                lines[lines.len().saturating_sub(15)..].join("\n")
            };
            failures.push(format!(
                "{name}:{}: the block failed ({}):\n{script}\n--- stdout\n{}\n--- stderr\n{}",
                block.line,
                out.status,
                tail(&out.stdout),
                tail(&out.stderr)
            ));
        }
    }
    (failures, ran)
}

#[test]
fn every_sh_block_of_the_readme_and_the_docs_runs_as_written() {
    let mut failures = Vec::new();
    let mut ran = std::collections::BTreeMap::new();
    for page in pages() {
        let (f, n) = run_page(&page);
        failures.extend(f);
        ran.insert(page.file_name().unwrap().to_string_lossy().into_owned(), n);
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
    // A parser that found nothing would pass above: the README's own commands must have run.
    assert!(ran["README.md"] >= 3, "blocks run per page: {ran:?}");
}

#[test]
fn the_convention_is_read_as_documented() {
    let md = "text\n```sh\nmgrpo a --steps 200\ncargo build --release\n```\n\
              ```text\nmgrpo hf tokenize --model DIR\n```\n\
              ```sh\n# not run: needs a cluster\nmgrpo node\n```\n";
    let blocks = sh_blocks(md);
    assert_eq!(blocks.len(), 2, "{blocks:?}");
    assert_eq!((blocks[0].line, blocks[0].not_run()), (2, None));
    assert_eq!(
        script(&blocks[0]),
        "set -euo pipefail\nmgrpo a --steps 2\n# skipped: cargo build --release\n"
    );
    assert_eq!(blocks[1].not_run(), Some("needs a cluster"));
}

/// Identifiers docs/semantics.md cites as tests: backticked `snake_case` names of four words or
/// more (`path::name` cites name in that file).
fn cited_tests(semantics: &str) -> Vec<(Option<String>, String)> {
    let mut out = Vec::new();
    for span in semantics.split('`').skip(1).step_by(2) {
        let (file, name) = match span.rsplit_once("::") {
            Some((f, n)) if f.ends_with(".rs") => (Some(f.to_string()), n),
            _ => (None, span),
        };
        let snake = name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
        if snake && name.matches('_').count() >= 3 {
            out.push((file, name.to_string()));
        }
    }
    out
}

/// Every `.rs` file of the workspace outside target/.
fn sources(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        let name = p.file_name().unwrap().to_string_lossy();
        if p.is_dir() && name != "target" && !name.starts_with('.') {
            sources(&p, out);
        } else if name.ends_with(".rs") {
            out.push(p);
        }
    }
}

/// Whether `text` defines a test function `name` (a `#[…test…]` attribute within the lines
/// above it).
fn defines_test(text: &str, name: &str) -> bool {
    let lines: Vec<&str> = text.lines().collect();
    lines.iter().enumerate().any(|(i, l)| {
        l.contains(&format!("fn {name}("))
            && lines[i.saturating_sub(4)..i]
                .iter()
                .any(|a| a.trim_start().starts_with("#[") && a.contains("test"))
    })
}

#[test]
fn every_test_docs_semantics_cites_exists() {
    let semantics = std::fs::read_to_string(root().join("docs/semantics.md")).unwrap();
    let cited = cited_tests(&semantics);
    assert!(cited.len() >= 10, "too few cited tests found: {cited:?}");
    let mut files = Vec::new();
    sources(root(), &mut files);
    let texts: Vec<(PathBuf, String)> = files
        .into_iter()
        .map(|p| {
            let t = std::fs::read_to_string(&p).unwrap();
            (p, t)
        })
        .collect();
    let missing: Vec<String> = cited
        .iter()
        .filter(|(file, name)| {
            !texts
                .iter()
                .any(|(p, t)| file.as_ref().is_none_or(|f| p.ends_with(f)) && defines_test(t, name))
        })
        .map(|(file, name)| match file {
            Some(f) => format!("{f}::{name}"),
            None => name.clone(),
        })
        .collect();
    assert!(
        missing.is_empty(),
        "docs/semantics.md cites tests that do not exist: {missing:?}"
    );
}
