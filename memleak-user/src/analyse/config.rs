//! Analysis thresholds from a config file (`memleak.toml`), and the one
//! override ladder ([`Overrides`]) the file and the flags share.
//!
//! The file's `[analysis]` table holds any of these keys (all optional;
//! durations are seconds or strings like `"30s"`, `"1h"`; sizes are bytes or
//! strings like `"1MiB"`):
//!
//! ```toml
//! [analysis]
//! r2 = 0.9                  # R² a window needs
//! horizon = "1h"            # flag when the limit is reached within this
//! min-points = 20           # smallest window, grid points
//! warmup = "30s"            # warm-up dropped: at most this long...
//! warmup-fraction = 0.1     # ...and at most this fraction of the lifetime
//! gap-factor = 5            # gap: spacing > max(gap-factor × interval, min-gap)
//! min-gap = "2s"
//! max-points = 4096         # grid points per segment at most
//! min-growth = "1MiB"       # fitted growth must exceed this...
//! min-growth-fraction = 0.01 # ...and this fraction of the value
//! metric = ["anon", "vm", "file"]
//! model = "all"            # lbr, sawtooth, trend or all (combined)
//! rule = "ci"              # ci or horizon (default: by recording command)
//! min-kept = "32MiB"       # CI rule: a leak keeps more than this...
//! min-kept-fraction = 0.1  # ...and this fraction of the starting value
//! limit = "512MiB"         # the production limit, projected against
//! test-kept = "32MiB"       # flag a marked test keeping this much anon memory in one run
//!                           # (default: none, only the confirmation rule of test-floor)
//! test-floor = "512KiB"     # flag a test rerun at least once when every rerun kept this
//! ```
//!
//! Keys are spelled like the flags (`min-points` is `--min-points`); the
//! snake_case spellings of earlier versions are still accepted.
//!
//! Other top-level tables are ignored (they belong to other commands);
//! unknown keys inside `[analysis]` are errors, so typos do not pass silently.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::units::{parse_bytes, parse_duration};
use super::{Metric, ModelChoice, Rule, Settings};

/// Why config text was refused; names the file and the key.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// `message` is the parser's, made printable and bounded (see
    /// [`parse_message`]).
    #[error("{path}: invalid config file: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("{path}: [analysis] {key}: {why}")]
    Invalid {
        path: PathBuf,
        key: &'static str,
        why: String,
    },
}

/// A number, or a string with a unit.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(untagged)]
pub enum Quantity {
    Number(f64),
    Text(String),
}

/// The `[analysis]` table; every key optional. Keys are the flags' names
/// (`min-points` for `--min-points`); the older snake_case spellings
/// (`min_points`, and `metrics` for `metric`) are still read.
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct AnalysisConfig {
    pub r2: Option<f64>,
    pub horizon: Option<Quantity>,
    #[serde(alias = "min_points")]
    pub min_points: Option<usize>,
    pub warmup: Option<Quantity>,
    #[serde(alias = "warmup_fraction")]
    pub warmup_fraction: Option<f64>,
    #[serde(alias = "gap_factor")]
    pub gap_factor: Option<f64>,
    #[serde(alias = "min_gap")]
    pub min_gap: Option<Quantity>,
    #[serde(alias = "max_points")]
    pub max_points: Option<usize>,
    #[serde(alias = "min_growth")]
    pub min_growth: Option<Quantity>,
    #[serde(alias = "min_growth_fraction")]
    pub min_growth_fraction: Option<f64>,
    #[serde(alias = "metrics")]
    pub metric: Option<Vec<String>>,
    pub model: Option<String>,
    pub rule: Option<String>,
    #[serde(alias = "min_kept")]
    pub min_kept: Option<Quantity>,
    #[serde(alias = "min_kept_fraction")]
    pub min_kept_fraction: Option<f64>,
    pub limit: Option<Quantity>,
    #[serde(alias = "test_kept")]
    pub test_kept: Option<Quantity>,
    #[serde(alias = "test_floor")]
    pub test_floor: Option<Quantity>,
}

/// A misspelt table (`[analysys]`) is refused, not silently ignored: the
/// user would believe thresholds are set that are not.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ConfigFile {
    #[serde(default)]
    analysis: AnalysisConfig,
}

