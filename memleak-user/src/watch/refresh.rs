//! The metrics side of `memleak watch --metrics`: the HTTP endpoint, and a
//! refresher on its runtime that re-reads the newest recordings every
//! refresh, analyses the recent window and swaps in the new exposition.
//! Reading and analysing run on a blocking thread, so scrapes are answered
//! meanwhile with the previous text.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::analyse::{Metric, Settings};
use crate::export::server::{Limits, MetricsServer, ServeError};
use crate::export::{self, metrics, Shared};
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
    // Only the newest files can overlap the window. The follower keeps what
    // it read between refreshes, so a refresh reads only the new samples.
    let follower = Arc::new(Mutex::new(Follower::new(&opts.dir, 3, &judged)));
    let job = Arc::new(Job {
        settings: opts.settings,
        render: opts.render,
        window: opts.window.as_secs_f64(),
    });
    server
        .runtime()
        .spawn(refresh_loop(opts.every, follower, job, text));
    Ok(server)
}

/// What every refresh needs, shared with the blocking thread.
struct Job {
    settings: Settings,
    render: metrics::Options,
    window: f64,
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
    // An exited process has no /proc entry (cgroup ""); a pid reused
    // since its last sample misnames it for at most one refresh.
    let cgroup = |p: &crate::analyse::ProcessRef| export::cgroup::of_pid(p.id.pid);
    Ok(metrics::render(
        &loaded,
        &analysis,
        &job.render,
        metrics::Refresh {
            window_s: job.window,
            analysis_s: began.elapsed().as_secs_f64(),
            at_unix: now,
        },
        &cgroup,
    ))
}
