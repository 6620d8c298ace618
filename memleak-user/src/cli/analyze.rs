//! `memleak analyze FILE`: judge a recording and report.
//!
//! Thresholds come from the defaults, then the `[analysis]` table of a
//! config file (`--config PATH`, else `./memleak.toml` when it exists), then
//! the flags: each later source overrides the earlier.
//!
//! Exit codes: 0 when the analysis ran (leaks or not), [`EXIT_LEAK`] (3)
//! when a leak was flagged and `--fail-on-leak` was given, 1 on errors
//! (unreadable recording, bad settings), as for every command.
//!
//! [`AnalysisArgs`] and [`ReportArgs`] use long flags only so other commands
//! (`memleak run`) can flatten them next to their own.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use clap::builder::PossibleValuesParser;
use clap::{Args, ValueEnum};

use crate::analyse::config;
use crate::analyse::phases;
use crate::analyse::units::{parse_bytes, parse_duration};
use crate::analyse::Settings;
use crate::load::analyse_recording;
use crate::report::phases::Marked;
use crate::report::{self, Format};
use crate::store::Recording;

/// Exit code when a leak is flagged and `--fail-on-leak` was given.
pub const EXIT_LEAK: i32 = 3;

/// The config file looked for in the current directory without `--config`.
pub const DEFAULT_CONFIG: &str = "memleak.toml";

/// The HTML report's directory without `--report`.
pub const DEFAULT_HTML_DIR: &str = "memleak-report";

/// Thresholds of the analysis (override the config file).
#[derive(Args, Debug, Clone, Default)]
pub struct AnalysisArgs {
    /// Config file with an [analysis] table (default: ./memleak.toml if it
    /// exists). Flags override it.
    #[arg(long, value_name = "PATH")]
    pub config: Option<PathBuf>,

    /// R² a window must reach to count as a straight line [default: 0.9].
    #[arg(long, value_name = "R2")]
    pub r2: Option<f64>,

    /// Flag when the projected time to the memory limit is within this
    /// (e.g. 1h, 30m) [default: 1h].
    #[arg(long, value_parser = duration_arg, value_name = "DURATION")]
    pub horizon: Option<f64>,

    /// Fewest points a window may have; series shorter than this after
    /// pre-processing are skipped [default: 20].
    #[arg(long, value_name = "N")]
    pub min_points: Option<usize>,

    /// Longest warm-up dropped from each process's start (e.g. 30s)
    /// [default: 30s]; see --warmup-fraction.
    #[arg(long, value_parser = duration_arg, value_name = "DURATION")]
    pub warmup: Option<f64>,

    /// Warm-up as a fraction of the process's lifetime; the smaller of this
    /// and --warmup is dropped [default: 0.1].
    #[arg(long, value_name = "FRACTION")]
    pub warmup_fraction: Option<f64>,

    /// A spacing longer than this many sampling intervals (and than
    /// --min-gap) splits a series [default: 5].
    #[arg(long, value_name = "FACTOR")]
    pub gap_factor: Option<f64>,

    /// Shortest spacing that counts as a gap [default: 2s].
    #[arg(long, value_parser = duration_arg, value_name = "DURATION")]
    pub min_gap: Option<f64>,

    /// At most this many points per series segment; longer ones are
    /// resampled coarser [default: 4096].
    #[arg(long, value_name = "N")]
    pub max_points: Option<usize>,

    /// The fitted growth across the window must exceed this (e.g. 1MiB)
    /// [default: 1MiB]...
    #[arg(long, value_parser = bytes_arg, value_name = "SIZE")]
    pub min_growth: Option<f64>,

    /// ...and this fraction of the memory at the window's start
    /// [default: 0.01].
    #[arg(long, value_name = "FRACTION")]
    pub min_growth_fraction: Option<f64>,

