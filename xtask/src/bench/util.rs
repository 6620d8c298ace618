//! Shared pieces of the benchmarks: statistics, /proc readers, children.

use anyhow::{bail, Context, Result};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, Stdio};
use std::time::{Duration, Instant};

/// Median, min and max of a non-empty sample.
#[derive(Clone, Copy, Debug)]
pub struct Stat {
    pub median: f64,
    pub min: f64,
    pub max: f64,
    pub n: usize,
}

impl Stat {
    pub fn of(values: &[f64]) -> Stat {
        let mut v: Vec<f64> = values.iter().copied().filter(|x| x.is_finite()).collect();
        v.sort_by(f64::total_cmp);
        let n = v.len();
        if n == 0 {
            return Stat {
                median: f64::NAN,
                min: f64::NAN,
                max: f64::NAN,
                n,
            };
        }
        let median = if n % 2 == 1 {
            v[n / 2]
        } else {
            (v[n / 2 - 1] + v[n / 2]) / 2.0
        };
        Stat {
            median,
            min: v[0],
            max: v[n - 1],
            n,
        }
    }

    /// `median (min–max)` with `prec` decimals.
    pub fn show(&self, prec: usize) -> String {
        format!(
            "{:.p$} ({:.p$}–{:.p$})",
            self.median,
            self.min,
            self.max,
            p = prec
        )
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::json!({"median": self.median, "min": self.min, "max": self.max, "n": self.n})
    }
}

/// CPU time of a process, all threads: (schedstat ns, utime+stime in ns
/// from /proc/PID/stat, at clock-tick resolution).
pub fn cpu_ns(pid: u32) -> Option<(u64, u64)> {
    let mut sched = 0u64;
    let tasks = std::fs::read_dir(format!("/proc/{pid}/task")).ok()?;
    for t in tasks.flatten() {
        let s = std::fs::read_to_string(t.path().join("schedstat")).unwrap_or_default();
        sched += s
            .split_whitespace()
            .next()
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0);
    }
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &stat[stat.rfind(')')? + 1..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15, i.e. 12th and 13th after comm.
    let ticks = f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?;
    Some((sched, ticks * (1_000_000_000 / clock_ticks())))
}

pub fn clock_ticks() -> u64 {
    // SAFETY: sysconf has no preconditions.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if t > 0 {
        t as u64
    } else {
        100
    }
}

/// A `kB` line of /proc/PID/status (VmHWM, VmRSS...), in KiB.
pub fn status_kib(pid: u32, key: &str) -> Option<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    s.lines()
        .find_map(|l| l.strip_prefix(key)?.strip_prefix(':'))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
}

/// Processes on the machine now (numeric entries of /proc).
pub fn process_count() -> usize {
    std::fs::read_dir("/proc")
        .map(|d| {
            d.flatten()
                .filter(|e| {
                    e.file_name()
                        .to_str()
                        .is_some_and(|n| n.parse::<u32>().is_ok())
                })
                .count()
        })
        .unwrap_or(0)
}

/// Sends `sig` to one process we started.
pub fn signal(pid: u32, sig: i32) {
    // SAFETY: signalling a child of ours by its pid.
    unsafe { libc::kill(pid as i32, sig) };
}

/// Runs `cmd` to completion; returns (wall time, peak RSS in KiB, stdout).
pub fn run_measured(cmd: &mut Command) -> Result<(Duration, u64, String)> {
    let start = Instant::now();
    let child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("could not start {cmd:?}"))?;
    let pid = child.id() as i32;
    let mut stdout = child.stdout.expect("piped");
    let mut stderr = child.stderr.expect("piped");
    let err_thread = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = std::io::Read::read_to_string(&mut stderr, &mut s);
        s
    });
    let mut out = String::new();
    let _ = std::io::Read::read_to_string(&mut stdout, &mut out);
    let mut status = 0;
    // SAFETY: an all-zero rusage is valid; wait4 fills it.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: waiting for our own child.
    let r = unsafe { libc::wait4(pid, &mut status, 0, &mut ru) };
    let wall = start.elapsed();
    let err = err_thread.join().unwrap_or_default();
    if r != pid || !libc::WIFEXITED(status) || libc::WEXITSTATUS(status) != 0 {
        bail!("{cmd:?} failed (wait status {status}):\n{err}");
    }
    Ok((wall, ru.ru_maxrss as u64, out))
}

/// A child whose stdout we read line by line (fleets, pollers).
pub struct Held {
    pub child: Child,
    pub lines: BufReader<ChildStdout>,
}

impl Held {
    pub fn spawn(cmd: &mut Command) -> Result<Held> {
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .with_context(|| format!("could not start {cmd:?}"))?;
        let lines = BufReader::new(child.stdout.take().expect("piped"));
        Ok(Held { child, lines })
    }

    /// Waits for a line starting with `prefix`.
    pub fn expect(&mut self, prefix: &str) -> Result<String> {
        let mut line = String::new();
        loop {
            line.clear();
            if self.lines.read_line(&mut line)? == 0 {
                bail!("child ended before printing `{prefix}`");
            }
            if line.starts_with(prefix) {
                return Ok(line.trim().to_string());
            }
        }
    }

    /// SIGTERM, then the rest of its stdout, then reap.
    pub fn stop(mut self) -> Result<String> {
        drop(self.child.stdin.take());
        signal(self.child.id(), libc::SIGTERM);
        let mut rest = String::new();
        let _ = std::io::Read::read_to_string(&mut self.lines, &mut rest);
        let _ = self.child.wait();
        Ok(rest)
    }
}

/// First `{...}` JSON object in `text`.
pub fn json_line(text: &str, prefix: &str) -> Option<serde_json::Value> {
    text.lines()
        .filter_map(|l| l.trim().strip_prefix(prefix))
        .find_map(|l| serde_json::from_str(l.trim()).ok())
}

/// A scratch directory for recordings, emptied first.
pub fn scratch(target: &Path, name: &str) -> Result<PathBuf> {
    let dir = target.join("bench-tmp").join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    Ok(dir)
}

/// A synthetic recording `target/bench-cache/NAME`, written once by the
/// `gen_recording` bench with `args` and cached; returns its path and the
/// generator's RESULT line (`{"cached": true}` when it already existed).
pub fn cached_recording(
    target: &Path,
    name: &str,
    args: &[&str],
) -> Result<(PathBuf, serde_json::Value)> {
    let cache = target.join("bench-cache");
    std::fs::create_dir_all(&cache)?;
    let file = cache.join(name);
    if !file.exists() {
        eprintln!("  writing {} (once; cached) ...", file.display());
    }
    let mut gen_cmd = crate::run::cargo([
        "bench",
        "-q",
        "-p",
        "memleak-user",
        "--bench",
        "gen_recording",
        "--",
    ]);
    gen_cmd.arg("--out").arg(&file).args(args);
    let out = crate::run::output(&mut gen_cmd, "read the errors above")?;
    Ok((file, json_line(&out, "RESULT").unwrap_or_default()))
}
