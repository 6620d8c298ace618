//! `memleak watch`: a long-running recorder for nightly or continuous
//! monitoring, with a retention policy and an optional Prometheus endpoint.
//!
//! Files: `DIR/memleak-YYYYMMDD-HHMMSS.memleak` (UTC start time). A new
//! file starts at every `--rotate` boundary (aligned to UTC: `1d` rotates
//! at midnight UTC) and when the current file reaches `--max-size`; after
//! each rotation only the newest `--keep` of watch's own files stay (see
//! [`crate::record::rotate`]). Each file is an
//! ordinary recording (`memleak info`, `memleak analyze FILE`); processes
//! that live across a rotation continue in the next file, and `memleak
//! analyze DIR --since ... --until ...` stitches them back together. The
//! sampler restarts at a rotation, so there is a pause of a few
//! milliseconds to a second between files.
//!
//! With `--metrics ADDR`, every `--refresh` the recent files are read, the
//! analyser runs over the last `--window`, and `GET /metrics` serves the
//! result (see [`crate::export::metrics`]).

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use clap::Args;

use super::analyze::AnalysisArgs;
use super::common::{parse_duration, ScopeArgs, SnapshotArgs};
use crate::analyse::units::parse_bytes;
use crate::analyse::Metric;
use crate::export::{self, metrics};
use crate::record::{record_until, rotate};
use crate::source::follow::Follower;
use crate::source::{now_unix, range};

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
    #[arg(long, value_parser = parse_bytes, value_name = "SIZE")]
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

    /// How often the metrics are recomputed (read + analyse).
    #[arg(long, default_value = "5s", value_parser = parse_duration, value_name = "DURATION")]
    pub refresh: Duration,

    /// The analyser behind the leak-suspect metrics looks at this much of
    /// the recent past.
    #[arg(long, default_value = "15m", value_parser = parse_duration, value_name = "DURATION")]
    pub window: Duration,

    #[command(flatten)]
    pub analysis: AnalysisArgs,
}

/// File name of a recording started at `unix` seconds.
pub fn file_name(unix: u64) -> String {
    let (d, s) = (unix / 86_400, unix % 86_400);
    let (y, m, day) = super::common::civil_from_days(d as i64);
    format!(
        "memleak-{y:04}{m:02}{day:02}-{:02}{:02}{:02}.memleak",
        s / 3600,
        s / 60 % 60,
        s % 60
    )
}

/// Seconds from `now` to the next multiple of `every` (never 0).
pub fn until_boundary(now: f64, every: f64) -> f64 {
    let next = ((now / every).floor() + 1.0) * every;
    (next - now).max(0.001)
}

fn file_size(path: &Path) -> u64 {
    ["", "-wal"]
        .iter()
        .map(|s| {
            let mut p = path.as_os_str().to_owned();
            p.push(s);
            std::fs::metadata(PathBuf::from(p)).map_or(0, |m| m.len())
        })
        .sum()
}

pub fn run(args: WatchArgs) -> Result<i32> {
    let Some(scope) = args.scope.scope(false)? else {
        bail!("nothing to watch: give --all, --cgroup PATH or --pid PID");
    };
    if args.keep == 0 {
        bail!("--keep must be at least 1");
    }
    if args.rotate < Duration::from_secs(1) {
        bail!("--rotate must be at least 1s");
    }
    let settings = args.analysis.settings()?;
    rotate::prepare_dir(&args.dir)?;

    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(sig, Arc::clone(&stop)).context("signal handler")?;
    }

    // Held until the end: dropping it stops the endpoint and its refresher.
    let _metrics = match &args.metrics {
        Some(addr) => Some(serve_metrics(addr, &args, settings)?),
        None => None,
    };

    let started = Instant::now();
    loop {
        if stop.load(Ordering::Relaxed) {
            break;
        }
        let now = now_unix();
        let mut chunk = Duration::from_secs_f64(until_boundary(now, args.rotate.as_secs_f64()));
        if let Some(total) = args.duration {
            let left = total.saturating_sub(started.elapsed());
            if left.is_zero() {
                break;
            }
            chunk = chunk.min(left);
        }
        let mut output = args.dir.join(file_name(now as u64));
        let mut n = 1;
        while output.exists() {
            output = args
                .dir
                .join(file_name(now as u64).replace(".memleak", &format!("-{n}.memleak")));
            n += 1;
        }
        let opts = args.snapshot.record_options(
            "watch",
            output.clone(),
            scope.clone(),
            Some(chunk),
            None,
            false,
        );
        // Size rotation: a watcher sets the flag record_until checks.
        let rotate = Arc::new(AtomicBool::new(false));
        let done = Arc::new(AtomicBool::new(false));
        let size_watch = args.max_size.map(|max| {
            let (rotate, done, path) = (Arc::clone(&rotate), Arc::clone(&done), output.clone());
            std::thread::spawn(move || {
                while !done.load(Ordering::Relaxed) {
                    if file_size(&path) as f64 >= max {
                        rotate.store(true, Ordering::Relaxed);
                        break;
                    }
                    std::thread::sleep(Duration::from_millis(500));
                }
            })
        });
        diag!("memleak: recording to {}", output.display());
        let outcome = record_until(&opts, Some(&rotate))
            .with_context(|| format!("recording to {}", output.display()));
        done.store(true, Ordering::Relaxed);
        if let Some(h) = size_watch {
            let _ = h.join();
        }
        let outcome = outcome?;
        for note in &outcome.notes {
            diag!("memleak: note: {note}");
        }
        for gone in rotate::prune(&args.dir, args.keep)? {
            diag!("memleak: removed {} (--keep {})", gone.display(), args.keep);
        }
        if let Some(e) = outcome.storage_error {
            return Err(e).context("recording stopped");
        }
        if outcome.interrupted {
            break;
        }
    }
    stop.store(true, Ordering::Relaxed);
    diag!(
        "memleak: watch stopped; recordings in {}",
        args.dir.display()
    );
    Ok(0)
}

