//! `cargo xtask bench [all|overhead|sampler-cost|size|analyse|watch]`: measure
//! memleak against the alternatives and keep the results in
//! `bench-results/<name>-<unix time>.{txt,json}` (gitignored).
//!
//! - `overhead`: wall time of a page-fault-heavy and a malloc-heavy workload
//!   alone vs. under memleak (eBPF, procfs, eBPF with `--locate`) and a
//!   psutil poller (1 s, 5 ms);
//! - `sampler-cost`: CPU of `memleak record --all` with 100 / 1,000 / 5,000
//!   idle and 100 busy extra processes, eBPF vs. procfs;
//! - `size`: the same recordings' bytes per process-hour and the recorder's
//!   peak memory;
//! - `analyse`: analysis time and peak memory, 1,000 and 10,000 processes ×
//!   3,600 samples in memory, and `memleak analyze` on a real file;
//! - `watch`: one `memleak watch --metrics` refresh at the end of a day-long
//!   file of 1,000 processes (incremental read, analysis, rendering).
//!
//! The workloads are `memleak-bench` (crate `bench/`); the poller and the
//! recording statistics are Python scripts in `bench/` (psutil is installed
//! with pip when missing).

mod analyse;
mod cost;
mod overhead;
mod util;
mod watch;

use crate::run::{build_release, output, root, run, target_dir};
use anyhow::{bail, Context, Result};
use std::io::Write;
use std::path::PathBuf;
use std::process::Command;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

const KNOWN: [&str; 6] = [
    "all",
    "overhead",
    "sampler-cost",
    "size",
    "analyse",
    "watch",
];

#[derive(clap::Args)]
pub struct Args {
    /// Benchmarks to run (default: all): overhead, sampler-cost, size, analyse, watch.
    names: Vec<String>,
    /// Rounds of the overhead benchmark (and runs of the analysis ones).
    #[arg(long, default_value_t = 5)]
    repeats: usize,
    /// Measured seconds per case of sampler-cost/size (after a 3 s warm-up).
    #[arg(long, default_value_t = 30)]
    seconds: u64,
    /// Also write and analyse a 10,000-process recording file (~0.9 GB,
    /// a few minutes the first time; cached under target/bench-cache).
    #[arg(long)]
    big_file: bool,
    /// Overhead: skip valgrind, heaptrack and memray (the slow
    /// conditions), to compare memleak's own samplers quickly.
    #[arg(long)]
    no_alternatives: bool,
    /// Overhead: only these workloads (comma-separated: faults, malloc,
    /// switches, python; default: all).
    #[arg(long, value_delimiter = ',', value_name = "NAMES")]
    workloads: Vec<String>,
}

/// Paths of what the benchmarks run.
pub struct Bins {
    pub memleak: PathBuf,
    pub bench: PathBuf,
    pub poller: PathBuf,
    pub recstats: PathBuf,
    pub target: PathBuf,
}

/// Text and JSON results of one `cargo xtask bench` invocation.
pub struct Report {
    text: Vec<String>,
    pub json: serde_json::Map<String, serde_json::Value>,
}

impl Report {
    pub fn line(&mut self, s: &str) {
        println!("{s}");
        self.text.push(s.to_string());
    }
}

pub fn bench(args: &Args) -> Result<()> {
    for n in &args.names {
        if !KNOWN.contains(&n.as_str()) {
            bail!("unknown benchmark `{n}`; known: {}", KNOWN.join(", "));
        }
    }
    let want = |n: &str| args.names.is_empty() || args.names.iter().any(|x| x == n || x == "all");
    let started = Instant::now();
    let built = build_release(
        &["memleak-user", "memleak-bench"],
        &["memleak", "memleak-bench"],
    )?;
    let build_s = started.elapsed().as_secs_f64();
    let bins = Bins {
        memleak: built[0].clone(),
        bench: built[1].clone(),
        poller: root().join("bench").join("psutil_poller.py"),
        recstats: root().join("bench").join("recstats.py"),
        target: target_dir(),
    };
    if want("overhead") {
        ensure_psutil()?;
    }
    let mut report = Report {
        text: Vec::new(),
        json: serde_json::Map::new(),
    };
    let machine = machine();
    report.line(&format!(
        "# memleak benchmarks — {}",
        machine["date"].as_str().unwrap_or("")
    ));
    report.line(&format!(
        "machine: {} × {} cores, {} MiB RAM, kernel {}; load average at start {}",
        machine["cpu"].as_str().unwrap_or("?"),
        machine["cores"],
        machine["mem_mib"],
        machine["kernel"].as_str().unwrap_or("?"),
        machine["loadavg"].as_str().unwrap_or("?")
    ));
    report.line("");
    report.json.insert("machine".into(), machine);

    if want("overhead") {
        overhead::run(
            &bins,
            args.repeats.max(1),
            !args.no_alternatives,
            &args.workloads,
            &mut report,
        )?;
    }
    let (cost, size) = (want("sampler-cost"), want("size"));
    if cost || size {
        cost::run(&bins, args.seconds.max(3), &mut report, cost, size)?;
    }
    if want("analyse") {
        analyse::run(&bins, args.repeats.max(1), args.big_file, &mut report)?;
    }
    if want("watch") {
        watch::run(&bins, args.repeats.max(1), &mut report)?;
    }
    report.line(&format!(
        "bench time {:.0} s (plus {build_s:.0} s building); load average at end {}",
        started.elapsed().as_secs_f64() - build_s,
        loadavg()
    ));
    save(args, &report)
}

fn save(args: &Args, report: &Report) -> Result<()> {
    let out_dir = root().join("bench-results");
    std::fs::create_dir_all(&out_dir)
        .with_context(|| format!("could not create {}", out_dir.display()))?;
    let stamp = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let name = if args.names.is_empty() {
        "all".to_string()
    } else {
        args.names.join("+")
    };
    let txt = out_dir.join(format!("{name}-{stamp}.txt"));
    let mut f = std::fs::File::create(&txt)?;
    for l in &report.text {
        writeln!(f, "{l}")?;
    }
    let js = out_dir.join(format!("{name}-{stamp}.json"));
    std::fs::write(
        &js,
        serde_json::to_string_pretty(&serde_json::Value::Object(report.json.clone()))?,
    )?;
    println!(
        "xtask bench: results saved to {} and {}",
        txt.display(),
        js.display()
    );
    Ok(())
}

fn ensure_psutil() -> Result<()> {
    let ok = Command::new("python3")
        .args(["-c", "import psutil"])
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        run(
            Command::new("python3").args(["-m", "pip", "install", "--quiet", "psutil"]),
            "install psutil for python3 (pip install psutil)",
        )?;
    }
    Ok(())
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

fn machine() -> serde_json::Value {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let cpu = cpuinfo
        .lines()
        .find_map(|l| l.strip_prefix("model name"))
        .map(|v| v.trim_start_matches([' ', '\t', ':']).to_string())
        .unwrap_or_default();
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(0);
    let mem_mib = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("MemTotal:"))
                .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
        })
        .unwrap_or(0)
        / 1024;
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .unwrap_or_default()
        .trim()
        .to_string();
    let date = output(
        Command::new("date").args(["-u", "+%Y-%m-%d %H:%M UTC"]),
        "date(1) is missing",
    )
    .unwrap_or_default()
    .trim()
    .to_string();
    serde_json::json!({"cpu": cpu, "cores": cores, "mem_mib": mem_mib, "kernel": kernel,
                       "date": date, "loadavg": loadavg()})
}
