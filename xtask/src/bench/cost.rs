//! The sampler's own cost (CPU of the memleak process) in whole-system
//! recordings with idle and busy process fleets, and the recording's size.

use super::util::{cpu_ns, process_count, run_measured, scratch, signal, status_kib, Held, Stat};
use super::{Bins, Report};
use anyhow::{bail, Context, Result};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

struct Case {
    key: &'static str,
    about: &'static str,
    fleet: Option<(&'static str, u32)>,
}

const CASES: [Case; 6] = [
    Case {
        key: "background",
        about: "machine as is (no extra processes)",
        fleet: None,
    },
    Case {
        key: "idle_100",
        about: "+100 idle processes",
        fleet: Some(("idle", 100)),
    },
    Case {
        key: "idle_1000",
        about: "+1,000 idle processes",
        fleet: Some(("idle", 1000)),
    },
    Case {
        key: "idle_5000",
        about: "+5,000 idle processes",
        fleet: Some(("idle", 5000)),
    },
    Case {
        key: "idle_10000",
        about: "+10,000 idle processes",
        fleet: Some(("idle", 10000)),
    },
    Case {
        key: "busy_100",
        about: "+100 busy processes (each malloc+touch+free 64 KiB–1 MiB every 50 ms)",
        fleet: Some(("busy", 100)),
    },
];

/// Recorders measured side by side: (label, sampler, interval). `ebpf@100ms`
/// is `memleak run`'s default interval, so its row against `ebpf` (1 s,
/// `record`'s default) is what the finer default costs in CPU and bytes.
const SAMPLERS: [(&str, &str, &str); 3] = [
    ("ebpf", "ebpf", "1s"),
    ("ebpf@100ms", "ebpf", "100ms"),
    ("procfs", "procfs", "1s"),
];
const WARMUP: Duration = Duration::from_secs(3);
const WINDOWS: u32 = 3;

struct Recorder {
    child: Child,
    file: std::path::PathBuf,
    cpu: Vec<(u64, u64)>,
    hwm_kib: u64,
}

pub fn run(bins: &Bins, seconds: u64, report: &mut Report, cost: bool, size: bool) -> Result<()> {
    let dir = scratch(&bins.target, "sampler-cost")?;
    let window = Duration::from_secs((seconds / u64::from(WINDOWS)).max(1));
    let mut rows = Vec::new();
    for case in &CASES {
        eprintln!("  sampler-cost: {} ...", case.about);
        let fleet = match case.fleet {
            Some((kind, n)) => {
                let mut h = Held::spawn(
                    Command::new(&bins.bench)
                        .arg(kind)
                        .arg("--count")
                        .arg(n.to_string()),
                )?;
                h.expect("ready")?;
                Some(h)
            }
            None => None,
        };
        std::thread::sleep(Duration::from_millis(500));
        let procs_on_machine = process_count();
        let mut recs: Vec<Recorder> = Vec::new();
        for (label, s, interval) in SAMPLERS {
            let file = dir.join(format!("{}-{label}.memleak", case.key));
            let child = Command::new(&bins.memleak)
                .args([
                    "record",
                    "--all",
                    "-q",
                    "-i",
                    interval,
                    "--sampler",
                    s,
                    "-o",
                ])
                .arg(&file)
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .context("starting memleak record")?;
            recs.push(Recorder {
                child,
                file,
                cpu: Vec::new(),
                hwm_kib: 0,
            });
        }
        std::thread::sleep(WARMUP);
        let t0 = Instant::now();
        let mut marks = vec![Duration::ZERO];
        for r in &mut recs {
            r.cpu
                .push(cpu_ns(r.child.id()).context("recorder died during warm-up")?);
        }
        for k in 1..=WINDOWS {
            let until = window * k;
            std::thread::sleep(until.saturating_sub(t0.elapsed()));
            marks.push(t0.elapsed());
            for r in &mut recs {
                r.cpu.push(cpu_ns(r.child.id()).context("recorder died")?);
            }
        }
        for r in &mut recs {
            r.hwm_kib = status_kib(r.child.id(), "VmHWM").unwrap_or(0);
            signal(r.child.id(), libc::SIGINT);
        }
        for r in &mut recs {
            let out = r.child.wait_with_output_ref()?;
            if !out.0.success() {
                bail!("memleak record failed: {}", out.1);
            }
        }
        if let Some(f) = fleet {
            f.stop()?;
            // The children die with the parent (PR_SET_PDEATHSIG); wait for
            // them to be gone before the next case counts processes.
            let n = case.fleet.map_or(0, |(_, n)| n as usize);
            let deadline = Instant::now() + Duration::from_secs(10);
            while process_count() + n * 9 / 10 > procs_on_machine && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(100));
            }
        }
        for (r, (s, _, _)) in recs.iter().zip(SAMPLERS) {
            let wall = marks[WINDOWS as usize].as_secs_f64();
            let total = (r.cpu[WINDOWS as usize].0 - r.cpu[0].0) as f64;
            let ticks_total = (r.cpu[WINDOWS as usize].1 - r.cpu[0].1) as f64;
            let per_window: Vec<f64> = (1..=WINDOWS as usize)
                .map(|k| {
                    let dt = (marks[k] - marks[k - 1]).as_secs_f64();
                    100.0 * (r.cpu[k].0 - r.cpu[k - 1].0) as f64 / 1e9 / dt
                })
                .collect();
            let stats = recstats(bins, &r.file)?;
            rows.push(Row {
                case: case.key,
                about: case.about,
                sampler: s,
                procs_on_machine,
                pct: 100.0 * total / 1e9 / wall,
                pct_ticks: 100.0 * ticks_total / 1e9 / wall,
                windows: Stat::of(&per_window),
                hwm_kib: r.hwm_kib,
                stats,
            });
        }
    }
    if cost {
        cost_table(&rows, seconds, report);
    }
    if size {
        size_table(&rows, report);
    }
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

