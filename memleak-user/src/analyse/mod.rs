//! Analysis of recordings: pre-processing and leak models.
//!
//! Per process (identity: pid + start time), one series at a time so memory
//! stays bounded:
//!
//! 1. [`preprocess`]: drop non-finite points, drop the warm-up
//!    (`min(warmup_fraction × lifetime, warmup_max)`), split at gaps longer
//!    than `max(gap_factor × interval, min_gap)`, resample each segment onto a
//!    uniform grid (the interval, or coarser so a segment has at most
//!    `max_points` points). Series with no segment of `min_points` points are
//!    skipped, with the reason ([`Skipped`]).
//! 2. [`lbr`]: for each metric and segment, every window growing backwards
//!    from the segment's end is fitted in O(n) total; the longest window with
//!    R² ≥ `r2` is chosen and refitted directly ([`fit`]) for the report.
//! 3. Judgement ([`Verdict`]): a finding is a **leak** when the chosen
//!    window's slope is positive, its fitted growth exceeds
//!    `max(min_growth, min_growth_fraction × value)` (page jitter is never a
//!    leak), and the memory reaches its limit ([`limits`]) within `horizon`
//!    at that rate, measured from the segment's last sample using the fitted
//!    value there: `(limit - fitted_last) / slope`. A positive, well-fitted
//!    trend that fails only the horizon (or has no known limit) is
//!    **growing**; anything else is **no trend**. When a series has several
//!    segments, each is judged and the most urgent finding is kept.
//!
//! LBR sees a straight line; what it makes of other shapes, as the tests pin
//! down: a step then flat is no trend (a step explains at most 75% of the
//! variance); a sawtooth whose last tooth spans `min_points` or more is
//! judged by that tooth's ramp (often a leak verdict for a periodic
//! pattern: the sawtooth model of a later issue is meant to correct that).
//!
//! Models beyond LBR, selected with [`Settings::model`] ([`ModelChoice`]):
//!
//! - [`sawtooth`]: finds cycles (turning points with hysteresis) and fits a
//!   line through the cycle minima: a garbage collector's sawtooth has a
//!   flat floor, a cyclic leak a rising one;
//! - [`trend`]: Theil–Sen slope with Mann–Kendall significance (tie
//!   corrected), for slow leaks buried in noise that no straight line fits,
//!   and only when each quarter of the segment sits above the previous
//!   (growth still going on at the end);
//! - **combined** (`all`, the default): a cyclic series (two or more drops)
//!   is judged by the sawtooth model (or the trend model when that flags a
//!   rising baseline), since LBR sees only its last ramp; otherwise LBR
//!   flags only when growth continues over the last quarter of its window
//!   (a warm-up that plateaus is not a leak), and the trend model catches
//!   what LBR's R² threshold misses. Each [`Finding`] names the [`Model`]
//!   that decided it and says why in words.

pub mod baseline;
pub mod config;
#[cfg(test)]
mod corpus;
pub mod eval;
pub mod evidence;
pub mod fit;
pub mod lbr;
pub mod life;
pub mod limits;
mod models;
pub mod phases;
pub mod preprocess;
pub mod sawtooth;
pub mod trend;
pub mod units;

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;

use serde::Serialize;

use crate::sample::{Mem, ProcId};
use lbr::WindowFit;
use life::ProcessEnd;
use limits::Limit;
use units::{fmt_bytes, fmt_duration, fmt_rate};

/// A memory figure a model looks at.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Metric {
    /// Anonymous + shmem resident pages + swap: the memory that runs out,
    /// since only the process can give it back. Leaks are judged on it.
    Anon,
    /// Virtual size: judged only against a real address-space limit.
    Vm,
    /// File-backed resident pages: reclaimable page cache, reported only.
    File,
    /// Resident set (anon + file + shmem), for sources that do not split
    /// it (Prometheus); recordings judge anon and file apart.
    Rss,
}

impl Metric {
    /// The metrics judged by default.
    pub const ALL: [Metric; 3] = [Metric::Anon, Metric::Vm, Metric::File];

