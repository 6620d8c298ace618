//! Analysis thresholds from a config file (`memleak.toml`).
//!
//! The file's `[analysis]` table holds any of these keys (all optional;
//! durations are seconds or strings like `"30s"`, `"1h"`; sizes are bytes or
//! strings like `"1MiB"`):
//!
//! ```toml
//! [analysis]
//! r2 = 0.9                  # R² a window needs
//! horizon = "1h"            # flag when the limit is reached within this
//! min_points = 20           # smallest window, grid points
//! warmup = "30s"            # warm-up dropped: at most this long...
//! warmup_fraction = 0.1     # ...and at most this fraction of the lifetime
//! gap_factor = 5            # gap: spacing > max(gap_factor × interval, min_gap)
//! min_gap = "2s"
//! max_points = 4096         # grid points per segment at most
//! min_growth = "1MiB"       # fitted growth must exceed this...
//! min_growth_fraction = 0.01 # ...and this fraction of the value
//! metrics = ["anon", "vm", "file"]
//! model = "all"            # lbr, sawtooth, trend or all (combined)
//! rule = "ci"              # ci or horizon (default: by recording command)
//! min_kept = "32MiB"       # CI rule: a leak keeps more than this...
//! min_kept_fraction = 0.1  # ...and this fraction of the starting value
//! limit = "512MiB"         # the production limit, projected against
//! test_kept = "32MiB"       # flag a marked test keeping this much anon memory
//!                           # (default: the CI rule's min_kept and min_kept_fraction)
//! ```
//!
//! Other top-level tables are ignored (they belong to other commands);
//! unknown keys inside `[analysis]` are errors, so typos do not pass silently.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::units::{parse_bytes, parse_duration};
use super::{Metric, Settings};

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read the config file: {0}")]
    Read(#[from] crate::files::FileError),
    #[error("{path}: invalid config file: {source}")]
    Parse {
        path: PathBuf,
        #[source]
        source: Box<toml::de::Error>,
    },
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

/// The `[analysis]` table; every key optional.
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct AnalysisConfig {
    pub r2: Option<f64>,
    pub horizon: Option<Quantity>,
    pub min_points: Option<usize>,
    pub warmup: Option<Quantity>,
    pub warmup_fraction: Option<f64>,
    pub gap_factor: Option<f64>,
    pub min_gap: Option<Quantity>,
    pub max_points: Option<usize>,
    pub min_growth: Option<Quantity>,
    pub min_growth_fraction: Option<f64>,
    pub metrics: Option<Vec<String>>,
    pub model: Option<String>,
    pub rule: Option<String>,
    pub min_kept: Option<Quantity>,
    pub min_kept_fraction: Option<f64>,
    pub limit: Option<Quantity>,
    pub test_kept: Option<Quantity>,
}

#[derive(Debug, Default, Deserialize)]
struct ConfigFile {
    #[serde(default)]
    analysis: AnalysisConfig,
}

/// A config file is a few lines; this bounds what a wrong path costs.
const MAX_CONFIG_BYTES: u64 = 1 << 20;

/// Reads the `[analysis]` table of a config file.
pub fn load(path: &Path) -> Result<AnalysisConfig, ConfigError> {
    parse(&crate::files::read_text(path, MAX_CONFIG_BYTES)?, path)
}

/// Parses config text (`path` only names it in errors).
pub fn parse(text: &str, path: &Path) -> Result<AnalysisConfig, ConfigError> {
    let file: ConfigFile = toml::from_str(text).map_err(|source| ConfigError::Parse {
        path: path.to_path_buf(),
        source: Box::new(source),
    })?;
    Ok(file.analysis)
}

impl AnalysisConfig {
    /// Overrides `settings` with the keys present; `path` names the file in
    /// errors. Range checks are [`Settings::validate`]'s job.
    pub fn apply(&self, settings: &mut Settings, path: &Path) -> Result<(), ConfigError> {
        let invalid = |key: &'static str, why: String| ConfigError::Invalid {
            path: path.to_path_buf(),
            key,
            why,
        };
        let duration = |key: &'static str, q: &Quantity| match q {
            Quantity::Number(v) => {
                super::units::check_duration(*v).map_err(|why| invalid(key, format!("{v}: {why}")))
            }
            Quantity::Text(s) => parse_duration(s).map_err(|e| invalid(key, e)),
        };
        let bytes = |key: &'static str, q: &Quantity| match q {
            Quantity::Number(v) if v.is_finite() && *v >= 0.0 => Ok(*v),
            Quantity::Number(v) => Err(invalid(key, format!("{v} is not a valid size"))),
            Quantity::Text(s) => parse_bytes(s).map_err(|e| invalid(key, e)),
        };
        if let Some(v) = self.r2 {
            settings.r2 = v;
        }
        if let Some(q) = &self.horizon {
            settings.horizon_s = duration("horizon", q)?;
        }
        if let Some(v) = self.min_points {
            settings.min_points = v;
        }
        if let Some(q) = &self.warmup {
            settings.warmup_max_s = duration("warmup", q)?;
        }
        if let Some(v) = self.warmup_fraction {
            settings.warmup_fraction = v;
        }
        if let Some(v) = self.gap_factor {
            settings.gap_factor = v;
        }
        if let Some(q) = &self.min_gap {
            settings.min_gap_s = duration("min_gap", q)?;
        }
        if let Some(v) = self.max_points {
            settings.max_points = v;
        }
        if let Some(q) = &self.min_growth {
            settings.min_growth_bytes = bytes("min_growth", q)?;
        }
        if let Some(v) = self.min_growth_fraction {
            settings.min_growth_fraction = v;
        }
        if let Some(names) = &self.metrics {
            settings.metrics = parse_metrics(names).map_err(|e| invalid("metrics", e))?;
        }
        if let Some(q) = &self.test_kept {
            settings.test_kept_bytes = Some(bytes("test_kept", q)?);
        }
        if let Some(name) = &self.model {
            settings.model = super::ModelChoice::parse(name).ok_or_else(|| {
                invalid(
                    "model",
                    format!("unknown model `{name}` (use lbr, sawtooth, trend or all)"),
                )
            })?;
        }
        if let Some(name) = &self.rule {
            settings.rule = Some(super::Rule::parse(name).ok_or_else(|| {
                invalid("rule", format!("unknown rule `{name}` (use ci or horizon)"))
            })?);
        }
        if let Some(q) = &self.min_kept {
            settings.min_kept_bytes = bytes("min_kept", q)?;
        }
        if let Some(v) = self.min_kept_fraction {
            settings.min_kept_fraction = v;
        }
        if let Some(q) = &self.limit {
            settings.limit_bytes = Some(bytes("limit", q)?);
        }
        Ok(())
    }
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
    fn parses_and_applies() {
        let text = r#"
            [record]
            interval = "100ms"

            [analysis]
            r2 = 0.8
            horizon = "2h"
            min_points = 30
            warmup = 10
            min_growth = "4MiB"
            metrics = ["vm"]
            model = "trend"
            test_kept = "8MiB"
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
        assert!(e.to_string().contains("test_kept"), "{e}");
        let c = parse("[analysis]\nmetrics = [\"heap\"]\n", Path::new("m.toml")).unwrap();
        assert!(c
            .apply(&mut Settings::default(), Path::new("m.toml"))
            .is_err());
        let e = load(Path::new("/nonexistent/memleak.toml")).unwrap_err();
        assert!(matches!(e, ConfigError::Read(_)));
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
