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

use crate::analyse::limits::Limit;
use crate::analyse::{
    analyse_process, life::ProcessEnd, Analysis, Collector, Metric, ProcessRef, RecordingInfo,
    SeriesInput, Settings,
};

/// Now, in Unix seconds.
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
            ProcessEnd::from_exit(Some(0), s.process.exit_code, None, false)
        };
        let rule = settings.rule.unwrap_or_default();
        let outcome = analyse_process(&s.t, &inputs, end, interval_s, rule, settings);
        collector.add(s.process.clone(), observed_s, end, outcome);
    }
    collector.finish(recording, settings.clone())
}