    /// The name used in flags, reports and config files.
    pub fn name(self) -> &'static str {
        match self {
            Metric::Anon => "anon",
            Metric::Vm => "vm",
            Metric::File => "file",
            Metric::Rss => "rss",
        }
    }

    /// The metric a user's spelling names (case-insensitive, with aliases).
    pub fn parse(s: &str) -> Option<Metric> {
        match s.trim().to_ascii_lowercase().as_str() {
            "anon" | "anonymous" => Some(Metric::Anon),
            "file" => Some(Metric::File),
            "rss" => Some(Metric::Rss),
            "vm" | "vms" | "virtual" => Some(Metric::Vm),
            _ => None,
        }
    }

    /// This metric's figure of a sample, bytes.
    pub fn of(self, m: &Mem) -> f64 {
        (match self {
            Metric::Anon => m.rss_anon + m.rss_shmem + m.swap,
            Metric::Vm => m.vm,
            Metric::File => m.rss_file,
            Metric::Rss => m.rss(),
        }) as f64
    }

    /// Whether the CI rule (memory kept) applies: only to memory that the
    /// process holds, never to address space or page cache.
    pub fn is_kept_memory(self) -> bool {
        matches!(self, Metric::Anon | Metric::Rss)
    }
}

impl fmt::Display for Metric {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Which model produced a finding.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Model {
    /// Linear backward regression.
    Lbr,
    /// Cycle minima rising (sawtooth / cyclic leak).
    Sawtooth,
    /// Theil–Sen slope with Mann–Kendall significance.
    Trend,
}

impl Model {
    /// The name used in flags, reports and config files.
    pub fn name(self) -> &'static str {
        match self {
            Model::Lbr => "lbr",
            Model::Sawtooth => "sawtooth",
            Model::Trend => "trend",
        }
    }
}

/// Which models judge a series.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ModelChoice {
    /// LBR alone (the original tool's model, fixed).
    Lbr,
    /// The sawtooth model alone.
    Sawtooth,
    /// The robust trend model alone.
    Trend,
    /// All three combined (see the module documentation).
    #[default]
    All,
}

impl ModelChoice {
    /// Every choice, in the order `--help` lists them.
    pub const ALL: [ModelChoice; 4] = [
        ModelChoice::Lbr,
        ModelChoice::Sawtooth,
        ModelChoice::Trend,
        ModelChoice::All,
    ];

    /// The name used in flags, reports and config files.
    pub fn name(self) -> &'static str {
        match self {
            ModelChoice::Lbr => "lbr",
            ModelChoice::Sawtooth => "sawtooth",
            ModelChoice::Trend => "trend",
            ModelChoice::All => "all",
        }
    }

    /// What a user's spelling names (see [`Self::name`]).
    pub fn parse(s: &str) -> Option<ModelChoice> {
        match s.trim().to_ascii_lowercase().as_str() {
            "lbr" => Some(ModelChoice::Lbr),
            "sawtooth" | "cyclic" => Some(ModelChoice::Sawtooth),
            "trend" | "theil-sen" => Some(ModelChoice::Trend),
            "all" | "combined" => Some(ModelChoice::All),
            _ => None,
        }
    }
}

/// How worrying a finding is; ordered from least to most.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// No rising straight line explains the recent data.
    NoTrend,
    /// A consistent rise that does not reach the limit within the horizon
    /// (or with no known limit): worth a look, not flagged.
    Growing,
    /// Would be a leak by the rule, but the process exited by itself: its
    /// work had an end, and memory figures cannot tell a leak from memory
    /// the work needed until then. Reported (peak, growth), never failed by
    /// itself ([`evidence`]).
    GrewUntilExit,
    /// Flagged on evidence ([`evidence::Evidence`]).
    Leak,
}

impl Verdict {
    /// The name used in flags, reports and config files.
    pub fn name(self) -> &'static str {
        match self {
            Verdict::NoTrend => "no_trend",
            Verdict::Growing => "growing",
            Verdict::GrewUntilExit => "grew_until_exit",
            Verdict::Leak => "leak",
        }
    }
}

/// Which question a verdict answers.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Rule {
    /// "Will this process run out of memory soon?": a leak reaches its
    /// limit within the horizon (`record`, `watch`: long-running processes
    /// on the machine they run on).
    #[default]
    Horizon,
    /// "Does this keep memory it should give back?": sustained growth to
    /// the end of the process's life that keeps more than `min_kept` is a
    /// leak whatever the time to the limit (`run`: a test runs seconds on
    /// a big CI machine, the code it tests runs for weeks in a small
    /// container). The projection stays in the finding as urgency.
    Ci,
}

