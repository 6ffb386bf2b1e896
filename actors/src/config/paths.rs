//! Paths in a config file are relative to the file that names them.
//!
//! One rule for every path a config names (`run.root`, `models.ROLE.hf`, `task.questions`,
//! `task.corpus`, `task.demonstrations`, the scorers' `dir`, the tool servers' `command` and `cwd`, `cluster.cookie_file`,
//! `cluster.tls.*`), the one cargo and docker-compose follow, and the one a chaos plan's
//! `config` follows: a config means the same wherever the command runs from. [`Config::load`]
//! makes them absolute, so the copy a run directory records means the same too. A key the file
//! leaves out keeps its default (`run.root = "runs"`), relative to the current directory: the
//! file did not name it, so it does not move it.
use std::path::{Path, PathBuf};

use super::Config;
use super::task::RewardSpec;

impl Config {
    /// Joins every relative path the config's file named to `base`, the file's directory;
    /// `names_root`: whether the file sets `run.root` (the other paths have no default).
    pub fn resolve_paths(&mut self, base: &Path, names_root: bool) {
        let join = |p: &mut PathBuf| {
            if p.is_relative() && !p.as_os_str().is_empty() {
                *p = base.join(&*p);
            }
        };
        if names_root {
            join(&mut self.run.root);
        }
        for m in [&mut self.models.main, &mut self.models.sub] {
            if let Some(hf) = &mut m.hf {
                join(hf);
            }
        }
        if let Some(task) = &mut self.task {
            join(&mut task.questions);
            join(&mut task.corpus);
            if let Some(d) = &mut task.demonstrations {
                join(d);
            }
            if let Some(d) = &mut task.index_cache {
                join(d);
            }
            let reward = match &mut task.reward {
                RewardSpec::Command(c) => Some(c),
                RewardSpec::Metric(_) => None,
            };
            for c in reward.into_iter().chain(task.expert.as_mut()) {
                // A scorer runs where the file is unless it names its own directory.
                c.dir = base.join(&c.dir);
            }
            for t in &mut task.tools {
                t.resolve_paths(base);
            }
        }
        if let Some(p) = &mut self.cluster.cookie_file {
            join(p);
        }
        if let Some(tls) = &mut self.cluster.tls {
            for p in [&mut tls.cert, &mut tls.key, &mut tls.ca] {
                join(p);
            }
        }
    }
}

/// Whether config text sets `run.root`.
pub(super) fn names_root(text: &str) -> bool {
    text.parse::<toml::Table>()
        .ok()
        .and_then(|t| t.get("run")?.get("root").cloned())
        .is_some()
}

/// The directory a config file's relative paths start from: its parent, made absolute.
pub(super) fn base_of(file: &Path) -> PathBuf {
    let parent = match file.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    std::path::absolute(parent).unwrap_or_else(|_| parent.to_path_buf())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_relative_path_is_joined_to_the_files_directory_and_absolute_ones_kept() {
        let text = "[run]\nroot = \"runs\"\n[models.main]\nhf = \"models/q3\"\n\
                    [models.sub]\nhf = \"/abs/q3\"\n[cluster]\ncookie_file = \"cookie\"\n\
                    [cluster.tls]\ncert = \"c.pem\"\nkey = \"/k.pem\"\nca = \"ca.pem\"\n\
                    server_name = \"x\"\n";
        let mut c = Config::parse(text, Path::new("lab/cluster.toml")).unwrap();
        assert!(names_root(text));
        c.resolve_paths(Path::new("/home/u/lab"), names_root(text));
        let base = Path::new("/home/u/lab");
        assert_eq!(c.run.root, base.join("runs"));
        assert_eq!(c.models.main.hf.as_deref(), Some(&*base.join("models/q3")));
        assert_eq!(c.models.sub.hf.as_deref(), Some(Path::new("/abs/q3")));
        assert_eq!(
            c.cluster.cookie_file.as_deref(),
            Some(&*base.join("cookie"))
        );
        let tls = c.cluster.tls.unwrap();
        assert_eq!(
            (tls.cert, tls.key, tls.ca),
            (base.join("c.pem"), "/k.pem".into(), base.join("ca.pem"))
        );
        assert!(base_of(Path::new("cluster.toml")).is_absolute());
        let text = "[task]\nquestions = \"q.jsonl\"\ncorpus = \"/data/docs\"\n\
                    demonstrations = \"d.jsonl\"\nreward = { command = [\"./s.sh\"] }\n\
                    expert = { command = [\"j\"], dir = \"judges\" }\n";
        let mut c = Config::parse(text, Path::new("lab/cluster.toml")).unwrap();
        c.resolve_paths(base, false);
        let t = c.task.unwrap();
        assert_eq!(t.questions, base.join("q.jsonl"));
        assert_eq!(t.corpus, Path::new("/data/docs"));
        assert_eq!(t.demonstrations, Some(base.join("d.jsonl")));
        assert!(matches!(t.reward, RewardSpec::Command(s) if s.dir == base));
        assert_eq!(t.expert.unwrap().dir, base.join("judges"));
    }

    #[test]
    fn a_run_root_the_file_leaves_out_stays_relative_to_the_working_directory() {
        let text = "[models.main]\nhf = \"q3\"\n";
        let mut c = Config::parse(text, Path::new("lab/cluster.toml")).unwrap();
        assert!(!names_root(text));
        c.resolve_paths(Path::new("/home/u/lab"), names_root(text));
        assert_eq!(c.run.root, Path::new("runs"));
        assert_eq!(
            c.models.main.hf.as_deref(),
            Some(Path::new("/home/u/lab/q3"))
        );
    }
}
