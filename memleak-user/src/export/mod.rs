//! Prometheus exposition for `memleak watch --metrics ADDR`.
//!
//! A refresher (in `memleak watch`) periodically reads the recent
//! recordings, runs the analyser over the last window and renders the text
//! format with [`metrics::render`]; [`server::MetricsServer`] answers
//! `GET /metrics` with the latest text. Scrapes never touch the recording:
//! they cost a copy of a string, whatever the scrape rate.

pub mod metrics;
pub mod server;

use std::sync::{Arc, Mutex};

/// Content type of the Prometheus text format.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// The text served at /metrics, replaced by the refresher.
pub type Shared = Arc<Mutex<String>>;
