//! Prometheus exposition for `memleak watch --metrics ADDR`.
//!
//! A refresher (in `memleak watch`) periodically reads the recent
//! recordings, runs the analyser over the last window and renders the text
//! format with [`metrics::render`]; [`server::MetricsServer`] answers
//! `GET /metrics` with the latest text. Scrapes never touch the recording:
//! they cost a copy of a string, whatever the scrape rate.

pub mod cgroup;
pub mod metrics;
pub mod server;

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Content type of the Prometheus text format.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// What /metrics serves: the text the refresher renders, plus the
/// exporter's own figures, which change between refreshes (a failing
/// refresh leaves the last text in place, so its errors are counted here).
#[derive(Default)]
pub struct Exposition {
    text: Mutex<String>,
    refresh_errors: AtomicU64,
    scrapes: AtomicU64,
    last_scrape_ns: AtomicU64,
}

pub type Shared = Arc<Exposition>;

impl Exposition {
    pub fn new(text: &str) -> Shared {
        let e = Exposition::default();
        *e.text.lock().unwrap_or_else(|e| e.into_inner()) = text.to_string();
        Arc::new(e)
    }

    /// Replaces the refreshed text.
    pub fn set(&self, text: String) {
        *self.text.lock().unwrap_or_else(|e| e.into_inner()) = text;
    }

    pub fn refresh_failed(&self) {
        self.refresh_errors.fetch_add(1, Ordering::Relaxed);
    }

    /// The body of one scrape: the latest text and the exporter's figures
    /// (the scrape duration is the previous scrape's: this one is not over).
    pub fn scrape(&self) -> String {
        let began = std::time::Instant::now();
        let mut out = self
            .text
            .lock()
            .map(|t| t.clone())
            .unwrap_or_else(|e| e.into_inner().clone());
        let scrapes = self.scrapes.fetch_add(1, Ordering::Relaxed) + 1;
        let last = Duration::from_nanos(self.last_scrape_ns.load(Ordering::Relaxed));
        for (name, kind, help, v) in [
            (
                "memleak_exporter_refresh_errors_total",
                "counter",
                "Refreshes that failed (the previous figures stay; see the log).",
                self.refresh_errors.load(Ordering::Relaxed) as f64,
            ),
            (
                "memleak_exporter_scrapes_total",
                "counter",
                "Requests for /metrics answered, this one included.",
                scrapes as f64,
            ),
            (
                "memleak_exporter_scrape_duration_seconds",
                "gauge",
                "How long the previous /metrics answer took to build.",
                last.as_secs_f64(),
            ),
        ] {
            metrics::header(&mut out, name, kind, help);
            let _ = writeln!(out, "{name} {v}");
        }
        self.last_scrape_ns
            .store(began.elapsed().as_nanos() as u64, Ordering::Relaxed);
        out
    }
}