/// Parses config text (`path` only names it in errors).
pub fn parse(text: &str, path: &Path) -> Result<AnalysisConfig, ConfigError> {
    let file: ConfigFile = toml::from_str(text).map_err(|e| ConfigError::Parse {
        path: path.to_path_buf(),
        message: parse_message(&e),
    })?;
    Ok(file.analysis)
}

/// Longest parser message shown, in characters: the parser quotes the
/// offending line, and one line of a wrong file can be megabytes.
const MAX_MESSAGE_CHARS: usize = 400;

/// The parser's message with each line made printable (the file's bytes
/// must not reach the terminal as escape sequences) and cut to
/// [`MAX_MESSAGE_CHARS`] per line.
fn parse_message(e: &toml::de::Error) -> String {
    e.to_string()
        .lines()
        .map(|l| {
            let l = crate::diag::printable(l);
            if l.chars().count() > MAX_MESSAGE_CHARS {
                let mut cut: String = l.chars().take(MAX_MESSAGE_CHARS).collect();
                cut.push('…');
                cut
            } else {
                l
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

impl AnalysisConfig {
    /// The settings this file gives, checked and converted; `path` names
    /// the file in errors. Range checks are [`Settings::validate`]'s job.
    pub fn overrides(&self, path: &Path) -> Result<Overrides, ConfigError> {
        let invalid = |key: &'static str, why: String| ConfigError::Invalid {
            path: path.to_path_buf(),
            key,
            why,
        };
        let duration = |key: &'static str, q: &Option<Quantity>| {
            q.as_ref()
                .map(|q| match q {
                    Quantity::Number(v) => super::units::check_duration(*v)
                        .map_err(|why| invalid(key, format!("{v}: {why}"))),
                    Quantity::Text(s) => parse_duration(s).map_err(|e| invalid(key, e)),
                })
                .transpose()
        };
        let bytes = |key: &'static str, q: &Option<Quantity>| {
            q.as_ref()
                .map(|q| match q {
                    Quantity::Number(v) if v.is_finite() && *v >= 0.0 => Ok(*v),
                    Quantity::Number(v) => Err(invalid(key, format!("{v} is not a valid size"))),
                    Quantity::Text(s) => parse_bytes(s).map_err(|e| invalid(key, e)),
                })
                .transpose()
        };
        Ok(Overrides {
            r2: self.r2,
            horizon_s: duration("horizon", &self.horizon)?,
            min_points: self.min_points,
            warmup_s: duration("warmup", &self.warmup)?,
            warmup_fraction: self.warmup_fraction,
            gap_factor: self.gap_factor,
            min_gap_s: duration("min-gap", &self.min_gap)?,
            max_points: self.max_points,
            min_growth_bytes: bytes("min-growth", &self.min_growth)?,
            min_growth_fraction: self.min_growth_fraction,
            metrics: self
                .metric
                .as_ref()
                .map(|names| parse_metrics(names).map_err(|e| invalid("metric", e)))
                .transpose()?,
            model: self
                .model
                .as_deref()
                .map(|m| parse_model(m).map_err(|e| invalid("model", e)))
                .transpose()?,
            rule: self
                .rule
                .as_deref()
                .map(|r| parse_rule(r).map_err(|e| invalid("rule", e)))
                .transpose()?,
            min_kept_bytes: bytes("min-kept", &self.min_kept)?,
            min_kept_fraction: self.min_kept_fraction,
            limit_bytes: bytes("limit", &self.limit)?,
            test_kept_bytes: bytes("test-kept", &self.test_kept)?,
            test_floor_bytes: bytes("test-floor", &self.test_floor)?,
        })
    }

    /// [`AnalysisConfig::overrides`] applied to `settings`.
    pub fn apply(&self, settings: &mut Settings, path: &Path) -> Result<(), ConfigError> {
        self.overrides(path)?.apply(settings);
        Ok(())
    }
}

/// Every analysis setting a user can give, named after its flag; `None`
/// when not given. The config file and the command line each produce one,
/// and [`Overrides::apply`] is the one place where a given value replaces
/// the default ([`Settings::default`]): defaults, then the file, then the
/// flags.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Overrides {
    pub r2: Option<f64>,
    pub horizon_s: Option<f64>,
    pub min_points: Option<usize>,
    pub warmup_s: Option<f64>,
    pub warmup_fraction: Option<f64>,
    pub gap_factor: Option<f64>,
    pub min_gap_s: Option<f64>,
    pub max_points: Option<usize>,
    pub min_growth_bytes: Option<f64>,
    pub min_growth_fraction: Option<f64>,
    pub metrics: Option<Vec<Metric>>,
    pub model: Option<ModelChoice>,
    pub rule: Option<Rule>,
    pub min_kept_bytes: Option<f64>,
    pub min_kept_fraction: Option<f64>,
    pub limit_bytes: Option<f64>,
    pub test_kept_bytes: Option<f64>,
    pub test_floor_bytes: Option<f64>,
}