impl Rule {
    /// The name used in flags, reports and config files.
    pub fn name(self) -> &'static str {
        match self {
            Rule::Horizon => "horizon",
            Rule::Ci => "ci",
        }
    }

    /// What a user's spelling names (see [`Self::name`]).
    pub fn parse(s: &str) -> Option<Rule> {
        match s.trim().to_ascii_lowercase().as_str() {
            "horizon" => Some(Rule::Horizon),
            "ci" | "kept" => Some(Rule::Ci),
            _ => None,
        }
    }

    /// The rule a recording made by `origin` ("run", "record", "watch") is
    /// judged by unless the user says otherwise.
    pub fn for_origin(origin: Option<&str>) -> Rule {
        match origin {
            Some("run") => Rule::Ci,
            _ => Rule::Horizon,
        }
    }
}

/// Thresholds of the analysis. Durations in seconds, sizes in bytes.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Settings {
    /// R² a window needs (paper default 0.8; 0.9 here).
    pub r2: f64,
    /// Flag when the limit is reached within this many seconds.
    pub horizon_s: f64,
    /// Smallest window (grid points); shorter series are skipped.
    pub min_points: usize,
    /// Warm-up dropped: this fraction of the process's lifetime...
    pub warmup_fraction: f64,
    /// ...but at most this many seconds.
    pub warmup_max_s: f64,
    /// A spacing above `gap_factor × interval` (and above `min_gap_s`) is a gap.
    pub gap_factor: f64,
    pub min_gap_s: f64,
    /// At most this many grid points per segment (the grid coarsens).
    pub max_points: usize,
    /// Fitted growth across the window must exceed this many bytes...
    pub min_growth_bytes: f64,
    /// ...and this fraction of the value at the window's start.
    pub min_growth_fraction: f64,
    /// Metrics analysed.
    pub metrics: Vec<Metric>,
    /// Models that judge each series.
    pub model: ModelChoice,
    /// The rule verdicts follow; `None`: the one of the command that made
    /// the recording ([`Rule::for_origin`]).
    pub rule: Option<Rule>,
    /// CI rule: a leak keeps more than this many bytes...
    pub min_kept_bytes: f64,
    /// ...and more than this fraction of the value at the window's start.
    pub min_kept_fraction: f64,
    /// A memory limit stated by hand (the production container's), bytes.
    pub limit_bytes: Option<f64>,
    /// A limit stated by hand: a marked phase (test) is flagged when one
    /// run of it kept this many bytes of anonymous memory; `None`: only the
    /// confirmation rule of `test_floor_bytes` applies. See
    /// [`phases::test_verdicts`].
    pub test_kept_bytes: Option<f64>,
    /// A test that ran more than once is flagged when every run after the
    /// first kept at least this many bytes ([`phases::TEST_FLOOR_BYTES`]).
    pub test_floor_bytes: f64,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            r2: 0.9,
            horizon_s: 3600.0,
            min_points: 20,
            warmup_fraction: 0.1,
            warmup_max_s: 30.0,
            gap_factor: 5.0,
            min_gap_s: 2.0,
            max_points: 4096,
            min_growth_bytes: 1024.0 * 1024.0,
            min_growth_fraction: 0.01,
            metrics: Metric::ALL.to_vec(),
            model: ModelChoice::All,
            rule: None,
            min_kept_bytes: 32.0 * 1024.0 * 1024.0,
            min_kept_fraction: 0.1,
            limit_bytes: None,
            test_kept_bytes: None,
            test_floor_bytes: phases::TEST_FLOOR_BYTES,
        }
    }
}