    /// Metrics to judge: anon (anonymous + shmem resident + swap: the memory
    /// that runs out; against the process's nearest limit), vm (virtual
    /// size; flagged only against RLIMIT_AS or strict overcommit), file
    /// (file-backed resident pages: reclaimable, reported only), rss (all
    /// resident pages, for sources that do not split them), all (anon, vm,
    /// file) [default: all].
    #[arg(long, value_delimiter = ',', value_name = "METRIC",
          value_parser = PossibleValuesParser::new(["anon", "vm", "file", "rss", "all"]))]
    pub metric: Vec<String>,

    /// The memory limit of where the code will run (e.g. the production
    /// container's 512MiB): a process whose anon memory peaks above it is a
    /// leak however it ended, and anon memory is projected against it when
    /// it is nearer than the limits recorded for the process (its cgroup,
    /// RLIMIT_AS/RLIMIT_DATA, -Xmx, --max-old-space-size, GOMEMLIMIT, RAM).
    #[arg(long, value_parser = bytes_arg, value_name = "SIZE")]
    pub limit: Option<f64>,

    /// Which question a verdict answers: `ci` (memory kept: sustained growth
    /// to the end of a process's life that keeps more than --min-kept is a
    /// leak, whatever the time to the limit) or `horizon` (the limit is
    /// reached within --horizon). [default: ci for recordings made by `run`,
    /// horizon for `record` and `watch`]
    #[arg(long, value_name = "RULE",
          value_parser = PossibleValuesParser::new(["ci", "horizon"]))]
    pub rule: Option<String>,

    /// CI rule: a leak keeps more than this (e.g. 32MiB) [default: 32MiB]
    /// and more than --min-kept-fraction of the memory at the growth's start.
    #[arg(long, value_parser = bytes_arg, value_name = "SIZE")]
    pub min_kept: Option<f64>,

    /// CI rule: see --min-kept [default: 0.1].
    #[arg(long, value_name = "FRACTION")]
    pub min_kept_fraction: Option<f64>,

    /// Leak models: lbr (a straight rising line over the recent past),
    /// sawtooth (the floor of a cyclic series rises), trend (Theil–Sen slope
    /// with Mann–Kendall significance, still rising at the end), or all:
    /// combined, so warm-ups, caches and garbage-collector sawtooths are not
    /// flagged [default: all].
    #[arg(long, value_name = "MODEL",
          value_parser = PossibleValuesParser::new(["lbr", "sawtooth", "trend", "all"]))]
    pub model: Option<String>,

    /// With phase markers (e.g. pytest-memleak): a stated limit, flag a
    /// test when one run of it kept this much anonymous memory (rss_anon +
    /// shmem + swap at its end minus at its start) [default: none, only
    /// the confirmation rule of --test-floor].
    #[arg(long, value_parser = bytes_arg, value_name = "SIZE")]
    pub test_kept: Option<f64>,

    /// With phase markers: flag a test that ran more than once (the
    /// harness reran it) when every run after the first kept at least this
    /// much anonymous memory; a single run above it is reported as
    /// unconfirmed [default: 512KiB].
    #[arg(long, value_parser = bytes_arg, value_name = "SIZE")]
    pub test_floor: Option<f64>,
}

fn duration_arg(s: &str) -> Result<f64, String> {
    parse_duration(s)
}

fn bytes_arg(s: &str) -> Result<f64, String> {
    parse_bytes(s)
}

impl AnalysisArgs {
    /// The settings the flags give ([`config::Overrides`], like the
    /// config file's).
    fn overrides(&self) -> Result<config::Overrides> {
        let msg = anyhow::Error::msg;
        Ok(config::Overrides {
            r2: self.r2,
            horizon_s: self.horizon,
            min_points: self.min_points,
            warmup_s: self.warmup,
            warmup_fraction: self.warmup_fraction,
            gap_factor: self.gap_factor,
            min_gap_s: self.min_gap,
            max_points: self.max_points,
            min_growth_bytes: self.min_growth,
            min_growth_fraction: self.min_growth_fraction,
            metrics: (!self.metric.is_empty())
                .then(|| config::parse_metrics(&self.metric).map_err(msg))
                .transpose()?,
            model: self
                .model
                .as_deref()
                .map(|m| config::parse_model(m).map_err(msg))
                .transpose()?,
            rule: self
                .rule
                .as_deref()
                .map(|r| config::parse_rule(r).map_err(msg))
                .transpose()?,
            min_kept_bytes: self.min_kept,
            min_kept_fraction: self.min_kept_fraction,
            limit_bytes: self.limit,
            test_kept_bytes: self.test_kept,
            test_floor_bytes: self.test_floor,
        })
    }