trait WaitRef {
    fn wait_with_output_ref(&mut self) -> Result<(std::process::ExitStatus, String)>;
}

impl WaitRef for Child {
    fn wait_with_output_ref(&mut self) -> Result<(std::process::ExitStatus, String)> {
        let mut err = String::new();
        if let Some(mut e) = self.stderr.take() {
            let _ = std::io::Read::read_to_string(&mut e, &mut err);
        }
        Ok((self.wait()?, err))
    }
}

struct Row {
    case: &'static str,
    about: &'static str,
    sampler: &'static str,
    procs_on_machine: usize,
    /// % of one core over the whole measured window (schedstat).
    pct: f64,
    /// The same from utime+stime (clock-tick resolution).
    pct_ticks: f64,
    windows: Stat,
    hwm_kib: u64,
    stats: serde_json::Value,
}

fn recstats(bins: &Bins, file: &std::path::Path) -> Result<serde_json::Value> {
    let (_, _, out) = run_measured(Command::new("python3").arg(&bins.recstats).arg(file))?;
    serde_json::from_str(out.trim()).context("recstats output")
}

fn cost_table(rows: &[Row], seconds: u64, report: &mut Report) {
    report.line("## Sampler cost (CPU of the memleak recorder)");
    report.line(&format!(
        "`memleak record --all -i 1s`, eBPF and procfs recorders (and eBPF at `-i 100ms`, \
         `memleak run`'s default) running side by side on the same machine state; CPU time of the recorder process (all threads, \
         /proc/PID/task/*/schedstat) over {seconds} s after a {} s warm-up (the window holds \
         one 30 s full pass of the eBPF sampler), as % of one core; min–max over {WINDOWS} \
         sub-windows. CPU-seconds per hour = % × 36. Kernel-side eBPF program time is charged \
         to the monitored processes, not here (see the overhead section).",
        WARMUP.as_secs()
    ));
    report.line(&format!(
        "{:<66} {:>10} {:>7} {:>9} {:>22} {:>9} {:>9}",
        "case", "sampler", "procs", "% core", "sub-windows % (min–max)", "cpu-s/h", "% (ticks)"
    ));
    let mut arr = Vec::new();
    for r in rows {
        report.line(&format!(
            "{:<66} {:>10} {:>7} {:>9.3} {:>22} {:>9.1} {:>9.2}",
            r.about,
            r.sampler,
            r.procs_on_machine,
            r.pct,
            format!("{:.3}–{:.3}", r.windows.min, r.windows.max),
            r.pct * 36.0,
            r.pct_ticks
        ));
        arr.push(serde_json::json!({
            "case": r.case, "about": r.about, "sampler": r.sampler,
            "processes_on_machine": r.procs_on_machine,
            "pct_one_core": r.pct, "pct_one_core_ticks": r.pct_ticks,
            "cpu_s_per_hour": r.pct * 36.0, "sub_windows_pct": r.windows.json(),
            "vmhwm_kib": r.hwm_kib,
        }));
    }
    report.line("");
    report
        .json
        .insert("sampler_cost".into(), serde_json::Value::Array(arr));
}