impl Settings {
    /// Checks every threshold is usable; the message names the setting.
    pub fn validate(&self) -> Result<(), AnalyseError> {
        let bad = |what: &str, why: &str| Err(AnalyseError::Settings(format!("{what}: {why}")));
        let finite_nonneg = |v: f64| v.is_finite() && v >= 0.0;
        if !(self.r2 > 0.0 && self.r2 <= 1.0) {
            return bad("r2", "must be in (0, 1]");
        }
        if !(self.horizon_s.is_finite() && self.horizon_s > 0.0) {
            return bad("horizon", "must be a positive duration");
        }
        if self.min_points < 3 {
            return bad("min_points", "must be at least 3");
        }
        if self.max_points < self.min_points {
            return bad("max_points", "must be at least min_points");
        }
        if !(finite_nonneg(self.warmup_fraction) && self.warmup_fraction < 1.0) {
            return bad("warmup_fraction", "must be in [0, 1)");
        }
        if !finite_nonneg(self.warmup_max_s) {
            return bad("warmup", "must be a non-negative duration");
        }
        if !(self.gap_factor.is_finite() && self.gap_factor >= 1.0) {
            return bad("gap_factor", "must be at least 1");
        }
        if !finite_nonneg(self.min_gap_s) {
            return bad("min_gap", "must be a non-negative duration");
        }
        if !finite_nonneg(self.min_growth_bytes) {
            return bad("min_growth", "must be a non-negative size");
        }
        if !finite_nonneg(self.min_growth_fraction) {
            return bad("min_growth_fraction", "must be non-negative");
        }
        if self.metrics.is_empty() {
            return bad("metrics", "name at least one of anon, vm, file, rss");
        }
        if !finite_nonneg(self.min_kept_bytes) {
            return bad("min_kept", "must be a non-negative size");
        }
        if !finite_nonneg(self.min_kept_fraction) {
            return bad("min_kept_fraction", "must be non-negative");
        }
        if !finite_nonneg(self.test_floor_bytes) {
            return bad("test_floor", "must be a non-negative size");
        }
        if self
            .limit_bytes
            .is_some_and(|l| !(l.is_finite() && l > 0.0))
        {
            return bad("limit", "must be a positive size");
        }
        Ok(())
    }

    /// Smallest growth the CI rule flags for a window starting at `value`.
    pub fn min_kept(&self, value: f64) -> f64 {
        self.min_kept_bytes
            .max(self.min_kept_fraction * value.abs())
    }

    /// Smallest fitted growth that counts for a window starting at `value`.
    pub fn min_growth(&self, value: f64) -> f64 {
        self.min_growth_bytes
            .max(self.min_growth_fraction * value.abs())
    }
}

/// The analysed stretch of a series, kept for plots of flagged findings.
#[derive(Clone, Debug, PartialEq)]
pub struct Plot {
    pub t: Vec<f64>,
    pub y: Vec<f64>,
}

/// Buckets a [`Plot`] keeps (two points each): a chart or a sparkline is
/// at most a few hundred pixels wide, and every leak finding keeps its
/// plot until the report is written, so a machine with thousands of
/// leaking processes must not keep thousands of whole series.
pub const PLOT_BUCKETS: usize = 128;

impl Plot {
    /// The series, reduced to each bucket's lowest and highest point in
    /// time order (first and last kept): a sawtooth keeps its teeth and a
    /// spike its peak, which every-k-th sampling would lose.
    pub fn of(t: &[f64], y: &[f64]) -> Plot {
        let n = t.len().min(y.len());
        if n <= 2 * PLOT_BUCKETS {
            return Plot {
                t: t[..n].to_vec(),
                y: y[..n].to_vec(),
            };
        }
        let mut keep = Vec::with_capacity(2 * PLOT_BUCKETS + 2);
        keep.push(0);
        for b in 0..PLOT_BUCKETS {
            let (lo, hi) = (b * n / PLOT_BUCKETS, (b + 1) * n / PLOT_BUCKETS);
            let by_value = |a: &usize, b: &usize| y[*a].total_cmp(&y[*b]);
            let min = (lo..hi).min_by(by_value).unwrap_or(lo);
            let max = (lo..hi).max_by(by_value).unwrap_or(lo);
            keep.extend([min.min(max), min.max(max)]);
        }
        keep.push(n - 1);
        keep.dedup();
        Plot {
            t: keep.iter().map(|&i| t[i]).collect(),
            y: keep.iter().map(|&i| y[i]).collect(),
        }
    }
}

/// What one model concluded about one metric of one process.
#[derive(Clone, Debug, PartialEq)]
pub struct Finding {
    pub model: Model,
    pub metric: Metric,
    pub verdict: Verdict,
    /// The chosen window's fit; `None` when no window qualified.
    pub fit: Option<WindowFit>,
    /// Best R² of any window (for "why not" messages).
    pub best_r2: f64,
    pub limit: Limit,
    /// Last value of the analysed segment.
    pub last_value: f64,
    /// Highest value over the process's whole recorded life, when the
    /// finding was judged with its life ([`analyse_process`]).
    pub peak: Option<f64>,
    /// Seconds from the segment's last sample until the fitted line reaches
    /// the limit (0 when already there); `None` without a rise or a limit.
    pub time_to_limit_s: Option<f64>,
    /// Index of the analysed segment, and how many the series had.
    pub segment: usize,
    pub segments: usize,
    /// One sentence for people.
    pub why: String,
    /// Trend model: one-sided Mann–Kendall p-value of a rise.
    pub p_value: Option<f64>,
    /// Sawtooth model: drops (cycles) seen in the segment.
    pub cycles: Option<usize>,
    /// What a leak verdict rests on; `None` for other verdicts.
    pub evidence: Option<evidence::Evidence>,
    /// The analysed segment (only for leaks, to bound memory).
    pub plot: Option<Plot>,
}

