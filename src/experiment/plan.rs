//! A study's plan: variants × seeds × a grid of config overrides × optional sets of overrides
//! applied together, each combination one run.
//!
//! ```toml
//! name = "baselines"
//! config = "../../cluster.toml"   # relative to this file
//! variants = ["mgrpo", "frozen-sub", "shared", "single"]
//! seeds = [1, 2, 3]
//! steps = 200                     # optional: overrides train.steps
//! parallel = 1                    # runs at a time (each gets cores / parallel threads)
//! [overrides]                     # optional: every combination of these values is a run
//! "models.main.lr" = [1e-4, 3e-4]
//! [[sets]]                        # optional: alternatives, each applied as a whole
//! [[sets]]                        # (an empty set: the config's own values)
//! "algo.token_level" = true
//! "algo.epochs" = 2
//! ```
//!
//! Why sets as well as a grid: a grid varies keys independently, but some settings only make
//! sense together (both roles' rates, a schedule and its length); a set keeps them one
//! alternative instead of every cross of their values.
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use mgrpo_algo::Algo;
use serde::Deserialize;

/// The longest run directory name [`RunSpec::dir_name`] gives.
pub const MAX_DIR_NAME: usize = 200;

/// A stable 32-bit hash of `text` (the same on every machine and run), for directory names
/// that stand for a longer text: a warm start's key, a cut run name.
pub fn name_hash(text: &str) -> u32 {
    text.bytes()
        .fold(0u64, |h, b| mgrpo_algo::derive_seed(h, &[u64::from(b)])) as u32
}

/// The plan file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Plan {
    /// The study's name (its default directory: `runs/experiments/NAME`).
    pub name: String,
    /// The base config, relative to the plan file.
    pub config: PathBuf,
    /// Variants to run (`mgrpo`, `frozen-sub`, `shared`, `single`).
    pub variants: Vec<String>,
    /// Run seeds.
    pub seeds: Vec<u64>,
    /// `train.steps` for every run (default: the config's).
    #[serde(default)]
    pub steps: Option<u64>,
    /// Runs at a time.
    #[serde(default = "one")]
    pub parallel: usize,
    /// Dotted config keys and the values each takes; every combination is a run.
    #[serde(default)]
    pub overrides: BTreeMap<String, Vec<toml::Value>>,
    /// Alternatives, each a set of dotted keys applied together; every grid combination runs
    /// once with each (none: the grid alone). A set may not name a key of the grid.
    #[serde(default)]
    pub sets: Vec<BTreeMap<String, toml::Value>>,
}

fn one() -> usize {
    1
}

/// One run of a study.
#[derive(Debug, Clone, PartialEq)]
pub struct RunSpec {
    /// The variant.
    pub variant: Algo,
    /// The run seed.
    pub seed: u64,
    /// The overrides of this run (empty: the config's defaults).
    pub overrides: BTreeMap<String, toml::Value>,
}

/// Overrides as `key=value` pairs, `,`-joined (empty for none): how the table and the
/// plot label a run's group.
pub fn overrides_label(overrides: &BTreeMap<String, toml::Value>) -> String {
    overrides
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",")
}

impl RunSpec {
    /// The overrides as `key=value` pairs, `,`-joined (empty for none).
    pub fn overrides_label(&self) -> String {
        overrides_label(&self.overrides)
    }

    /// Its directory name: `VARIANT-sSEED[-key=value…]`, safe as a file name. A name past
    /// [`MAX_DIR_NAME`] bytes (many overrides; file systems refuse names over 255) keeps its
    /// start and ends in a hash of the whole, so it stays unique and the same on every run.
    pub fn dir_name(&self) -> String {
        let name = self.full_dir_name();
        if name.len() <= MAX_DIR_NAME {
            return name;
        }
        let suffix = format!("-h{:08x}", name_hash(&name));
        let mut end = MAX_DIR_NAME - suffix.len();
        while !name.is_char_boundary(end) {
            end -= 1;
        }
        format!("{}{suffix}", &name[..end])
    }

    /// [`Self::dir_name`] before shortening.
    fn full_dir_name(&self) -> String {
        let mut name = format!("{}-s{}", self.variant.name(), self.seed);
        for (k, v) in &self.overrides {
            let v: String = v
                .to_string()
                .chars()
                .map(|c| {
                    if c.is_ascii_alphanumeric() || ".-_".contains(c) {
                        c
                    } else {
                        '_'
                    }
                })
                .collect();
            name += &format!("-{k}={v}");
        }
        name
    }
}

