//! `memleak locate PID`: sample where a running process first touches new
//! memory, with its user stacks, and print the paths that touched most.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use clap::Args;

use super::common::parse_duration;
use crate::locate::{self, Locator};

/// `memleak locate` (its help text is on the subcommand, in cli/mod.rs).
#[derive(Args, Debug)]
pub struct LocateArgs {
    /// The process to sample (its threads, and what it starts from now on).
    #[arg(value_name = "PID")]
    pub pid: u32,

    /// How long to sample (e.g. 30s, 5m). Sampling also stops at Ctrl-C or
    /// when the process exits.
    #[arg(short, long, value_parser = parse_duration, default_value = "30s", value_name = "DURATION")]
    pub duration: Duration,

    /// Page faults per sample (default 97: cheap at any fault rate; lower
    /// it for a slow leak, raise it for a program faulting millions of
    /// times a second).
    #[arg(long, default_value_t = locate::DEFAULT_PERIOD, value_parser = clap::value_parser!(u64).range(1..), value_name = "N")]
    pub period: u64,

    /// Also write the stacks, with every frame, as JSON to FILE.
    #[arg(short, long, value_name = "FILE")]
    pub output: Option<std::path::PathBuf>,
}

/// How often new stacks are named while the process lives.
const POLL_EVERY: Duration = Duration::from_secs(1);

pub fn run(args: LocateArgs) -> Result<i32> {
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(sig, Arc::clone(&stop))
            .context("installing the signal handler")?;
    }
    let mut locator = Locator::new(args.period)?;
    let threads = locator.attach(args.pid)?;
    diag!(
        "memleak: sampling 1 page fault in {} of pid {} ({threads} threads) for {}; Ctrl-C stops",
        args.period,
        args.pid,
        humantime::format_duration(args.duration)
    );
    let started = Instant::now();
    let mut next_poll = started + POLL_EVERY;
    let mut exited = false;
    while started.elapsed() < args.duration && !stop.load(Ordering::Relaxed) {
        std::thread::sleep(Duration::from_millis(50));
        if Instant::now() >= next_poll {
            locator.poll();
            next_poll += POLL_EVERY;
            if !std::path::Path::new(&format!("/proc/{}", args.pid)).exists() {
                exited = true;
                break;
            }
        }
    }
    let located = locator.located();
    if let Some(why) = locator.lost_detail().filter(|_| located.lost > 0) {
        diag!(
            "memleak: {} samples could not be tied to a stack: {why}",
            located.lost
        );
    }
    if exited {
        diag!("memleak: pid {} exited; stopped sampling", args.pid);
    }
    if located.stacks.is_empty() {
        diag!(
            "memleak: no page fault of pid {} was sampled in {:.1} s: it touched less than {} of new memory (lower --period to see less)",
            args.pid,
            started.elapsed().as_secs_f64(),
            crate::analyse::units::fmt_bytes((located.period * located.page_size) as f64)
        );
    }
    super::analyze::emit(&crate::report::located::render_text(&located))?;
    if let Some(path) = &args.output {
        crate::report::write_file(path, &crate::report::located::render_json(&located))?;
        diag!("memleak: stacks written to {}", path.display());
    }
    Ok(0)
}
