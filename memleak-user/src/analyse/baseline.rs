//! Baselines across runs: "did this revision change memory behaviour?"
//!
//! Per process **name** (processes of one name in a run are merged: the
//! largest figures count), three figures of resident memory (rss):
//!
//! - `slope`: Theil–Sen slope over the process's life (bytes/s), robust to
//!   spikes;
//! - `peak`: the highest value;
//! - `final`: the last value.
//!
//! A baseline holds, for each name, the mean, standard deviation, minimum
//! and maximum of each figure over the runs it was built from. A new run's
//! figure has **changed** when it lies further from the mean than
//! `max(3 × sd, tolerance)`; the tolerance (10% of the mean, and at least
//! 1 MiB for sizes or 16 KiB/s for slopes) keeps page jitter and a single
//! baseline run (sd 0) from flagging everything. Otherwise it is reported as
//! unchanged, explicitly.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::trend;

/// Version of the baseline file format.
pub const BASELINE_VERSION: u32 = 1;

/// How many standard deviations away counts as changed.
pub const SIGMAS: f64 = 3.0;
/// Relative tolerance (of the baseline mean).
pub const REL_TOLERANCE: f64 = 0.1;
/// Smallest tolerance for peak and final, bytes.
pub const MIN_BYTES: f64 = 1024.0 * 1024.0;
/// Smallest tolerance for the slope, bytes/s.
pub const MIN_SLOPE: f64 = 16.0 * 1024.0;

/// One run's figures for one process name.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Figures {
    pub slope: f64,
    pub peak: f64,
    pub final_: f64,
}

/// Figures of one process's rss series; `None` for an empty series.
pub fn figures_of(t: &[f64], rss: &[f64]) -> Option<Figures> {
    let &last = rss.last()?;
    let peak = rss.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let slope = trend::analyse(t, rss).map_or(0.0, |tr| tr.slope);
    Some(Figures {
        slope,
        peak,
        final_: last,
    })
}

/// Adds one process's figures to its name's: several processes of one
/// name in a run count as their largest figures.
pub fn merge_figures(into: &mut BTreeMap<String, Figures>, name: &str, f: Figures) {
    into.entry(name.to_string())
        .and_modify(|g| {
            g.slope = g.slope.max(f.slope);
            g.peak = g.peak.max(f.peak);
            g.final_ = g.final_.max(f.final_);
        })
        .or_insert(f);
}

/// Spread of one figure over runs.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Stat {
    pub mean: f64,
    pub sd: f64,
    pub min: f64,
    pub max: f64,
}

impl Stat {
    /// Mean, sample standard deviation and range of `v`.
    pub fn of(v: &[f64]) -> Stat {
        let n = v.len().max(1) as f64;
        let mean = v.iter().sum::<f64>() / n;
        let var = if v.len() > 1 {
            v.iter().map(|x| (x - mean) * (x - mean)).sum::<f64>() / (n - 1.0)
        } else {
            0.0
        };
        Stat {
            mean,
            sd: var.sqrt(),
            min: v.iter().copied().fold(f64::INFINITY, f64::min),
            max: v.iter().copied().fold(f64::NEG_INFINITY, f64::max),
        }
    }

    /// Largest distance from the mean that is still "unchanged".
    pub fn tolerance(&self, floor: f64) -> f64 {
        (SIGMAS * self.sd)
            .max(REL_TOLERANCE * self.mean.abs())
            .max(floor)
    }
}

/// What the baseline runs say about one process name.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct NameBaseline {
    /// Runs in which the name appeared.
    pub runs: usize,
    pub slope: Stat,
    pub peak: Stat,
    #[serde(rename = "final")]
    pub final_: Stat,
}

/// A baseline file.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Baseline {
    pub baseline_version: u32,
    pub metric: String,
    /// The recordings it was built from.
    pub recordings: Vec<String>,
    pub processes: BTreeMap<String, NameBaseline>,
}

impl Baseline {
    /// Builds a baseline from the figures of several runs.
    pub fn from_runs(recordings: Vec<String>, runs: &[BTreeMap<String, Figures>]) -> Baseline {
        let mut names: BTreeMap<&String, Vec<Figures>> = BTreeMap::new();
        for run in runs {
            for (name, f) in run {
                names.entry(name).or_default().push(*f);
            }
        }
        let processes = names
            .into_iter()
            .map(|(name, fs)| {
                let col = |g: fn(&Figures) -> f64| Stat::of(&fs.iter().map(g).collect::<Vec<_>>());
                (
                    name.clone(),
                    NameBaseline {
                        runs: fs.len(),
                        slope: col(|f| f.slope),
                        peak: col(|f| f.peak),
                        final_: col(|f| f.final_),
                    },
                )
            })
            .collect();
        Baseline {
            baseline_version: BASELINE_VERSION,
            metric: "rss".into(),
            recordings,
            processes,
        }
    }
}

/// The verdict on one figure.
#[derive(Clone, Debug, PartialEq)]
pub struct FigureChange {
    pub figure: &'static str,
    pub value: f64,
    pub baseline: Stat,
    pub changed: bool,
}

/// One process name compared with the baseline.
#[derive(Clone, Debug, PartialEq)]
pub enum Comparison {
    Compared {
        name: String,
        figures: Vec<FigureChange>,
    },
    /// Not in the baseline.
    New { name: String, figures: Figures },
    /// In the baseline, not in this run.
    Gone { name: String },
}

impl Comparison {
    /// Whether any figure moved beyond the baseline's spread (or the name
    /// appeared or disappeared).
    pub fn changed(&self) -> bool {
        match self {
            Comparison::Compared { figures, .. } => figures.iter().any(|f| f.changed),
            Comparison::New { .. } | Comparison::Gone { .. } => false,
        }
    }
}

/// Compares a run's figures with a baseline, name by name.
pub fn compare(base: &Baseline, run: &BTreeMap<String, Figures>) -> Vec<Comparison> {
    let mut out = Vec::new();
    for (name, f) in run {
        let Some(b) = base.processes.get(name) else {
            out.push(Comparison::New {
                name: name.clone(),
                figures: *f,
            });
            continue;
        };
        let fig = |figure, value: f64, baseline: Stat, floor| FigureChange {
            figure,
            value,
            baseline,
            changed: (value - baseline.mean).abs() > baseline.tolerance(floor),
        };
        out.push(Comparison::Compared {
            name: name.clone(),
            figures: vec![
                fig("slope", f.slope, b.slope, MIN_SLOPE),
                fig("peak", f.peak, b.peak, MIN_BYTES),
                fig("final", f.final_, b.final_, MIN_BYTES),
            ],
        });
    }
    for name in base.processes.keys() {
        if !run.contains_key(name) {
            out.push(Comparison::Gone { name: name.clone() });
        }
    }
    // Changed first, then by name.
    out.sort_by_key(|c| !c.changed());
    out
}
