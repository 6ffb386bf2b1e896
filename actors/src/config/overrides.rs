//! Dotted-key overrides of a config file (`train.steps=300`, `warmup.lr=2e-3`): how `mgrpo
//! train --set` and a study's plan change a setting without writing another file.
//!
//! Why on the TOML table rather than on the typed [`Config`]: the override then goes through
//! the same parsing and checks as the file itself (unknown keys, wrong types, values that do not
//! make sense together), so `--set` can never reach a config the file could not.
use std::path::Path;

use crate::config::{Config, ConfigError, paths};

/// Sets `key` (dotted: `models.main.lr`) to `value` in `table`, making the tables on its way.
pub fn set(table: &mut toml::Table, key: &str, value: toml::Value) -> Result<(), String> {
    let mut parts: Vec<&str> = key.split('.').collect();
    let last = parts
        .pop()
        .filter(|l| !l.is_empty())
        .ok_or_else(|| format!("{key:?}: an empty key"))?;
    let mut at = table;
    for p in parts {
        if p.is_empty() {
            return Err(format!("{key:?}: an empty part"));
        }
        at = at
            .entry(p.to_string())
            .or_insert_with(|| toml::Value::Table(toml::Table::new()))
            .as_table_mut()
            .ok_or_else(|| format!("{key}: {p} is not a table"))?;
    }
    at.insert(last.to_string(), value);
    Ok(())
}

/// Parses `KEY=VALUE`. VALUE is read as a TOML value (`300`, `2e-3`, `true`, `"x"`, `[1, 2]`);
/// anything that is not one is taken as a string, so `algo.variant=shared` needs no quotes.
pub fn parse_assignment(text: &str) -> Result<(String, toml::Value), String> {
    let (key, value) = text
        .split_once('=')
        .ok_or_else(|| format!("{text:?}: expected KEY=VALUE (e.g. train.steps=300)"))?;
    let key = key.trim();
    if key.is_empty() || key.split('.').any(str::is_empty) {
        return Err(format!(
            "{text:?}: the key must be dotted names (e.g. warmup.lr)"
        ));
    }
    let value = value.trim();
    let parsed = format!("v = {value}")
        .parse::<toml::Table>()
        .ok()
        .and_then(|mut t| t.remove("v"))
        .unwrap_or_else(|| toml::Value::String(value.to_string()));
    Ok((key.to_string(), parsed))
}

impl Config {
    /// [`Config::load`] with `overrides` applied to the file's table first, each as if written
    /// in the file (a relative path in one is relative to the file). An unknown key, a wrong
    /// type or an invalid combination is an error naming the overrides.
    pub fn load_with(
        path: &Path,
        overrides: &[(String, toml::Value)],
    ) -> Result<Self, ConfigError> {
        if overrides.is_empty() {
            return Self::load(path);
        }
        let text = Self::read(path)?;
        let mut table: toml::Table =
            text.parse()
                .map_err(|e: toml::de::Error| ConfigError::Parse {
                    path: path.to_path_buf(),
                    message: e.to_string(),
                })?;
        let listed = overrides
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(" ");
        let fail = |message: String| ConfigError::Override {
            path: path.to_path_buf(),
            overrides: listed.clone(),
            message,
        };
        for (key, value) in overrides {
            set(&mut table, key, value.clone()).map_err(fail)?;
        }
        let edited = toml::to_string(&table).map_err(|e| fail(e.to_string()))?;
        // toml's message without its excerpt: its line would be of the edited text, not the file.
        let config: Config = toml::from_str(&edited).map_err(|e| fail(e.message().to_string()))?;
        let mut config = config.validated(path)?;
        config.resolve_paths(&paths::base_of(path), paths::names_root(&edited));
        Ok(config)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_parse_as_toml_and_fall_back_to_strings() {
        let v = |t: &str| parse_assignment(t).unwrap();
        assert_eq!(
            v("train.steps=300"),
            ("train.steps".into(), toml::Value::Integer(300))
        );
        assert_eq!(v("warmup.lr = 2e-3").1, toml::Value::Float(2e-3));
        assert_eq!(v("algo.token_level=true").1, toml::Value::Boolean(true));
        assert_eq!(
            v("algo.variant=shared").1,
            toml::Value::String("shared".into())
        );
        assert_eq!(
            v("algo.variant=\"shared\"").1,
            toml::Value::String("shared".into())
        );
        for bad in ["train.steps", "=3", "train..steps=3", ".steps=3"] {
            assert!(parse_assignment(bad).is_err(), "{bad}");
        }
    }

    fn file(text: &str) -> (tempfile::TempDir, std::path::PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.toml");
        std::fs::write(&path, text).unwrap();
        (dir, path)
    }

    #[test]
    fn overrides_change_the_loaded_config_and_nothing_else() {
        let (_d, path) = file("[train]\nsteps = 600\n[warmup]\nlr = 1e-3\n");
        let plain = Config::load(&path).unwrap();
        let sets = [
            parse_assignment("train.steps=300").unwrap(),
            parse_assignment("warmup.lr=2e-3").unwrap(),
            parse_assignment("algo.variant=shared").unwrap(),
        ];
        let c = Config::load_with(&path, &sets).unwrap();
        assert_eq!((plain.train.steps, c.train.steps), (600, 300));
        assert_eq!(c.warmup.lr, 2e-3);
        assert_eq!(c.algo.variant, mgrpo_algo::Algo::Shared);
        let mut expected = plain.clone();
        expected.train.steps = 300;
        expected.warmup.lr = 2e-3;
        expected.algo.variant = mgrpo_algo::Algo::Shared;
        assert_eq!(c, expected);
    }

    #[test]
    fn a_bad_override_is_an_error_naming_it() {
        let (_d, path) = file("[train]\nsteps = 600\n");
        for (set, says) in [
            ("train.stepz=3", "stepz"),
            ("train.steps=many", "train.steps=\"many\""),
            ("train.steps.x=3", "train.steps.x=3"),
            ("train.steps=-3", "train.steps"),
        ] {
            let err = Config::load_with(&path, &[parse_assignment(set).unwrap()])
                .unwrap_err()
                .to_string();
            assert!(err.contains(says), "{set}: {err}");
        }
    }
}
