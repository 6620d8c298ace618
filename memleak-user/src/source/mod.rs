//! Series from elsewhere than one recording file, analysed by the same
//! analyser ([`analyse_process`]):
//!
//! - [`range`]: a directory of rotated recordings (`memleak watch`),
//!   restricted to a time range; a process that spans several files is
//!   stitched back into one series (same boot, pid and start time);
//! - [`prometheus`]: series already in a Prometheus server (fleet data),
//!   through its HTTP API (`/api/v1/query_range`).
//!
//! Both produce [`Series`]; [`analyse_all`] turns them into an ordinary
//! [`Analysis`], so every report format works unchanged.

pub mod follow;
pub mod prometheus;
pub mod range;

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use clap::Args;

use crate::analyse::limits::Limit;
use crate::analyse::{
    analyse_process, life::ProcessEnd, Analysis, Collector, Metric, ProcessRef, RecordingInfo,
    SeriesInput, Settings,
};
use crate::cli::analyze::{emit_analysis, AnalysisArgs, ReportArgs};

/// Where `memleak analyze` reads series from, besides one recording.
#[derive(Args, Debug, Clone, Default)]
pub struct SourceArgs {
    /// With a directory of rotated recordings (`memleak watch`): analyse
    /// only samples at or after this time. RFC 3339 (`2026-11-25T02:00:00Z`,
    /// `2026-11-25 02:00:00` is UTC), `@UNIX_SECONDS`, or a duration meaning
    /// that long ago (`8h`).
    #[arg(long, alias = "from", value_parser = parse_time, value_name = "TIME")]
    pub since: Option<f64>,

    /// ...and at or before this time (same forms; default: now).
    #[arg(long, alias = "to", value_parser = parse_time, value_name = "TIME")]
    pub until: Option<f64>,

    /// Analyse series from this Prometheus server (e.g.
    /// http://127.0.0.1:9090) instead of a recording.
    #[arg(long, value_name = "URL")]
    pub prometheus: Option<String>,

    /// PromQL selecting one series per process (with --prometheus). Series
    /// whose name contains `vm` are judged as virtual size, others as rss.
    #[arg(
        long,
        default_value = "memleak_process_rss_bytes",
        requires = "prometheus",
        value_name = "PROMQL"
    )]
    pub query: String,

    /// How far back to query (with --prometheus; ends at --until or now).
    #[arg(long, default_value = "1h", value_parser = crate::cli::common::parse_duration, value_name = "DURATION")]
    pub range: std::time::Duration,

    /// Resolution of the queried series (with --prometheus).
    #[arg(long, default_value = "15s", value_parser = crate::cli::common::parse_duration, value_name = "DURATION")]
    pub step: std::time::Duration,
}

/// Parses `--since`/`--until` into Unix seconds.
pub fn parse_time(s: &str) -> Result<f64, String> {
    parse_time_at(s, now_unix())
}

fn parse_time_at(s: &str, now: f64) -> Result<f64, String> {
    let s = s.trim();
    if let Some(secs) = s.strip_prefix('@') {
        return secs
            .parse::<f64>()
            .map_err(|e| format!("{s}: {e} (expected @UNIX_SECONDS)"));
    }
    if let Ok(t) = humantime::parse_rfc3339_weak(s) {
        return Ok(t
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs_f64())
            .unwrap_or(0.0));
    }
    if let Ok(d) = humantime::parse_duration(s) {
        return Ok(now - d.as_secs_f64());
    }
    Err(format!(
        "{s}: not a time (examples: 2026-11-25T02:00:00Z, @1764036000, 8h for eight hours ago)"
    ))
}

pub fn now_unix() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

/// One process's series: times in seconds from the source's start, one
/// column per metric of the analysis (aligned with its limits).
#[derive(Clone, Debug, PartialEq)]
pub struct Series {
    pub process: ProcessRef,
    pub t: Vec<f64>,
    pub columns: Vec<(Metric, Vec<f64>)>,
    /// Still running at the end of the source (recordings only).
    pub alive: bool,
}

/// Analyses every series with [`analyse_process`] and collects an
/// [`Analysis`] sorted like the recording analyser's.
pub fn analyse_all(
    series: &[Series],
    limits: &[(Metric, Limit)],
    interval_s: f64,
    settings: &Settings,
    recording: RecordingInfo,
) -> Analysis {
    let mut collector = Collector::default();
    for s in series {
        let inputs: Vec<SeriesInput<'_>> = s
            .columns
            .iter()
            // Sources may carry more columns than are judged (the metrics
            // exporter wants rss); only the settings' metrics are analysed.
            .filter(|(metric, _)| settings.metrics.contains(metric))
            .filter_map(|(metric, values)| {
                let limit = limits.iter().find(|(m, _)| m == metric)?.1;
                Some(SeriesInput {
                    metric: *metric,
                    values,
                    limit,
                })
            })
            .collect();
        if inputs.is_empty() {
            continue;
        }
        let observed_s = match (s.t.first(), s.t.last()) {
            (Some(a), Some(b)) => b - a,
            _ => 0.0,
        };
        let end = if s.alive {
            ProcessEnd::Running
        } else {
            ProcessEnd::from_exit(Some(0), s.process.exit_code, None)
        };
        let rule = settings.rule.unwrap_or_default();
        let outcome = analyse_process(&s.t, &inputs, end, interval_s, rule, settings);
        collector.add(s.process.clone(), observed_s, end, outcome);
    }
    collector.finish(recording, settings.clone())
}

/// `memleak analyze` over a directory with a time range, or over a
/// Prometheus server; `None` when `file` is a plain recording without a
/// range (the ordinary path). Returns whether a leak was flagged.
pub fn analyse_and_report(
    file: Option<&Path>,
    source: &SourceArgs,
    analysis: &AnalysisArgs,
    report: &ReportArgs,
) -> Result<Option<bool>> {
    let settings = analysis.settings()?;
    let a = if let Some(url) = &source.prometheus {
        if file.is_some() {
            bail!("give either a recording or --prometheus, not both");
        }
        let until = source.until.unwrap_or_else(now_unix);
        let since = source.since.unwrap_or(until - source.range.as_secs_f64());
        prometheus::analyse(
            url,
            &source.query,
            since,
            until,
            source.step.as_secs_f64(),
            settings.limit_bytes,
            &settings,
        )?
    } else {
        let Some(path) = file else {
            bail!("no recording given");
        };
        if !path.is_dir() {
            if source.since.is_some() || source.until.is_some() {
                // One file with a range: the same code, one file long.
                let files = vec![PathBuf::from(path)];
                range::analyse_files(&files, source.since, source.until, &settings)?
            } else {
                return Ok(None);
            }
        } else {
            let files = range::list(path)?;
            range::analyse_files(&files, source.since, source.until, &settings)
                .with_context(|| format!("analysing the recordings in {}", path.display()))?
        }
    };
    emit_analysis(&a, &Default::default(), report)?;
    Ok(Some(a.any_leak()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_parse_in_three_forms() {
        let now = 1_764_036_000.0;
        assert_eq!(parse_time_at("@1764000000", now).unwrap(), 1_764_000_000.0);
        assert_eq!(parse_time_at("2h", now).unwrap(), now - 7200.0);
        assert_eq!(
            parse_time_at("1970-01-02T00:00:00Z", now).unwrap(),
            86_400.0
        );
        assert_eq!(parse_time_at("1970-01-02 00:00:00", now).unwrap(), 86_400.0);
        assert!(parse_time_at("yesterday", now)
            .unwrap_err()
            .contains("examples"));
    }
}
