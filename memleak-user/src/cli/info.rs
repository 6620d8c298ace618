//! `memleak info`: what a recording holds.

use std::path::PathBuf;

use anyhow::Result;
use clap::Args;

use crate::analyse::units::fmt_bytes as bytes;
use crate::store::Recording;

#[derive(Args, Debug)]
pub struct InfoArgs {
    /// The recording to describe.
    pub file: PathBuf,

    /// Also list every process with its memory at start, end and peak.
    #[arg(short, long)]
    pub processes: bool,

    /// Instead of the summary, print the samples of the process(es) with
    /// this PID as CSV on stdout: one row per recorded sample (a sample is
    /// stored only when a figure changed; the value holds until the next
    /// row), figures in bytes. Since recording format 3 most samples are
    /// stored in compact chunks that `sqlite3` cannot read; this decodes
    /// them. A reused PID prints each process, told apart by `start_ns`.
    #[arg(long, value_name = "PID", conflicts_with = "processes")]
    pub series: Option<u32>,
}

/// What `--locate` stored, in a line: how many stacks, in how many
/// processes, and the top one's innermost named function; None without
/// located stacks.
fn located_line(l: &crate::locate::Located) -> Option<String> {
    let top = l.stacks.first()?;
    let total: u64 = l.stacks.iter().map(|s| s.bytes).sum();
    let mut procs: Vec<_> = l.stacks.iter().map(|s| s.id).collect();
    procs.sort();
    procs.dedup();
    let pr = crate::report::printable;
    Some(format!(
        "{} stacks in {} process{}, {} estimated (1 page fault in {}); top: {} in {} (pid {}), {} ({:.1}%){}",
        l.stacks.len(),
        procs.len(),
        if procs.len() == 1 { "" } else { "es" },
        bytes(total as f64),
        l.period,
        pr(top.top_function().unwrap_or("an unnamed function")),
        pr(&top.comm),
        top.id.pid,
        bytes(top.bytes as f64),
        100.0 * top.bytes as f64 / total.max(1) as f64,
        if l.lost > 0 {
            format!("; {} samples lost", l.lost)
        } else {
            String::new()
        }
    ))
}

pub fn run(args: InfoArgs) -> Result<i32> {
    let rec = Recording::open(&args.file)?;
    if let Some(pid) = args.series {
        return print_series(&rec, pid);
    }
    let m = &rec.meta;
    let last_tick = rec.ticks.last().copied();
    println!("recording   {}", args.file.display());
    // Everything from the file is shown through `printable`: a recording
    // may come from anywhere, and must not drive the terminal.
    let pr = crate::report::printable;
    println!("host        {} (kernel {})", pr(&m.host), pr(&m.kernel));
    println!(
        "sampler     {}{}",
        pr(&m.sampler),
        m.sampler_reason
            .as_deref()
            .map(|r| format!(" — {}", pr(r)))
            .unwrap_or_default()
    );
    println!("interval    {} ms", m.interval_ns / 1_000_000);
    println!("scope       {}", pr(&m.scope));
    if let Some(c) = &m.command {
        let code = m
            .exit_code
            .map(|c| format!(" (exit code {c})"))
            .unwrap_or_default();
        println!("command     {}{code}", pr(c));
    }
    println!(
        "duration    {:.1} s{}",
        m.duration_s(last_tick),
        if m.end_ns.is_none() {
            " (no clean end: the recorder was killed, stopped by an error such as a full disk, or is still running)"
        } else {
            ""
        }
    );
    println!("snapshots   {}", rec.ticks.len());
    println!("processes   {}", rec.process_count);
    println!("samples     {}", rec.sample_count()?);
    let oom = rec.oom_killed()?;
    if !oom.is_empty() {
        let who: Vec<String> = oom
            .iter()
            .map(|p| format!("{} ({})", p.id.pid, pr(&p.comm)))
            .collect();
        println!(
            "oom kills   {} killed by the kernel's OOM killer: {}",
            oom.len(),
            who.join(", ")
        );
    }
    let markers = rec.markers()?;
    if !markers.is_empty() {
        let phases = markers.iter().filter(|(_, k, _)| k == "begin").count();
        println!("markers     {} ({phases} phases begun)", markers.len());
    }
    if let Some(line) = located_line(&rec.located()?) {
        println!("located     {line}");
    }
    println!(
        "limits      MemTotal {}, swap {}, cgroup memory.max {}, RLIMIT_AS {}",
        bytes(m.mem_total as f64),
        bytes(m.swap_total as f64),
        m.cgroup_max
            .map(|b| bytes(b as f64))
            .unwrap_or_else(|| "not set".into()),
        m.rlimit_as
            .map(|b| bytes(b as f64))
            .unwrap_or_else(|| "unlimited".into()),
    );
    let nonzero: Vec<String> = rec
        .counters
        .iter()
        .filter(|(_, v)| *v != 0)
        .map(|(k, v)| format!("{}={v}", pr(k)))
        .collect();
    if !nonzero.is_empty() {
        println!("counters    {}", nonzero.join(" "));
    }
    for n in &rec.notes {
        println!("note        {}", pr(n));
    }
    if args.processes {
        println!();
        super::summary::print(&rec)?;
    }
    Ok(0)
}

/// Columns of `--series`, in order.
const SERIES_HEADER: &str = "pid,start_ns,t_ns,t_s,vm,rss_anon,rss_file,rss_shmem,swap";

/// `info --series PID`: every recorded sample of the processes with `pid`.
fn print_series(rec: &Recording, pid: u32) -> Result<i32> {
    use std::io::Write;
    let procs = rec.processes_with_pid(pid)?;
    if procs.is_empty() {
        let file = rec.path().display();
        anyhow::bail!(
            "{file} holds no process with PID {pid}; `memleak info -p {file}` lists the ones it holds"
        );
    }
    let start = rec.meta.start_ns;
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    writeln!(out, "{SERIES_HEADER}")?;
    for p in &procs {
        for (t, m) in rec.raw_samples(p)? {
            writeln!(
                out,
                "{},{},{t},{:.3},{},{},{},{},{}",
                p.id.pid,
                p.id.start_ns,
                t.saturating_sub(start) as f64 / 1e9,
                m.vm,
                m.rss_anon,
                m.rss_file,
                m.rss_shmem,
                m.swap
            )?;
        }
    }
    out.flush()?;
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::flamegraph::tests::{located, stack};

    #[test]
    fn located_line_names_the_top_function() {
        assert_eq!(located_line(&Default::default()), None);
        let mut l = located(vec![
            stack(7, 30, &["main", "leak_site"]),
            stack(8, 10, &["main", "churn\u{1b}[2J"]),
        ]);
        l.lost = 2;
        let line = located_line(&l).unwrap();
        assert!(line.starts_with("2 stacks in 2 processes"), "{line}");
        assert!(line.contains("top: leak_site in leaky (pid 7)"), "{line}");
        assert!(line.contains("(75.0%); 2 samples lost"), "{line}");
    }
}
