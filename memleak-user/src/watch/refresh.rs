//! The metrics side of `memleak watch --metrics`: the HTTP endpoint, and a
//! refresher on its runtime that re-reads the newest recordings every
//! refresh, analyses the recent window and swaps in the new exposition.
//! Reading and analysing run on a blocking thread, so scrapes are answered
//! meanwhile with the previous text.
//!
//! With `--locate`, every refresh also asks the recorder to locate the
//! processes it flags ([`suspects`]); without `--metrics`, [`locate_only`]
//! runs the same read and analysis on a thread of its own, with no
//! endpoint.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::analyse::{Analysis, Metric, ProcessResult, Settings, Verdict};
use crate::export::server::{Limits, MetricsServer, ServeError};
use crate::export::{self, metrics, Shared};
use crate::record::sessions::{LocateRequest, SessionRequests};
use crate::source::follow::{FollowError, Follower};
use crate::source::{now_unix, range};

/// What the endpoint serves and how often it is recomputed.
#[derive(Clone, Debug)]
pub struct MetricsOptions {
    pub addr: String,
    /// The directory watch writes its recordings to.
    pub dir: PathBuf,
    pub every: Duration,
    /// How much of the recent past the analyser looks at.
    pub window: Duration,
    pub settings: Settings,
    pub render: metrics::Options,
    /// `--locate`: where flagged processes are asked for.
    pub locate: Option<SessionRequests>,
}

/// Starts the endpoint and its refresher. Dropping the returned server
/// stops both.
pub fn serve(opts: MetricsOptions) -> Result<MetricsServer, ServeError> {
    let text = export::Exposition::new("");
    let server = MetricsServer::start(&opts.addr, Arc::clone(&text), Limits::default())?;
    diag!("memleak: metrics at http://{}/metrics", server.local_addr());
    // The exporter shows rss, anon and vm of every process whatever is judged.
    let mut judged = opts.settings.metrics.clone();
    for m in [Metric::Rss, Metric::Anon, Metric::Vm] {
        if !judged.contains(&m) {
            judged.push(m);
        }
    }
    let follower = Arc::new(Mutex::new(follower(&opts.dir, &judged)));
    let job = Arc::new(Job {
        settings: opts.settings,
        render: opts.render,
        window: opts.window.as_secs_f64(),
        locate: opts.locate,
    });
    server
        .runtime()
        .spawn(refresh_loop(opts.every, follower, job, text));
    Ok(server)
}

/// Only the newest files can overlap the window. The follower keeps what
/// it read between refreshes, so a refresh reads only the new samples.
fn follower(dir: &std::path::Path, metrics: &[Metric]) -> Follower {
    Follower::new(dir, 3, metrics)
}

/// What every refresh needs, shared with the blocking thread.
struct Job {
    settings: Settings,
    render: metrics::Options,
    window: f64,
    locate: Option<SessionRequests>,
}

async fn refresh_loop(
    every: Duration,
    follower: Arc<Mutex<Follower>>,
    job: Arc<Job>,
    text: Shared,
) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let (follower, job) = (Arc::clone(&follower), Arc::clone(&job));
        let done = tokio::task::spawn_blocking(move || {
            let mut f = follower.lock().unwrap_or_else(|e| e.into_inner());
            refresh(&mut f, &job)
        });
        match done.await {
            Ok(Ok(t)) => text.set(t),
            Ok(Err(e)) => {
                text.refresh_failed();
                tracing::warn!("metrics refresh: {e}");
            }
            Err(e) => {
                text.refresh_failed();
                tracing::warn!("metrics refresh failed: {e}");
            }
        }
    }
}

/// One refresh: read what was written since the last one, analyse the last
/// window, render.
fn refresh(follower: &mut Follower, job: &Job) -> Result<String, FollowError> {
    let began = Instant::now();
    let now = now_unix();
    let loaded = follower.refresh(now, job.window)?;
    let analysis = range::analyse_loaded(&loaded, &job.settings);
    if let Some(locate) = &job.locate {
        request(locate, &analysis);
    }
    // An exited process has no /proc entry (cgroup ""); a pid reused
    // since its last sample misnames it for at most one refresh.
    let cgroup = |p: &crate::analyse::ProcessRef| export::cgroup::of_pid(p.id.pid);
    let mut text = metrics::render(
        &loaded,
        &analysis,
        &job.render,
        metrics::Refresh {
            window_s: job.window,
            analysis_s: began.elapsed().as_secs_f64(),
            at_unix: now,
        },
        &cgroup,
    );
    if let Some(locate) = &job.locate {
        session_metrics(&mut text, locate);
    }
    Ok(text)
}

