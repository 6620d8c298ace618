//! Analysis speed: the pure analyser in memory (1,000 and 10,000 processes
//! × 3,600 samples), and `memleak analyze` as a whole process on a real
//! recording file written by the store's `Writer`.

use super::util::{cached_recording, json_line, run_measured, Stat};
use super::{Bins, Report};
use crate::run::{cargo, display, output};
use anyhow::{Context, Result};
use std::process::Command;

fn in_memory(procs: usize, repeats: usize) -> Result<serde_json::Value> {
    let mut cmd = cargo([
        "bench",
        "-q",
        "-p",
        "memleak-user",
        "--bench",
        "analyse",
        "--",
    ]);
    cmd.args([
        "--procs",
        &procs.to_string(),
        "--repeats",
        &repeats.to_string(),
    ]);
    let mut pinned = Command::new("taskset");
    pinned
        .arg("-c")
        .arg("1")
        .arg(cmd.get_program())
        .args(cmd.get_args());
    pinned.current_dir(crate::run::root());
    let out = output(&mut pinned, "read the errors above")?;
    json_line(&out, "RESULT").with_context(|| format!("no RESULT line from {}", display(&pinned)))
}

pub fn run(bins: &Bins, repeats: usize, big_file: bool, report: &mut Report) -> Result<()> {
    report.line("## Analysis speed");
    report.line(
        "In memory: `cargo bench --bench analyse` (pre-processing + LBR + direct refit, rss and vm \
         per process), pinned to one core (taskset -c 1); only the analysis is timed. Peak = \
         VmHWM of the bench process. Whole process: `memleak analyze FILE --format json` on a \
         synthetic recording written through the store Writer (every process changes at every \
         1 s snapshot: the worst case), pinned to one core and on both (the reader and one \
         judging worker per core overlap); wall time and peak RSS (wait4).",
    );
    let mut json = serde_json::Map::new();
    for (procs, reps) in [(1000usize, repeats.max(3)), (10_000, 2)] {
        eprintln!("  analyse: {procs} processes in memory ...");
        let r = in_memory(procs, reps)?;
        let secs: Vec<f64> = r["secs"]
            .as_array()
            .map(|a| a.iter().filter_map(|v| v.as_f64()).collect())
            .unwrap_or_default();
        let st = Stat::of(&secs);
        let hwm = r["vmhwm_kib"].as_f64().unwrap_or(0.0) / 1024.0;
        report.line(&format!(
            "in memory, {procs} processes × 3600 samples: {} s over {} runs; peak {hwm:.0} MiB",
            st.show(3),
            st.n
        ));
        json.insert(
            format!("in_memory_{procs}"),
            serde_json::json!({"secs": st.json(), "vmhwm_mib": hwm}),
        );
    }
    let sizes: &[usize] = if big_file { &[1000, 10_000] } else { &[1000] };
    for &procs in sizes {
        let (file, gen) = cached_recording(
            &bins.target,
            &format!("synthetic-{procs}x3600.memleak"),
            &["--procs", &procs.to_string(), "--samples", "3600"],
        )?;
        let bytes = std::fs::metadata(&file).map(|m| m.len()).unwrap_or(0);
        // Pinned to one core: the CPU the analysis needs. On both cores:
        // what a user waits, with the reader and the workers overlapping.
        let n = if procs > 1000 { 1 } else { repeats.max(3) };
        let mut per = serde_json::Map::new();
        for (key, pin) in [("one_core", true), ("two_cores", false)] {
            let mut walls = Vec::new();
            let mut peak = Vec::new();
            for _ in 0..n {
                let mut cmd = if pin {
                    let mut c = Command::new("taskset");
                    c.args(["-c", "1"]).arg(&bins.memleak);
                    c
                } else {
                    Command::new(&bins.memleak)
                };
                cmd.arg("analyze").arg(&file).args(["--format", "json"]);
                let (wall, maxrss_kib, _) = run_measured(&mut cmd)?;
                walls.push(wall.as_secs_f64());
                peak.push(maxrss_kib as f64 / 1024.0);
            }
            let w = Stat::of(&walls);
            let p = Stat::of(&peak);
            report.line(&format!(
                "whole process, `memleak analyze`, {procs} processes × 3600 samples ({:.0} MiB file, \
                 {:.1} B per process-hour), {}: {} s over {} runs; peak RSS {} MiB",
                bytes as f64 / 1048576.0,
                bytes as f64 / procs as f64,
                if pin { "one core" } else { "two cores" },
                w.show(3),
                w.n,
                p.show(0)
            ));
            per.insert(
                key.into(),
                serde_json::json!({"wall_s": w.json(), "maxrss_mib": p.json()}),
            );
        }
        json.insert(
            format!("whole_process_{procs}"),
            serde_json::json!({"runs": per, "file_bytes": bytes, "generation": gen}),
        );
    }
    report.line("");
    report
        .json
        .insert("analyse".into(), serde_json::Value::Object(json));
    Ok(())
}