fn size_table(rows: &[Row], report: &mut Report) {
    report.line("## Recording size and recorder peak memory");
    report.line(
        "Same recordings. bytes/proc-h (measured) = file bytes / (processes × recorded hours) \
         — dominated by the fixed per-process rows in a short recording; projected 1 h = per-process \
         rows (processes + names tables + first sample) + further samples written per process-hour × bytes per sample \
         row + ticks per hour / processes (table bytes from SQLite's dbstat).",
    );
    report.line(&format!(
        "{:<66} {:>10} {:>6} {:>10} {:>9} {:>12} {:>14} {:>13} {:>10}",
        "case",
        "sampler",
        "procs",
        "file KiB",
        "dur s",
        "samples/p-h",
        "B/proc-h meas.",
        "B/proc-h 1 h",
        "VmHWM MiB"
    ));
    let mut arr = Vec::new();
    for r in rows {
        let s = &r.stats;
        let f = |k: &str| s[k].as_f64().unwrap_or(0.0);
        let tb = |k: &str| s["table_bytes"][k].as_f64().unwrap_or(0.0);
        let procs = f("processes_rows").max(1.0);
        let dur_h = f("duration_s") / 3600.0;
        let measured = f("file_bytes") / (procs * dur_h);
        // The first sample of each process is part of its fixed cost.
        let samples_ph = (f("samples_rows") - procs).max(0.0) / (procs * dur_h);
        let per_sample = if f("samples_rows") > 0.0 {
            tb("samples") / f("samples_rows")
        } else {
            0.0
        };
        let per_tick = if f("ticks_rows") > 0.0 {
            tb("ticks") / f("ticks_rows")
        } else {
            0.0
        };
        let fixed = (tb("processes") + tb("names") + tb("sqlite_autoindex_processes_1")) / procs
            + per_sample;
        let projected = fixed + samples_ph * per_sample + 3600.0 * per_tick / procs;
        report.line(&format!(
            "{:<66} {:>10} {:>6} {:>10.0} {:>9.1} {:>12.0} {:>14.0} {:>13.0} {:>10.1}",
            r.about,
            r.sampler,
            procs,
            f("file_bytes") / 1024.0,
            f("duration_s"),
            samples_ph,
            measured,
            projected,
            r.hwm_kib as f64 / 1024.0
        ));
        arr.push(serde_json::json!({
            "case": r.case, "sampler": r.sampler, "recstats": s,
            "bytes_per_process_hour_measured": measured,
            "bytes_per_process_hour_projected_1h": projected,
            "samples_per_process_hour": samples_ph,
            "bytes_per_sample_row": per_sample,
            "fixed_bytes_per_process": fixed,
            "recorder_vmhwm_kib": r.hwm_kib,
        }));
    }
    report.line("");
    report
        .json
        .insert("size".into(), serde_json::Value::Array(arr));
}