/// Starts the metrics endpoint and, on its runtime, the refresher that
/// recomputes the text every `--refresh` (the reading and analysing on a
/// blocking thread, so scrapes are answered meanwhile).
fn serve_metrics(
    addr: &str,
    args: &WatchArgs,
    settings: crate::analyse::Settings,
) -> Result<export::server::MetricsServer> {
    let text = export::Exposition::new("");
    let server = export::server::MetricsServer::start(
        addr,
        Arc::clone(&text),
        export::server::Limits::default(),
    )
    .with_context(|| format!("serving metrics on {addr}"))?;
    diag!("memleak: metrics at http://{}/metrics", server.local_addr());
    // The exporter shows rss, anon and vm of every process whatever is judged.
    let mut metrics = settings.metrics.clone();
    for m in [Metric::Rss, Metric::Anon, Metric::Vm] {
        if !metrics.contains(&m) {
            metrics.push(m);
        }
    }
    // Only the newest files can overlap the window. The follower keeps what
    // it read between refreshes, so a refresh reads only the new samples.
    let follower = Arc::new(Mutex::new(Follower::new(&args.dir, 3, &metrics)));
    let settings = Arc::new(settings);
    let opts = Arc::new(metrics::Options {
        max_series: args.metrics_max_series.max(1),
        pid_label: args.metrics_pid_label,
    });
    let (every, window) = (args.refresh, args.window.as_secs_f64());
    server.runtime().spawn(async move {
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let (follower, settings, opts) = (
                Arc::clone(&follower),
                Arc::clone(&settings),
                Arc::clone(&opts),
            );
            let job = tokio::task::spawn_blocking(move || {
                let mut f = follower.lock().unwrap_or_else(|e| e.into_inner());
                refresh(&mut f, &settings, &opts, window)
            });
            match job.await {
                Ok(Ok(t)) => text.set(t),
                Ok(Err(e)) => {
                    text.refresh_failed();
                    tracing::warn!("metrics refresh: {e:#}");
                }
                Err(e) => {
                    text.refresh_failed();
                    tracing::warn!("metrics refresh failed: {e}");
                }
            }
        }
    });
    Ok(server)
}

/// One metrics refresh: read what was written since the last one, analyse
/// the last `window` seconds, render.
fn refresh(
    follower: &mut Follower,
    settings: &crate::analyse::Settings,
    opts: &metrics::Options,
    window: f64,
) -> Result<String> {
    let began = Instant::now();
    let now = now_unix();
    let loaded = follower.refresh(now, window)?;
    let analysis = range::analyse_loaded(&loaded, settings);
    // An exited process has no /proc entry (cgroup ""); a pid reused
    // since its last sample misnames it for at most one refresh.
    let cgroup = |p: &crate::analyse::ProcessRef| export::cgroup::of_pid(p.id.pid);
    Ok(metrics::render(
        &loaded,
        &analysis,
        opts,
        metrics::Refresh {
            window_s: window,
            analysis_s: began.elapsed().as_secs_f64(),
            at_unix: now,
        },
        &cgroup,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_boundaries() {
        assert_eq!(file_name(86_400 + 3661), "memleak-19700102-010101.memleak");
        assert_eq!(until_boundary(86_400.0 * 3.0 + 10.0, 86_400.0), 86_390.0);
        assert_eq!(until_boundary(120.0, 60.0), 60.0);
    }
}