impl Plan {
    /// Reads and checks a plan file.
    pub fn load(path: &Path) -> Result<Self> {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        let plan: Plan = toml::from_str(&text).with_context(|| format!("{}", path.display()))?;
        let mut problems = Vec::new();
        for v in &plan.variants {
            if v.parse::<Algo>().is_err() {
                problems.push(format!(
                    "variants: unknown variant {v:?} (mgrpo, frozen-sub, shared, single)"
                ));
            }
        }
        if plan.variants.is_empty() || plan.seeds.is_empty() {
            problems.push("variants and seeds must each name at least one".into());
        }
        if plan.parallel == 0 {
            problems.push("parallel must be at least 1".into());
        }
        for (k, values) in &plan.overrides {
            if values.is_empty() {
                problems.push(format!("overrides.{k:?} has no values"));
            }
        }
        for (i, set) in plan.sets.iter().enumerate() {
            for k in set.keys().filter(|k| plan.overrides.contains_key(*k)) {
                problems.push(format!(
                    "sets[{i}] names {k:?}, which [overrides] varies already"
                ));
            }
            if plan.sets[..i].contains(set) {
                problems.push(format!("sets[{i}] repeats an earlier set"));
            }
        }
        if !problems.is_empty() {
            bail!("{}: {}", path.display(), problems.join("; "));
        }
        let config = path.parent().unwrap_or(Path::new(".")).join(&plan.config);
        Ok(Plan { config, ..plan })
    }

    /// The settings every run of the plan starts from, before its variant, seed and overrides:
    /// the plan's config resolved with the binary's defaults, with the plan's own `steps`.
    pub fn base_table(&self) -> Result<toml::Table> {
        let config = mgrpo_actors::Config::load(&self.config)?;
        let mut table: toml::Table =
            toml::from_str(&config.to_toml()).context("the config as TOML")?;
        if let Some(steps) = self.steps {
            set(
                &mut table,
                "train.steps",
                toml::Value::Integer(steps as i64),
            )?;
        }
        Ok(table)
    }

    /// Every run: variants × seeds × the overrides' combinations × the sets, in that order.
    pub fn runs(&self) -> Vec<RunSpec> {
        let mut combos: Vec<BTreeMap<String, toml::Value>> = vec![BTreeMap::new()];
        for (k, values) in &self.overrides {
            combos = combos
                .into_iter()
                .flat_map(|c| {
                    values.iter().map(move |v| {
                        let mut c = c.clone();
                        c.insert(k.clone(), v.clone());
                        c
                    })
                })
                .collect();
        }
        if !self.sets.is_empty() {
            combos = combos
                .into_iter()
                .flat_map(|c| {
                    self.sets.iter().map(move |set| {
                        let mut c = c.clone();
                        c.extend(set.iter().map(|(k, v)| (k.clone(), v.clone())));
                        c
                    })
                })
                .collect();
        }
        let mut out = Vec::new();
        for v in &self.variants {
            let variant: Algo = v.parse().expect("checked in load");
            for &seed in &self.seeds {
                for overrides in &combos {
                    out.push(RunSpec {
                        variant,
                        seed,
                        overrides: overrides.clone(),
                    });
                }
            }
        }
        out
    }
}