impl Finding {
    /// Sort key: leaks first, then the shortest time to limit.
    pub fn urgency(&self) -> (std::cmp::Reverse<Verdict>, f64) {
        (
            std::cmp::Reverse(self.verdict),
            self.time_to_limit_s.unwrap_or(f64::INFINITY),
        )
    }
}

fn cmp_urgency(a: &Finding, b: &Finding) -> std::cmp::Ordering {
    let (va, ta) = a.urgency();
    let (vb, tb) = b.urgency();
    va.cmp(&vb).then(ta.total_cmp(&tb))
}

/// A process as reports name it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProcessRef {
    pub id: ProcId,
    pub ppid: u32,
    pub comm: String,
    pub cmdline: Option<String>,
    pub exit_code: Option<i32>,
}

/// All findings about one analysed process, the most urgent first.
#[derive(Clone, Debug, PartialEq)]
pub struct ProcessResult {
    pub process: ProcessRef,
    /// The most severe verdict of its findings.
    pub verdict: Verdict,
    pub findings: Vec<Finding>,
    /// Seconds the process was observed (first to last point).
    pub observed_s: f64,
    /// How its recorded life ended.
    pub end: ProcessEnd,
    /// Bytes of anon memory it gave back as it exited (not held against it).
    pub released_at_exit: Option<f64>,
}

impl ProcessResult {
    /// The most urgent finding.
    pub fn top(&self) -> Option<&Finding> {
        self.findings.first()
    }
}

/// Why a series was not judged.
#[derive(Clone, Debug, PartialEq)]
pub enum SkipReason {
    /// The process has no samples.
    NoSamples,
    /// No point had a finite time and values.
    NoFiniteValues,
    /// After warm-up and gap splitting no segment had enough points.
    TooShort {
        /// Grid points of the longest segment.
        points: usize,
        needed: usize,
        /// Its length in seconds.
        span_s: f64,
    },
}

impl SkipReason {
    /// Stable identifier (JSON, summaries).
    pub fn kind(&self) -> &'static str {
        match self {
            SkipReason::NoSamples => "no_samples",
            SkipReason::NoFiniteValues => "no_finite_values",
            SkipReason::TooShort { .. } => "too_short",
        }
    }
}

impl fmt::Display for SkipReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SkipReason::NoSamples => f.write_str("no samples"),
            SkipReason::NoFiniteValues => f.write_str("no usable (finite) values"),
            SkipReason::TooShort {
                points,
                needed,
                span_s,
            } => write!(
                f,
                "too short to judge: {points} points ({}) after warm-up and gap splitting, {needed} needed",
                fmt_duration(*span_s)
            ),
        }
    }
}

/// A process that was not judged, and why.
#[derive(Clone, Debug, PartialEq)]
pub struct Skipped {
    pub process: ProcessRef,
    pub reason: SkipReason,
}

/// What the recording was, for report headers.
#[derive(Clone, Debug, PartialEq)]
pub struct RecordingInfo {
    pub path: PathBuf,
    pub command: Option<String>,
    pub sampler: String,
    pub host: String,
    pub interval_s: f64,
    pub duration_s: f64,
    pub exit_code: Option<i32>,
    pub processes: usize,
    /// Wall clock (Unix seconds) at time 0 of the series, when known:
    /// plots label their axis with it.
    pub start_unix: Option<f64>,
}

/// The analysis of a whole recording.
#[derive(Clone, Debug, PartialEq)]
pub struct Analysis {
    pub recording: RecordingInfo,
    pub settings: Settings,
    /// Judged processes, the most urgent first.
    pub results: Vec<ProcessResult>,
    /// Processes not judged, the first [`LISTED_SKIPPED`] of them.
    pub skipped: Vec<Skipped>,
    /// Every process not judged, by reason kind (including those past
    /// [`LISTED_SKIPPED`]).
    pub skip_counts: BTreeMap<&'static str, usize>,
}

