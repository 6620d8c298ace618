//! `watch`: the cost of one `memleak watch --metrics` refresh at the end of
//! a simulated day: a recording of 1,000 processes × 86,400 one-second
//! snapshots, each process changing every 30 s (written once by
//! `gen_recording`, cached under target/bench-cache), then 5 s of new
//! snapshots per refresh, read incrementally. Goal: ≤ 50 ms per refresh
//! read. Reported, never asserted: a slow machine is not a failure.

use super::util::{cached_recording, json_line};
use super::{Bins, Report};
use crate::run::{cargo, display, output};
use anyhow::{Context, Result};

pub fn run(bins: &Bins, repeats: usize, report: &mut Report) -> Result<()> {
    report.line("## watch --metrics refresh");
    let (file, _) = cached_recording(
        &bins.target,
        "watch-1000x86400-every30.memleak",
        &[
            "--procs",
            "1000",
            "--samples",
            "86400",
            "--change-every",
            "30",
        ],
    )?;
    let mut cmd = cargo([
        "bench",
        "-q",
        "-p",
        "memleak-user",
        "--bench",
        "watch_refresh",
        "--",
    ]);
    cmd.arg("--file")
        .arg(&file)
        .args(["--refreshes", &repeats.max(5).to_string()]);
    let out = output(&mut cmd, "read the errors above")?;
    let r = json_line(&out, "RESULT")
        .with_context(|| format!("no RESULT line from {}", display(&cmd)))?;
    let ms = |k: &str| r[k].as_f64().unwrap_or(f64::NAN) * 1e3;
    report.line(&format!(
        "1,000 processes, 24 h file, 15 min window, 5 s of new snapshots per refresh \
         (median of {} refreshes): read {:.1} ms (goal ≤ 50), analyse {:.1} ms, render {:.1} ms, \
         whole refresh {:.1} ms; first read of the file {:.0} ms; full re-read (before) {:.0} ms",
        r["rounds"],
        ms("read_s"),
        ms("analyse_s"),
        ms("render_s"),
        ms("refresh_s"),
        ms("first_read_s"),
        ms("full_reread_s"),
    ));
    report.line("");
    report.json.insert("watch".into(), r);
    Ok(())
}