/// Sets the dotted `key` of `table` to `value` (creating tables on the way), as `--set` does.
pub fn set(table: &mut toml::Table, key: &str, value: toml::Value) -> Result<()> {
    mgrpo_actors::config::overrides::set(table, key, value).map_err(anyhow::Error::msg)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_plan_expands_to_every_combination() {
        let plan: Plan = toml::from_str(
            "name = \"x\"\nconfig = \"c.toml\"\nvariants = [\"mgrpo\", \"single\"]\nseeds = [1, 2]\n[overrides]\n\"models.main.lr\" = [1e-4, 3e-4]\n\"algo.epochs\" = [1]\n",
        )
        .unwrap();
        let runs = plan.runs();
        assert_eq!(runs.len(), 2 * 2 * 2);
        assert_eq!(
            runs[0].dir_name(),
            "mgrpo-s1-algo.epochs=1-models.main.lr=0.0001"
        );
        assert_eq!(runs[7].variant, Algo::Single);
        assert_eq!(
            runs[0].overrides_label(),
            "algo.epochs=1,models.main.lr=0.0001"
        );
        let mut t = toml::Table::new();
        set(&mut t, "models.main.lr", toml::Value::Float(0.5)).unwrap();
        assert_eq!(t["models"]["main"]["lr"].as_float(), Some(0.5));
        let bad = toml::from_str::<Plan>(
            "name = \"x\"\nconfig = \"c\"\nvariants = []\nseeds = []\nextra = 1\n",
        )
        .unwrap_err()
        .to_string();
        assert!(bad.contains("unknown field `extra`"), "{bad}");
    }

    /// Many overrides make a name longer than a file system takes: it is cut to
    /// MAX_DIR_NAME bytes with a hash of the whole, unique per run and the same every time;
    /// a name within the limit is unchanged (the finished runs of a study keep theirs).
    #[test]
    fn a_long_run_name_is_cut_with_a_hash_of_the_whole() {
        let spec = |lr: f64| RunSpec {
            variant: Algo::Mgrpo,
            seed: 1,
            overrides: (0..12)
                .map(|i| {
                    (
                        format!("algo.weights.some_long_setting_{i}"),
                        toml::Value::Float(lr),
                    )
                })
                .collect(),
        };
        let (a, b) = (spec(1e-4).dir_name(), spec(3e-4).dir_name());
        assert!(spec(1e-4).full_dir_name().len() > 255);
        assert_eq!((a.len(), b.len()), (MAX_DIR_NAME, MAX_DIR_NAME));
        assert!(
            a.starts_with("mgrpo-s1-algo.weights.some_long_setting_0=0.0001"),
            "{a}"
        );
        assert_ne!(a, b);
        assert_eq!(a, spec(1e-4).dir_name());
        let short = RunSpec {
            overrides: BTreeMap::from([(
                "warmup.episodes".to_string(),
                toml::Value::Integer(1000),
            )]),
            ..spec(1e-4)
        };
        assert_eq!(short.dir_name(), "mgrpo-s1-warmup.episodes=1000");
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join(&a)).unwrap();
    }

    #[test]
    fn sets_apply_their_keys_together_once_per_grid_combination() {
        let text = "name = \"x\"\nconfig = \"c.toml\"\nvariants = [\"mgrpo\"]\nseeds = [1]\n\
                    [overrides]\n\"algo.epochs\" = [1, 2]\n\
                    [[sets]]\n\
                    [[sets]]\n\"models.main.lr\" = 1e-4\n\"models.sub.lr\" = 1e-4\n";
        let plan: Plan = toml::from_str(text).unwrap();
        let labels: Vec<String> = plan.runs().iter().map(RunSpec::overrides_label).collect();
        assert_eq!(
            labels,
            [
                "algo.epochs=1",
                "algo.epochs=1,models.main.lr=0.0001,models.sub.lr=0.0001",
                "algo.epochs=2",
                "algo.epochs=2,models.main.lr=0.0001,models.sub.lr=0.0001",
            ]
        );
        let dir = tempfile::tempdir().unwrap();
        let load = |text: &str| {
            let path = dir.path().join("plan.toml");
            std::fs::write(&path, text).unwrap();
            Plan::load(&path).map(|_| ()).map_err(|e| format!("{e:#}"))
        };
        assert_eq!(load(text), Ok(()));
        let clash = load(&text.replace("\"models.sub.lr\"", "\"algo.epochs\"")).unwrap_err();
        assert!(clash.contains("sets[1] names \"algo.epochs\""), "{clash}");
        let twice = load(&format!("{text}[[sets]]\n")).unwrap_err();
        assert!(twice.contains("sets[2] repeats an earlier set"), "{twice}");
    }

    #[test]
    fn the_plan_documented_in_docs_experiments_md_loads_and_expands_as_it_says() {
        let doc = std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/experiments.md"),
        )
        .unwrap();
        let block = doc
            .split("```toml\n")
            .nth(1)
            .and_then(|rest| rest.split("```").next())
            .expect("docs/experiments.md shows a plan in a toml block");
        let plan: Plan = toml::from_str(block).unwrap();
        // "2 × 2 × 2 = 8 runs per variant and seed".
        assert_eq!(
            plan.runs().len(),
            plan.variants.len() * plan.seeds.len() * 8
        );
    }
}