impl Analysis {
    /// Processes with a leak verdict, most urgent first.
    pub fn leaks(&self) -> impl Iterator<Item = &ProcessResult> {
        self.results.iter().filter(|r| r.verdict == Verdict::Leak)
    }

    /// Whether any process was flagged (the `--fail-on-leak` question).
    pub fn any_leak(&self) -> bool {
        self.leaks().next().is_some()
    }

    /// How many processes got `verdict`.
    pub fn count(&self, verdict: Verdict) -> usize {
        self.results.iter().filter(|r| r.verdict == verdict).count()
    }

    /// Skipped processes by reason kind, e.g. `[("too_short", 12)]`.
    pub fn skip_counts(&self) -> Vec<(&'static str, usize)> {
        self.skip_counts.iter().map(|(k, n)| (*k, *n)).collect()
    }

    /// How many processes were not judged (listed or not).
    pub fn skipped_total(&self) -> usize {
        self.skip_counts.values().sum()
    }
}

/// Why the analysis refused to run.
#[derive(Debug, thiserror::Error)]
pub enum AnalyseError {
    #[error("invalid analysis setting {0}")]
    Settings(String),
}

/// One metric's values of a series, and the limit it is judged against.
#[derive(Clone, Copy, Debug)]
pub struct SeriesInput<'a> {
    pub metric: Metric,
    pub values: &'a [f64],
    pub limit: Limit,
}

/// Judges a chosen window: see the module documentation for the rule.
fn judge(
    metric: Metric,
    fit: &WindowFit,
    limit: Limit,
    settings: &Settings,
) -> (Verdict, Option<f64>, String) {
    let window = format!(
        "the last {} ({} points, R² {:.3})",
        fmt_duration(fit.span_s()),
        fit.points,
        fit.r2
    );
    judge_over(metric, fit, limit, settings, &window)
}

/// [`judge`] with the window described by the caller ("the last 5 min
/// (...)").
fn judge_over(
    metric: Metric,
    fit: &WindowFit,
    limit: Limit,
    settings: &Settings,
    window: &str,
) -> (Verdict, Option<f64>, String) {
    if fit.slope <= 0.0 {
        return (
            Verdict::NoTrend,
            None,
            format!(
                "{metric} does not rise over {window}: {}",
                fmt_rate(fit.slope)
            ),
        );
    }
    let growth = fit.growth();
    let needed = settings.min_growth(fit.fitted_start());
    if growth <= needed {
        return (
            Verdict::NoTrend,
            None,
            format!(
                "{metric} rises only {} over {window}, not more than the {} minimum",
                fmt_bytes(growth),
                fmt_bytes(needed)
            ),
        );
    }
    let rise = format!("{metric} grows {} over {window}", fmt_rate(fit.slope));
    let Some(lim) = limit.bytes else {
        return (
            Verdict::Growing,
            None,
            format!("{rise}; {}", limit.source.no_limit_why()),
        );
    };
    let ttl = ((lim - fit.fitted_end) / fit.slope).max(0.0);
    let target = format!("{} ({})", fmt_bytes(lim), limit.source.describe());
    if !ttl.is_finite() {
        return (
            Verdict::Growing,
            None,
            format!("{rise}; it would never reach {target}"),
        );
    }
    if ttl <= settings.horizon_s {
        let why = if ttl == 0.0 {
            format!("{rise}; it is already at or above {target}")
        } else {
            format!(
                "{rise}; at that rate it reaches {target} in {}, within the {} horizon",
                fmt_duration(ttl),
                fmt_duration(settings.horizon_s)
            )
        };
        (Verdict::Leak, Some(ttl), why)
    } else {
        (
            Verdict::Growing,
            Some(ttl),
            format!(
                "{rise}; at that rate it reaches {target} in {}, beyond the {} horizon",
                fmt_duration(ttl),
                fmt_duration(settings.horizon_s)
            ),
        )
    }
}

