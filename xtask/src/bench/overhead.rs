//! Overhead of sampling on the monitored work: the wall time of a workload
//! run alone vs. under memleak (eBPF, procfs) and under a psutil poller.

use super::util::{json_line, run_measured, scratch, Held, Stat};
use super::{Bins, Report};
use anyhow::{Context, Result};
use std::process::Command;

#[derive(Clone, Copy, PartialEq)]
enum Cond {
    Alone,
    AloneAgain,
    Ebpf,
    Procfs,
    Psutil1s,
    Psutil5ms,
    EbpfSwitch,
}

impl Cond {
    const ALL: [Cond; 7] = [
        Cond::Alone,
        Cond::AloneAgain,
        Cond::Ebpf,
        Cond::EbpfSwitch,
        Cond::Procfs,
        Cond::Psutil1s,
        Cond::Psutil5ms,
    ];
    fn name(self) -> &'static str {
        match self {
            Cond::Alone => "alone",
            Cond::AloneAgain => "alone again (A/A noise)",
            Cond::Ebpf => "memleak record, eBPF --ebpf-hook faults, 1 s",
            Cond::EbpfSwitch => "memleak record, eBPF --ebpf-hook switch, 1 s",
            Cond::Procfs => "memleak record, procfs, 1 s",
            Cond::Psutil1s => "psutil poller, all processes, 1 s",
            Cond::Psutil5ms => "psutil poller, all processes, 5 ms",
        }
    }
    fn key(self) -> &'static str {
        match self {
            Cond::Alone => "alone",
            Cond::AloneAgain => "alone_again",
            Cond::Ebpf => "ebpf_faults",
            Cond::EbpfSwitch => "ebpf_switch",
            Cond::Procfs => "procfs",
            Cond::Psutil1s => "psutil_1s",
            Cond::Psutil5ms => "psutil_5ms",
        }
    }
}

struct Workload {
    key: &'static str,
    about: &'static str,
    args: &'static [&'static str],
}

const WORKLOADS: [Workload; 3] = [
    Workload {
        key: "faults",
        about: "page-fault heavy: mmap 64 MiB, touch every page, munmap, 40 times (655,360 faults)",
        args: &["faults", "--mib", "64", "--rounds", "40"],
    },
    Workload {
        key: "malloc",
        about: "malloc heavy: 8,000,000 malloc/free pairs, 16 B–256 KiB, every page touched",
        args: &["malloc", "--ops", "8000000"],
    },
    Workload {
        key: "switches",
        about: "context-switch heavy: 200,000 pipe round trips between a parent and its child \
                on one CPU (400,000 context switches of tracked processes)",
        args: &["pingpong", "--rounds", "200000"],
    },
];

fn work_s(out: &str) -> Result<f64> {
    json_line(out, "")
        .and_then(|v| v["work_s"].as_f64())
        .with_context(|| format!("no work_s in workload output: {out}"))
}

fn run_once(bins: &Bins, w: &Workload, cond: Cond, dir: &std::path::Path, i: usize) -> Result<f64> {
    let mut work = Command::new(&bins.bench);
    work.args(w.args);
    match cond {
        Cond::Alone | Cond::AloneAgain => work_s(&run_measured(&mut work)?.2),
        Cond::Ebpf | Cond::EbpfSwitch | Cond::Procfs => {
            let out = dir.join(format!("{}-{}-{i}.memleak", w.key, cond.key()));
            let mut cmd = Command::new(&bins.memleak);
            cmd.args(["record", "-q", "-i", "1s", "--sampler"])
                .arg(if cond == Cond::Procfs {
                    "procfs"
                } else {
                    "ebpf"
                })
                // Both hooks by name, so the figures keep their meaning
                // whichever one is the default.
                .args(match cond {
                    Cond::EbpfSwitch => &["--ebpf-hook", "switch"][..],
                    Cond::Ebpf => &["--ebpf-hook", "faults"][..],
                    _ => &[],
                })
                .arg("-o")
                .arg(&out)
                .arg("--")
                .arg(&bins.bench)
                .args(w.args);
            let r = work_s(&run_measured(&mut cmd)?.2);
            let _ = std::fs::remove_file(&out);
            r
        }
        Cond::Psutil1s | Cond::Psutil5ms => {
            let interval = if cond == Cond::Psutil1s { "1" } else { "0.005" };
            let mut poller = Held::spawn(Command::new("python3").arg(&bins.poller).arg(interval))?;
            poller.expect("ready")?;
            let r = run_measured(&mut work);
            poller.stop()?;
            work_s(&r?.2)
        }
    }
}

pub fn run(bins: &Bins, repeats: usize, report: &mut Report) -> Result<()> {
    let dir = scratch(&bins.target, "overhead")?;
    report.line("## Sampler overhead on the monitored work");
    report.line(&format!(
        "Wall time of the work loop (start-up excluded) under each condition; {repeats} rounds, \
         conditions interleaved (rotated order each round). Ratio = time under X / time alone \
         in the same round; medians (min–max) over rounds."
    ));
    let mut json = serde_json::Map::new();
    for w in &WORKLOADS {
        report.line("");
        report.line(&format!("### {} — {}", w.key, w.about));
        let mut times: Vec<Vec<f64>> = vec![Vec::new(); Cond::ALL.len()];
        for round in 0..repeats {
            for k in 0..Cond::ALL.len() {
                let ci = (k + round) % Cond::ALL.len();
                let t = run_once(bins, w, Cond::ALL[ci], &dir, round)?;
                times[ci].push(t);
            }
            eprint!(".");
        }
        eprintln!();
        report.line(&format!(
            "{:<38} {:>26} {:>26} {:>10}",
            "condition", "work s, median (min–max)", "ratio to alone", "slowdown"
        ));
        let mut wj = serde_json::Map::new();
        for (ci, c) in Cond::ALL.iter().enumerate() {
            let t = Stat::of(&times[ci]);
            let ratios: Vec<f64> = times[ci]
                .iter()
                .zip(&times[0])
                .map(|(x, a)| x / a)
                .collect();
            let r = Stat::of(&ratios);
            report.line(&format!(
                "{:<38} {:>26} {:>26} {:>9.1}%",
                c.name(),
                t.show(3),
                if *c == Cond::Alone {
                    "1".to_string()
                } else {
                    r.show(3)
                },
                (r.median - 1.0) * 100.0
            ));
            wj.insert(
                c.key().to_string(),
                serde_json::json!({"label": c.name(), "work_s": t.json(), "ratio": r.json(), "raw_s": times[ci]}),
            );
        }
        json.insert(w.key.to_string(), serde_json::Value::Object(wj));
    }
    report.line("");
    report
        .json
        .insert("overhead".into(), serde_json::Value::Object(json));
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}