    /// Defaults, then the config file, then the flags; validated.
    pub fn settings(&self) -> Result<Settings> {
        let mut s = Settings::default();
        let path = match &self.config {
            Some(p) => Some(p.clone()),
            None => Some(PathBuf::from(DEFAULT_CONFIG)).filter(|p| p.is_file()),
        };
        if let Some(path) = path {
            crate::load::config::read(&path)?
                .overrides(&path)?
                .apply(&mut s);
        }
        self.overrides()?.apply(&mut s);
        s.validate()?;
        Ok(s)
    }
}

/// Report formats, as flags name them.
#[derive(ValueEnum, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum FormatArg {
    /// Terminal table, most urgent first, with sparklines.
    #[default]
    Table,
    /// JSON (schema_version 1; see report/schema/report.schema.json).
    Json,
    /// JUnit XML: one testcase per process, failures for flagged ones.
    Junit,
    /// GitHub Actions annotations (::error / ::warning).
    Github,
    /// index.html with an inline SVG chart per flagged or growing process,
    /// in a directory.
    Html,
}

impl From<FormatArg> for Format {
    fn from(f: FormatArg) -> Format {
        match f {
            FormatArg::Table => Format::Table,
            FormatArg::Json => Format::Json,
            FormatArg::Junit => Format::Junit,
            FormatArg::Github => Format::Github,
            FormatArg::Html => Format::Html,
        }
    }
}

/// How to report (long flags only).
#[derive(Args, Debug, Clone, Default)]
pub struct ReportArgs {
    /// Report format.
    #[arg(long, value_enum, default_value_t = FormatArg::Table, value_name = "FORMAT")]
    pub format: FormatArg,

    /// Where the report goes: a file for table/json/junit/github (default:
    /// standard output), a directory for html (default: ./memleak-report).
    /// When it goes to a file, the table is also printed.
    #[arg(long, value_name = "PATH")]
    pub report: Option<PathBuf>,

    /// Exit with code 3 when a leak is flagged on evidence: a process that
    /// grew until it was stopped (or still runs), died of memory (OOM
    /// killer, failed at its own limit) or peaked over --limit, or a marked
    /// test that kept memory. A process that grew until it exited by
    /// itself is reported ("grew until exit"), never exit 3.
    #[arg(long)]
    pub fail_on_leak: bool,
}

#[derive(Args, Debug)]
pub struct AnalyzeArgs {
    /// The recording to analyse (written by `memleak record` or `memleak run`),
    /// or a directory of rotated recordings (`memleak watch`) with --since/--until.
    #[arg(required_unless_present = "prometheus")]
    pub file: Option<PathBuf>,

    #[command(flatten)]
    pub source: super::sources::SourceArgs,

    #[command(flatten)]
    pub analysis: AnalysisArgs,

    #[command(flatten)]
    pub report: ReportArgs,

    /// Same as --report.
    #[arg(short, long, value_name = "PATH", conflicts_with = "report")]
    pub output: Option<PathBuf>,
}

pub fn run(args: AnalyzeArgs) -> Result<i32> {
    let mut report = args.report;
    if report.report.is_none() {
        report.report = args.output;
    }
    let settings = args.analysis.settings()?;
    let leak = match super::sources::analyse_source(args.file.as_deref(), &args.source, &settings)?
    {
        Some((a, located)) => {
            let marked = Marked {
                located,
                ..Default::default()
            };
            emit_analysis(&a, &marked, &Default::default(), &report)?;
            a.any_leak()
        }
        None => {
            let file = args.file.as_deref().context("no recording given")?;
            analyse_and_report(file, &args.analysis, &report)?
        }
    };
    Ok(if leak && report.fail_on_leak {
        EXIT_LEAK
    } else {
        0
    })
}

/// Prints `text` to stdout; a closed pipe (`| head`) is not an error.
pub(crate) fn emit(text: &str) -> Result<()> {
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|_| out.flush()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => {
            Err(e).context("writing the report to standard output")
        }
        _ => Ok(()),
    }
}