/// LBR on one metric of one segment.
fn lbr_finding(
    t: &[f64],
    y: &[f64],
    input: &SeriesInput<'_>,
    segment: usize,
    segments: usize,
    settings: &Settings,
) -> Finding {
    let scan = lbr::scan(t, y, settings.min_points, settings.r2);
    let last_value = y.last().copied().unwrap_or(f64::NAN);
    let mut finding = Finding {
        model: Model::Lbr,
        metric: input.metric,
        verdict: Verdict::NoTrend,
        fit: None,
        best_r2: scan.best_r2,
        limit: input.limit,
        last_value,
        peak: None,
        time_to_limit_s: None,
        segment,
        segments,
        why: String::new(),
        p_value: None,
        cycles: None,
        evidence: None,
        plot: None,
    };
    let Some(chosen) = scan.chosen else {
        let (lo, hi) = y
            .iter()
            .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), &v| {
                (a.min(v), b.max(v))
            });
        if lo == hi {
            finding.why = format!(
                "{} stays at {} over the last {}",
                input.metric,
                fmt_bytes(lo),
                fmt_duration(t.last().unwrap_or(&0.0) - t.first().unwrap_or(&0.0))
            );
            return finding;
        }
        finding.why = format!(
            "no window of at least {} points fits a straight line with R² ≥ {} (best R² {:.2})",
            settings.min_points, settings.r2, scan.best_r2
        );
        return finding;
    };
    // The reported fit: a two-pass fit of the chosen window (the scan's
    // running sums agree to 1e-9; the direct sums are the reference).
    let start = t.len() - chosen.points;
    let fit = lbr::direct_fit(&t[start..], &y[start..])
        .filter(|f| f.slope.is_finite() && f.fitted_end.is_finite())
        .unwrap_or(chosen);
    let (verdict, ttl, why) = judge(input.metric, &fit, input.limit, settings);
    finding.verdict = verdict;
    finding.time_to_limit_s = ttl;
    finding.fit = Some(fit);
    finding.why = why;
    if verdict == Verdict::Leak {
        finding.plot = Some(Plot::of(t, y));
    }
    finding
}

