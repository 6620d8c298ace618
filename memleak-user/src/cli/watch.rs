//! `memleak watch`'s command line; the daemon itself is [`crate::watch`].

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use clap::Args;

use super::analyze::AnalysisArgs;
use super::common::{parse_duration, ScopeArgs, SnapshotArgs};
use crate::analyse::units::parse_bytes;

/// Smallest `--max-size`: a new recording holds its schema and first
/// snapshots in about 100 KiB before any history, so a smaller bound would
/// start a new file at every snapshot (and `--keep` would then delete the
/// history minutes after it was written).
const MIN_MAX_SIZE: f64 = 1024.0 * 1024.0;

fn parse_max_size(s: &str) -> Result<f64, String> {
    let v = parse_bytes(s)?;
    if v < MIN_MAX_SIZE {
        return Err(format!(
            "{s} is too small: a recording needs about 100 KiB before it holds any history; \
             give at least 1MiB (e.g. 500MiB)"
        ));
    }
    Ok(v)
}
use crate::export::metrics;
use crate::record::sessions::{SessionLimits, Sessions};
use crate::watch::refresh::{self, MetricsOptions};
use crate::watch::{self, WatchOptions};

#[derive(Args, Debug)]
pub struct WatchArgs {
    #[command(flatten)]
    pub scope: ScopeArgs,

    /// Directory of the rotated recordings (created mode 0700 when missing;
    /// refused when another user owns it or may write to it).
    #[arg(long, default_value = "/var/lib/memleak", value_name = "DIR")]
    pub dir: PathBuf,

    /// Start a new file at every multiple of this since the Unix epoch
    /// (`1d`: at midnight UTC; `1h`, `30m`, ...).
    #[arg(long, default_value = "1d", value_parser = parse_duration, value_name = "DURATION")]
    pub rotate: Duration,

    /// Also start a new file when the current one reaches this size
    /// (e.g. 500MiB, 2GiB).
    #[arg(long, value_parser = parse_max_size, value_name = "SIZE")]
    pub max_size: Option<f64>,

    /// Keep this many recordings (the newest); older ones are deleted. Only
    /// recordings watch wrote count: another user's files are left alone.
    #[arg(long, default_value_t = 7, value_name = "N")]
    pub keep: usize,

    /// Stop after this long (default: until SIGINT/SIGTERM).
    #[arg(short, long, value_parser = parse_duration, value_name = "DURATION")]
    pub duration: Option<Duration>,

    #[command(flatten)]
    pub snapshot: SnapshotArgs,

    /// Serve Prometheus metrics at http://ADDR/metrics (e.g. 127.0.0.1:9478).
    #[arg(long, value_name = "ADDR")]
    pub metrics: Option<String>,

    /// At most this many label sets (comm, cgroup) per metric: suspects
    /// first, then the largest by rss; the rest are summed under
    /// comm="(other)".
    #[arg(long, alias = "top", default_value_t = 200, value_name = "N")]
    pub metrics_max_series: usize,

    /// Also label per-process series by pid: one series per process, and
    /// a new one at every restart (more series in Prometheus).
    #[arg(long)]
    pub metrics_pid_label: bool,

    /// How often the metrics are recomputed (read + analyse); with
    /// --locate, also how often flagged processes are looked for.
    #[arg(long, default_value = "5s", value_parser = super::common::parse_positive_duration,
          value_name = "DURATION")]
    pub refresh: Duration,

    /// The analyser behind the leak-suspect metrics (and --locate) looks
    /// at this much of the recent past.
    #[arg(long, default_value = "15m", value_parser = parse_duration, value_name = "DURATION")]
    pub window: Duration,

    /// When a refresh flags a process as a leak, sample where it first
    /// touches new memory (the page-fault probe of `memleak locate`, one
    /// fault in --locate-period) for --locate-for, and store its stacks
    /// in the current recording (`memleak info`/`analyze` show them). Only
    /// leak verdicts, not `growing` ones; a process is located once per
    /// file. Runs the refresh analysis even without --metrics. Needs root
    /// (or CAP_BPF and CAP_PERFMON) and frame pointers in the code.
    #[arg(long)]
    pub locate: bool,

    /// Page faults per --locate sample (each stands for about N x 4 KiB of
    /// new memory); spelled as on `run` and `record`.
    #[arg(long, default_value_t = crate::locate::DEFAULT_PERIOD, value_name = "N",
          value_parser = clap::value_parser!(u64).range(1..), requires = "locate")]
    pub locate_period: u64,

    /// How long one --locate session samples its process (it ends sooner
    /// when the process exits).
    #[arg(long, default_value = "60s", value_parser = parse_duration,
          value_name = "DURATION", requires = "locate")]
    pub locate_for: Duration,

    /// At most this many --locate sessions at once; a process flagged past
    /// that waits for a later refresh.
    #[arg(long, default_value_t = 4, value_name = "N", requires = "locate",
          value_parser = clap::value_parser!(u64).range(1..=64))]
    pub locate_max: u64,

    #[command(flatten)]
    pub analysis: AnalysisArgs,
}

pub fn run(args: WatchArgs) -> Result<i32> {
    let Some(scope) = args.scope.scope(false)? else {
        bail!("nothing to watch: give --all, --cgroup PATH or --pid PID");
    };
    let settings = args.analysis.settings()?;
    let opts = WatchOptions {
        // Output and duration are set per file by the daemon.
        record: args
            .snapshot
            .record_options("watch", args.dir.clone(), scope, None, None, false),
        dir: args.dir.clone(),
        rotate: args.rotate,
        max_size: args.max_size.map(|b| b as u64),
        keep: args.keep,
        duration: args.duration,
    };
    opts.check()?;
    // Before anything starts: a --locate that cannot work is an error the
    // user asked to hear about, not a watch that silently never locates.
    let (sessions, requests) = match args.locate.then_some(args.locate_period) {
        Some(period) => {
            let limits = SessionLimits {
                period,
                duration: args.locate_for,
                max: args.locate_max as usize,
            };
            let (s, r) = Sessions::new(limits).context("--locate")?;
            (Some(s), Some(r))
        }
        None => (None, None),
    };
    // Held until the end: dropping it stops the endpoint and its refresher.
    let _metrics = match &args.metrics {
        Some(addr) => Some(
            refresh::serve(MetricsOptions {
                addr: addr.clone(),
                dir: args.dir.clone(),
                every: args.refresh,
                window: args.window,
                settings: settings.clone(),
                render: metrics::Options {
                    max_series: args.metrics_max_series.max(1),
                    pid_label: args.metrics_pid_label,
                },
                locate: requests.clone(),
            })
            .with_context(|| format!("serving metrics on {addr}"))?,
        ),
        None => None,
    };
    // --locate without --metrics: the same analysis, with no endpoint.
    let _locate_only = match (&args.metrics, requests) {
        (None, Some(r)) => Some(refresh::locate_only(
            args.dir.clone(),
            args.refresh,
            args.window,
            settings,
            r,
        )),
        _ => None,
    };
    watch::run(&opts, sessions)?;
    Ok(0)
}