/// Analyses a recording and reports it as `report` says; returns whether
/// any leak was flagged (a process, or a marked test that kept memory).
pub fn analyse_and_report(
    recording_path: &Path,
    analysis: &AnalysisArgs,
    report: &ReportArgs,
) -> Result<bool> {
    let settings = analysis.settings()?;
    let rec = Recording::open(recording_path)?;
    let a = analyse_recording(&rec, &settings)?;
    let marked = Marked {
        processes: crate::load::phases::for_analysis(&rec, &a)?,
        tests: test_verdicts(&rec, &settings)?,
        located: rec.located()?,
    };
    // Only the HTML report draws whole series: others need not read them.
    let charts = if report.format == FormatArg::Html {
        crate::load::charts::for_analysis(&rec, &a)?
    } else {
        Default::default()
    };
    drop(rec);
    emit_analysis(&a, &marked, &charts, report)?;
    Ok(a.any_leak() || marked.any_test_flagged())
}

/// Kept memory per marked test: reads the markers and the anonymous memory
/// of the processes that may have run them, then leaves the judging to
/// [`phases::test_verdicts`].
fn test_verdicts(rec: &Recording, settings: &Settings) -> Result<Vec<phases::TestVerdict>> {
    let marked = phases::phases_from_markers(&rec.markers()?);
    let ended = marked.iter().filter_map(|p| Some((p.start_s, p.end_s?)));
    let Some((last_start, first_end)) = ended.fold(None, |acc: Option<(f64, f64)>, (a, b)| {
        Some(acc.map_or((a, b), |(s, e)| (s.max(a), e.min(b))))
    }) else {
        return Ok(Vec::new());
    };
    let origin = rec.meta.start_ns as f64;
    let secs = |ns: u64| (ns as f64 - origin) / 1e9;
    let mut procs = Vec::new();
    rec.for_each_process(|streamed| {
        let p = &streamed.info;
        // Only a process alive across some test can have kept memory in
        // it: pass over the others (shell wrappers, short-lived helpers).
        if secs(p.id.start_ns) > last_start || p.exit_ns.is_some_and(|e| secs(e) < first_end) {
            return Ok::<(), crate::store::StoreError>(());
        }
        let series = rec.densify(p, &streamed.raw);
        procs.push(phases::AnonSeries {
            pid: p.id.pid,
            start_ns: p.id.start_ns,
            comm: p.comm.clone(),
            anon: series.mem.iter().map(phases::anon_bytes).collect(),
            t: series.t,
            exit_s: p.exit_ns.map(secs),
        });
        Ok(())
    })?;
    let threshold = phases::KeptThreshold::from_settings(settings);
    let interval_s = rec.meta.interval_ns as f64 / 1e9;
    Ok(phases::test_verdicts(
        &marked, &procs, interval_s, threshold,
    ))
}