/// Analyses one process's series (all `inputs` share the times `t`, in
/// seconds): pre-processing, then LBR per metric and segment. Returns one
/// finding per input, the most urgent first, or why the series was skipped.
/// `interval_s` is the sampling interval (0 or non-finite: estimated).
/// Pure: no I/O, never panics on NaN, empty or huge input.
pub fn analyse_series(
    t: &[f64],
    inputs: &[SeriesInput<'_>],
    interval_s: f64,
    settings: &Settings,
) -> Result<Vec<Finding>, SkipReason> {
    let columns: Vec<&[f64]> = inputs.iter().map(|i| i.values).collect();
    let segments = preprocess::prepare(t, &columns, interval_s, settings)?;
    let mut findings = Vec::with_capacity(inputs.len());
    for (m, input) in inputs.iter().enumerate() {
        let mut best: Option<Finding> = None;
        for (s, seg) in segments.iter().enumerate() {
            let f = models::segment_finding(
                &seg.t,
                &seg.columns[m],
                input,
                s,
                segments.len(),
                settings,
            );
            // Most urgent wins; on a tie the later segment (more recent).
            best = match best {
                Some(b) if cmp_urgency(&b, &f).is_lt() => Some(b),
                _ => Some(f),
            };
        }
        findings.extend(best);
    }
    findings.sort_by(cmp_urgency);
    Ok(findings)
}

/// What [`analyse_process`] concluded about one process.
#[derive(Clone, Debug, PartialEq)]
pub struct Judged {
    /// One finding per input metric, the most urgent first.
    pub findings: Vec<Finding>,
    /// Bytes released in the exit teardown (see [`life::exit_teardown`]).
    pub released_at_exit: Option<f64>,
}

/// Analyses one process's life: cuts its exit teardown (when it exited),
/// runs the models on every metric ([`analyse_series`]), then weighs the
/// evidence: `rule`, how the process ended and its peak
/// ([`evidence::apply`]). Pure.
pub fn analyse_process(
    t: &[f64],
    inputs: &[SeriesInput<'_>],
    end: ProcessEnd,
    interval_s: f64,
    rule: Rule,
    settings: &Settings,
) -> Result<Judged, SkipReason> {
    let mut n = t.len();
    let mut released_at_exit = None;
    if end.exited() {
        // The teardown is found on the memory that is kept (anon, else rss)
        // and cut from every metric at the same instant.
        let key = inputs
            .iter()
            .find(|i| i.metric == Metric::Anon)
            .or_else(|| inputs.iter().find(|i| i.metric.is_kept_memory()));
        if let Some(key) = key {
            let peak = peak_of(key.values);
            if let Some((cut, released)) =
                life::exit_teardown(t, key.values, interval_s, settings.min_growth(peak))
            {
                n = cut;
                released_at_exit = Some(released);
            }
        }
    }
    let cut: Vec<SeriesInput<'_>> = inputs
        .iter()
        .map(|i| SeriesInput {
            values: &i.values[..n.min(i.values.len())],
            ..*i
        })
        .collect();
    let mut findings = analyse_series(&t[..n], &cut, interval_s, settings)?;
    for f in &mut findings {
        let whole = inputs.iter().find(|i| i.metric == f.metric);
        let life = evidence::Life {
            end,
            released: released_at_exit,
            peak: whole.map_or(f.last_value, |i| peak_of(i.values)),
        };
        evidence::apply(f, life, rule, settings);
        if f.verdict >= Verdict::GrewUntilExit && f.plot.is_none() {
            if let Some(i) = cut.iter().find(|i| i.metric == f.metric) {
                f.plot = Some(Plot::of(&t[..n], i.values));
            }
        }
    }
    findings.sort_by(cmp_urgency);
    Ok(Judged {
        findings,
        released_at_exit,
    })
}

/// Highest finite value (0 for none).
fn peak_of(values: &[f64]) -> f64 {
    values
        .iter()
        .copied()
        .filter(|v| v.is_finite())
        .fold(0.0, f64::max)
}

/// One process of a recording, loaded for [`analyse_process`].
#[derive(Clone, Debug)]
pub struct LoadedProcess {
    /// Seconds since the recording's start.
    pub t: Vec<f64>,
    /// One column per metric of the settings.
    pub columns: Vec<(Metric, Vec<f64>)>,
    /// The limit of each column's metric.
    pub limits: Vec<Limit>,
    pub end: ProcessEnd,
}

impl LoadedProcess {
    /// The series of each metric with its limit, for the first `n` samples.
    pub fn inputs(&self, n: usize) -> Vec<SeriesInput<'_>> {
        self.columns
            .iter()
            .zip(&self.limits)
            .map(|((metric, v), &limit)| SeriesInput {
                metric: *metric,
                values: &v[..n.min(v.len())],
                limit,
            })
            .collect()
    }
}

/// How many skipped processes an [`Analysis`] lists by name; the rest are
/// only counted (a machine-wide recording can hold millions of one-sample
/// processes, and a report listing each helps nobody).
pub const LISTED_SKIPPED: usize = 1000;

/// Gathers per-process outcomes into an [`Analysis`]: every analyser
/// (recordings, Prometheus, directories) ends here, so the order and the
/// bound on listed skips are the same everywhere.
#[derive(Debug, Default)]
pub struct Collector {
    results: Vec<ProcessResult>,
    skipped: Vec<Skipped>,
    skip_counts: BTreeMap<&'static str, usize>,
}

impl Collector {
    /// Records what [`analyse_process`] concluded about `process`.
    pub fn add(
        &mut self,
        process: ProcessRef,
        observed_s: f64,
        end: ProcessEnd,
        outcome: Result<Judged, SkipReason>,
    ) {
        match outcome {
            Ok(j) => self.results.push(ProcessResult {
                process,
                verdict: j.findings.first().map_or(Verdict::NoTrend, |f| f.verdict),
                findings: j.findings,
                observed_s,
                end,
                released_at_exit: j.released_at_exit,
            }),
            Err(reason) => {
                *self.skip_counts.entry(reason.kind()).or_default() += 1;
                if self.skipped.len() < LISTED_SKIPPED {
                    self.skipped.push(Skipped { process, reason });
                }
            }
        }
    }

    /// The analysis, most urgent first.
    pub fn finish(mut self, recording: RecordingInfo, settings: Settings) -> Analysis {
        self.results.sort_by(|a, b| match (a.top(), b.top()) {
            (Some(x), Some(y)) => cmp_urgency(x, y).then(a.process.id.cmp(&b.process.id)),
            _ => a.process.id.cmp(&b.process.id),
        });
        Analysis {
            recording,
            settings,
            results: self.results,
            skipped: self.skipped,
            skip_counts: self.skip_counts,
        }
    }
}

#[cfg(test)]
pub(crate) mod tests;