/// The processes a refresh asks `--locate` sessions for, most urgent
/// first: those flagged as a leak and not known to have exited.
///
/// Only the leak verdict, not `growing`: a growing process is one whose
/// rise does not reach its limit within the horizon, and on a whole
/// machine many do (caches warming, JIT heaps, buffers sized to the load).
/// Attaching to them would spend the few sessions (`--locate-max`) and the
/// probe's cost on processes the analysis says need no one, and keep the
/// real leak waiting when it comes. `memleak locate PID` is there for a
/// growing process someone wants to look at.
pub fn suspects(results: &[ProcessResult]) -> impl Iterator<Item = &ProcessResult> {
    results.iter().filter(|r| {
        r.verdict == Verdict::Leak && r.end == crate::analyse::life::ProcessEnd::Running
    })
}

/// Asks for a session for each of [`suspects`]; the recorder drops those
/// already located in the current file, gone, or past `--locate-max`.
fn request(locate: &SessionRequests, a: &Analysis) {
    for r in suspects(&a.results) {
        locate.request(LocateRequest {
            id: r.process.id,
            comm: r.process.comm.clone(),
            why: "flagged as a leak".into(),
        });
    }
}

/// The `--locate` session counters, after the rest of the exposition.
fn session_metrics(out: &mut String, locate: &SessionRequests) {
    use std::fmt::Write as _;
    let stats = locate.stats();
    metrics::header(
        out,
        "memleak_located_sessions_total",
        "counter",
        "--locate sessions started: a flagged process sampled for where it touches new memory.",
    );
    let _ = writeln!(out, "memleak_located_sessions_total {}", stats.started());
    metrics::header(
        out,
        "memleak_located_sessions_stored_total",
        "counter",
        "--locate sessions ended and stored in a recording.",
    );
    let _ = writeln!(
        out,
        "memleak_located_sessions_stored_total {}",
        stats.finished()
    );
    metrics::header(
        out,
        "memleak_located_sessions_active",
        "gauge",
        "--locate sessions sampling now.",
    );
    let _ = writeln!(out, "memleak_located_sessions_active {}", stats.active());
}

/// `watch --locate` without `--metrics`: the refresher's read and
/// analysis, every `every`, on a thread of its own, only to ask for
/// sessions. Stops when dropped.
pub struct LocateOnly {
    stop: Option<std::sync::mpsc::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

/// Starts [`LocateOnly`] over the recordings of `dir`.
pub fn locate_only(
    dir: PathBuf,
    every: Duration,
    window: Duration,
    settings: Settings,
    locate: SessionRequests,
) -> LocateOnly {
    let (stop, stopped) = std::sync::mpsc::channel::<()>();
    let thread = std::thread::spawn(move || {
        let mut f = follower(&dir, &settings.metrics);
        // Wakes every `every`; ends when the sender is dropped.
        while let Err(std::sync::mpsc::RecvTimeoutError::Timeout) = stopped.recv_timeout(every) {
            match f.refresh(now_unix(), window.as_secs_f64()) {
                Ok(loaded) => request(&locate, &range::analyse_loaded(&loaded, &settings)),
                // Before the first snapshot: nothing to say yet.
                Err(e @ FollowError::Empty { .. }) => tracing::debug!("--locate refresh: {e}"),
                Err(e) => tracing::warn!("--locate refresh: {e}"),
            }
        }
    });
    LocateOnly {
        stop: Some(stop),
        thread: Some(thread),
    }
}

impl Drop for LocateOnly {
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analyse::life::ProcessEnd;
    use crate::analyse::ProcessRef;
    use crate::sample::ProcId;

    fn result(pid: u32, verdict: Verdict, end: ProcessEnd) -> ProcessResult {
        ProcessResult {
            process: ProcessRef {
                id: ProcId { pid, start_ns: 7 },
                ppid: 1,
                comm: format!("p{pid}"),
                cmdline: None,
                exit_code: None,
            },
            verdict,
            findings: Vec::new(),
            observed_s: 60.0,
            end,
            released_at_exit: None,
        }
    }

    #[test]
    fn only_running_leaks_are_located_most_urgent_first() {
        let results = [
            result(1, Verdict::Leak, ProcessEnd::Running),
            result(2, Verdict::Growing, ProcessEnd::Running),
            result(3, Verdict::Leak, ProcessEnd::Exited(0)),
            result(4, Verdict::NoTrend, ProcessEnd::Running),
            result(5, Verdict::Leak, ProcessEnd::Running),
        ];
        let pids: Vec<u32> = suspects(&results).map(|r| r.process.id.pid).collect();
        assert_eq!(pids, [1, 5]);
    }

    #[test]
    fn session_counters_are_in_the_exposition() {
        let requests = SessionRequests::detached();
        let mut text = String::new();
        session_metrics(&mut text, &requests);
        assert!(text.contains("# TYPE memleak_located_sessions_total counter\n"));
        assert!(text.contains("\nmemleak_located_sessions_total 0\n"));
        assert!(text.contains("\nmemleak_located_sessions_active 0\n"));
    }
}