/// Reports an analysis (and what its markers add, if any) as `report` says;
/// `charts` feeds the HTML report's plots.
pub fn emit_analysis(
    a: &crate::analyse::Analysis,
    marked: &Marked,
    charts: &report::html::Charts,
    report: &ReportArgs,
) -> Result<()> {
    let format = Format::from(report.format);
    match (format, &report.report) {
        (Format::Html, dir) => {
            let dir = dir
                .clone()
                .unwrap_or_else(|| PathBuf::from(DEFAULT_HTML_DIR));
            let index = report::html::write(a, charts, marked, &dir)?;
            emit(&report::phases::render(a, Format::Table, marked))?;
            diag!("memleak: HTML report written to {}", index.display());
        }
        (format, Some(path)) => {
            report::write_file(path, &report::phases::render(a, format, marked))?;
            if format != Format::Table {
                emit(&report::phases::render(a, Format::Table, marked))?;
            }
            diag!("memleak: report written to {}", path.display());
        }
        (format, None) => emit(&report::phases::render(a, format, marked))?,
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::load::tests::tiny_recording;
    use clap::{CommandFactory, Parser};

    #[derive(Parser, Debug)]
    struct Analyze {
        #[command(flatten)]
        args: AnalyzeArgs,
    }

    /// What `memleak run` will do: flatten both next to its own flags.
    #[derive(Parser, Debug)]
    struct RunLike {
        #[command(flatten)]
        sampling: crate::cli::common::SamplingArgs,
        #[command(flatten)]
        analysis: AnalysisArgs,
        #[command(flatten)]
        report: ReportArgs,
        #[arg(last = true)]
        command: Vec<String>,
    }

    #[test]
    fn flags_flatten_without_clashes() {
        Analyze::command().debug_assert();
        RunLike::command().debug_assert();
        let r = RunLike::try_parse_from([
            "run",
            "-o",
            "x.memleak",
            "--r2",
            "0.8",
            "--format",
            "junit",
            "--report",
            "j.xml",
            "--fail-on-leak",
            "--",
            "true",
        ])
        .unwrap();
        assert_eq!(r.analysis.r2, Some(0.8));
        assert_eq!(r.report.format, FormatArg::Junit);
        assert!(r.report.fail_on_leak);
    }

    #[test]
    fn flags_override_the_config_file() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = dir.path().join("memleak.toml");
        std::fs::write(
            &cfg,
            "[analysis]\nr2 = 0.8\nhorizon = \"2h\"\nmin_points = 40\n",
        )
        .unwrap();
        let a = Analyze::try_parse_from([
            "analyze",
            "rec.memleak",
            "--config",
            cfg.to_str().unwrap(),
            "--horizon",
            "10m",
            "--min-growth",
            "2MiB",
            "--metric",
            "rss",
            "--test-kept",
            "8MiB",
            "--test-floor",
            "512KiB",
        ])
        .unwrap();
        let s = a.args.analysis.settings().unwrap();
        assert_eq!(s.test_kept_bytes, Some(8.0 * 1048576.0));
        assert_eq!(s.test_floor_bytes, 512.0 * 1024.0);
        assert_eq!(s.r2, 0.8);
        assert_eq!(s.horizon_s, 600.0);
        assert_eq!(s.min_points, 40);
        assert_eq!(s.min_growth_bytes, 2.0 * 1048576.0);
        assert_eq!(s.metrics, vec![crate::analyse::Metric::Rss]);
        // Invalid values are refused with the setting's name.
        let a = Analyze::try_parse_from(["analyze", "f", "--r2", "3"]).unwrap();
        let e = a.args.analysis.settings().unwrap_err().to_string();
        assert!(e.contains("r2"), "{e}");
        assert!(Analyze::try_parse_from(["analyze", "f", "--horizon", "soon"]).is_err());
        assert!(Analyze::try_parse_from(["analyze", "f", "--metric", "pss"]).is_err());
    }

    #[test]
    fn exit_code_three_only_with_fail_on_leak() {
        let dir = tempfile::tempdir().unwrap();
        let rec = tiny_recording(dir.path());
        let json = dir.path().join("r.json");
        let parse = |extra: &[&str]| {
            let mut argv = vec!["analyze", rec.to_str().unwrap()];
            argv.extend_from_slice(extra);
            Analyze::try_parse_from(argv).unwrap().args
        };
        let code = run(parse(&["--format", "json", "-o", json.to_str().unwrap()])).unwrap();
        assert_eq!(code, 0);
        let v: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
        assert_eq!(v["summary"]["leaks"], 1);
        let junit = dir.path().join("j.xml");
        let code = run(parse(&[
            "--format",
            "junit",
            "--report",
            junit.to_str().unwrap(),
            "--fail-on-leak",
        ]))
        .unwrap();
        assert_eq!(code, EXIT_LEAK);
        // A horizon too short for the leak: nothing flagged, exit 0.
        let code = run(parse(&[
            "--horizon",
            "1m",
            "--fail-on-leak",
            "--report",
            dir.path().join("t.txt").to_str().unwrap(),
        ]))
        .unwrap();
        assert_eq!(code, 0);
        let html = dir.path().join("html");
        run(parse(&[
            "--format",
            "html",
            "--report",
            html.to_str().unwrap(),
        ]))
        .unwrap();
        assert!(html.join("index.html").is_file());
    }

    #[test]
    fn bad_files_give_clear_errors() {
        let dir = tempfile::tempdir().unwrap();
        let empty = dir.path().join("empty.memleak");
        std::fs::write(&empty, b"").unwrap();
        let foreign = dir.path().join("foreign.memleak");
        std::fs::write(
            &foreign,
            b"this is not a recording at all, just text\n".repeat(200),
        )
        .unwrap();
        let missing = dir.path().join("missing.memleak");
        for (path, words) in [
            (&empty, "empty"),
            (&foreign, "not a memleak recording"),
            (&missing, "no such recording"),
        ] {
            let e = analyse_and_report(path, &AnalysisArgs::default(), &ReportArgs::default())
                .unwrap_err()
                .to_string();
            assert!(e.contains(words), "{e}");
        }
    }
}