impl Overrides {
    /// Overwrites in `s` each setting this layer sets.
    pub fn apply(&self, s: &mut Settings) {
        fn set<T: Clone>(to: &mut T, v: &Option<T>) {
            if let Some(v) = v {
                *to = v.clone();
            }
        }
        set(&mut s.r2, &self.r2);
        set(&mut s.horizon_s, &self.horizon_s);
        set(&mut s.min_points, &self.min_points);
        set(&mut s.warmup_max_s, &self.warmup_s);
        set(&mut s.warmup_fraction, &self.warmup_fraction);
        set(&mut s.gap_factor, &self.gap_factor);
        set(&mut s.min_gap_s, &self.min_gap_s);
        set(&mut s.max_points, &self.max_points);
        set(&mut s.min_growth_bytes, &self.min_growth_bytes);
        set(&mut s.min_growth_fraction, &self.min_growth_fraction);
        set(&mut s.metrics, &self.metrics);
        set(&mut s.model, &self.model);
        set(&mut s.min_kept_bytes, &self.min_kept_bytes);
        set(&mut s.min_kept_fraction, &self.min_kept_fraction);
        set(&mut s.test_floor_bytes, &self.test_floor_bytes);
        if self.rule.is_some() {
            s.rule = self.rule;
        }
        if self.limit_bytes.is_some() {
            s.limit_bytes = self.limit_bytes;
        }
        if self.test_kept_bytes.is_some() {
            s.test_kept_bytes = self.test_kept_bytes;
        }
    }
}

/// A model by name, with the names it accepts in the error.
pub fn parse_model(name: &str) -> Result<ModelChoice, String> {
    ModelChoice::parse(name)
        .ok_or_else(|| format!("unknown model `{name}` (use lbr, sawtooth, trend or all)"))
}

/// A rule by name, with the names it accepts in the error.
pub fn parse_rule(name: &str) -> Result<Rule, String> {
    Rule::parse(name).ok_or_else(|| format!("unknown rule `{name}` (use ci or horizon)"))
}

/// `["rss", "vm"]` → metrics, without duplicates; `"all"` means both.
pub fn parse_metrics<S: AsRef<str>>(names: &[S]) -> Result<Vec<Metric>, String> {
    let mut out = Vec::new();
    for name in names {
        let name = name.as_ref();
        let found: Vec<Metric> = if name.trim().eq_ignore_ascii_case("all") {
            Metric::ALL.to_vec()
        } else {
            vec![Metric::parse(name).ok_or_else(|| {
                format!("unknown metric `{name}` (use anon, vm, file, rss or all)")
            })?]
        };
        for m in found {
            if !out.contains(&m) {
                out.push(m);
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_misspelt_table_is_refused_not_ignored() {
        let e = parse("[analysys]\nr2 = 0.5\n", Path::new("m.toml")).unwrap_err();
        assert!(e.to_string().contains("analysys"), "{e}");
    }

    #[test]
    fn parser_errors_are_printable_and_bounded() {
        let evil = format!(
            "[analysis]\nr2 = \"\u{1b}]0;pwned\u{7}{}\"\n",
            "x".repeat(200_000)
        );
        let e = parse(&evil, Path::new("m.toml")).unwrap_err().to_string();
        assert!(!e.contains('\u{1b}') && !e.contains('\u{7}'), "{e:?}");
        assert!(e.len() < 4000, "{} bytes", e.len());
    }

    #[test]
    fn parses_and_applies() {
        let text = r#"
            [analysis]
            r2 = 0.8
            horizon = "2h"
            min_points = 30
            warmup = 10
            min_growth = "4MiB"
            metrics = ["vm"]
            model = "trend"
            test_kept = "8MiB"
            test-floor = "1MiB"
        "#;
        let c = parse(text, Path::new("memleak.toml")).unwrap();
        let mut s = Settings::default();
        c.apply(&mut s, Path::new("memleak.toml")).unwrap();
        assert_eq!(s.r2, 0.8);
        assert_eq!(s.horizon_s, 7200.0);
        assert_eq!(s.min_points, 30);
        assert_eq!(s.warmup_max_s, 10.0);
        assert_eq!(s.min_growth_bytes, 4.0 * 1048576.0);
        assert_eq!(s.metrics, vec![Metric::Vm]);
        assert_eq!(s.model, super::super::ModelChoice::Trend);
        assert_eq!(s.warmup_fraction, 0.1);
        assert_eq!(s.test_kept_bytes, Some(8.0 * 1048576.0));
        assert_eq!(s.test_floor_bytes, 1048576.0);
        s.validate().unwrap();
    }

    #[test]
    fn empty_file_changes_nothing() {
        let c = parse("", Path::new("x.toml")).unwrap();
        let mut s = Settings::default();
        c.apply(&mut s, Path::new("x.toml")).unwrap();
        assert_eq!(s, Settings::default());
    }

    #[test]
    fn errors_name_the_file_and_key() {
        let e = parse("[analysis]\nr3 = 1\n", Path::new("m.toml")).unwrap_err();
        assert!(
            e.to_string().starts_with("m.toml: invalid config file"),
            "{e}"
        );
        let c = parse("[analysis]\nhorizon = \"soon\"\n", Path::new("m.toml")).unwrap();
        let e = c
            .apply(&mut Settings::default(), Path::new("m.toml"))
            .unwrap_err();
        assert!(e.to_string().contains("horizon"), "{e}");
        let c = parse("[analysis]\nmodel = \"magic\"\n", Path::new("m.toml")).unwrap();
        let e = c
            .apply(&mut Settings::default(), Path::new("m.toml"))
            .unwrap_err();
        assert!(e.to_string().contains("model"), "{e}");
        let c = parse("[analysis]\ntest_kept = \"lots\"\n", Path::new("m.toml")).unwrap();
        let e = c
            .apply(&mut Settings::default(), Path::new("m.toml"))
            .unwrap_err();
        assert!(e.to_string().contains("test-kept"), "{e}");
        let c = parse("[analysis]\nmetrics = [\"heap\"]\n", Path::new("m.toml")).unwrap();
        assert!(c
            .apply(&mut Settings::default(), Path::new("m.toml"))
            .is_err());
    }

    #[test]
    fn keys_are_the_flags_names_and_old_spellings_still_read() {
        let new = parse(
            "[analysis]\nmin-points = 30\nmin-kept = \"8MiB\"\nmetric = [\"vm\"]\n",
            Path::new("m.toml"),
        )
        .unwrap();
        let old = parse(
            "[analysis]\nmin_points = 30\nmin_kept = \"8MiB\"\nmetrics = [\"vm\"]\n",
            Path::new("m.toml"),
        )
        .unwrap();
        assert_eq!(new, old);
        let o = new.overrides(Path::new("m.toml")).unwrap();
        assert_eq!(o.min_points, Some(30));
        assert_eq!(o.min_kept_bytes, Some(8.0 * 1048576.0));
        assert_eq!(o.metrics, Some(vec![Metric::Vm]));
    }

    #[test]
    fn later_overrides_win_and_absent_ones_keep_the_value() {
        let mut s = Settings::default();
        let file = Overrides {
            r2: Some(0.5),
            horizon_s: Some(60.0),
            ..Overrides::default()
        };
        let flags = Overrides {
            r2: Some(0.7),
            ..Overrides::default()
        };
        file.apply(&mut s);
        flags.apply(&mut s);
        assert_eq!((s.r2, s.horizon_s), (0.7, 60.0));
        assert_eq!(s.min_points, Settings::default().min_points);
    }

    #[test]
    fn metric_lists() {
        assert_eq!(parse_metrics(&["all"]).unwrap(), Metric::ALL.to_vec());
        assert_eq!(
            parse_metrics(&["vm", "VM", "rss"]).unwrap(),
            vec![Metric::Vm, Metric::Rss]
        );
        assert!(parse_metrics(&["pss"]).is_err());
    }
}
