//! Soak: thousands of processes forking and exiting under the eBPF sampler.
//!
//! - the recorder's own memory (VmRSS) stays flat: second half vs first half;
//! - no process-map entries leak for exited processes (`procs_map_entries`
//!   at the end is near the number of live processes in scope: zero);
//! - no process is missing: every forked child is in the recording, with
//!   its exit; no loss counter moved.
//!
//! CI runs it for ~45 s; `cargo xtask soak --minutes N` runs it longer
//! (MEMLEAK_SOAK_SECS).

use std::collections::HashSet;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use memleak::store::Recording;
use memleak_tests::{memleak_bin, require_ebpf, workload};

const MIB: u64 = 1024 * 1024;

fn vm_rss(pid: u32) -> Option<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let kb: u64 = s
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()?;
    Some(kb * 1024)
}

/// Forks short children until `stop` exists: batches of 20 concurrent
/// `sleep`s, and every 20th child a workload process that maps and touches
/// memory. Every child's pid goes to `pids` (the shell's `$!`, no fork).
const SCRIPT: &str = r#"
cd "$1" || exit 1
n=0
while [ ! -e stop ]; do
    sleep 0.02 & echo $! >> pids
    n=$((n + 1))
    if [ $((n % 20)) -eq 0 ]; then
        "$2" short --ms 10 --mib 2 & echo $! >> pids
        wait
    fi
done
wait
"#;

#[test]
fn soak_many_short_processes() {
    require_ebpf!();
    let secs: u64 = std::env::var("MEMLEAK_SOAK_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(45);
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("soak.memleak");
    let child = Command::new(memleak_bin())
        .args([
            "record",
            "-q",
            "--sampler",
            "ebpf",
            "--interval",
            "100ms",
            "-o",
        ])
        .arg(&out)
        .args(["--", "sh", "-c", SCRIPT, "soak"])
        .arg(dir.path())
        .arg(workload())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start memleak");
    let pid = child.id();
    let start = Instant::now();
    let mut rss: Vec<(f64, u64)> = Vec::new();
    while start.elapsed() < Duration::from_secs(secs) {
        std::thread::sleep(Duration::from_millis(250));
        if let Some(r) = vm_rss(pid) {
            rss.push((start.elapsed().as_secs_f64(), r));
        }
    }
    std::fs::write(dir.path().join("stop"), b"").unwrap();
    let o = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "memleak failed: {stderr}");
    assert!(!stderr.contains("lost information"), "{stderr}");

    // Memory of the recorder: flat once warmed up (the first 10% is
    // start-up: eBPF load, SQLite cache filling).
    let warm: Vec<u64> = rss
        .iter()
        .filter(|(t, _)| *t >= secs as f64 * 0.1)
        .map(|(_, r)| *r)
        .collect();
    assert!(warm.len() >= 20, "RSS samples: {}", warm.len());
    let (a, b) = warm.split_at(warm.len() / 2);
    let max_a = *a.iter().max().unwrap();
    let max_b = *b.iter().max().unwrap();
    eprintln!(
        "soak: recorder VmRSS first half max {:.1} MiB, second half max {:.1} MiB",
        max_a as f64 / MIB as f64,
        max_b as f64 / MIB as f64
    );
    assert!(
        max_b <= max_a + max_a / 10 + 2 * MIB,
        "recorder memory grows: first half max {max_a} B, second half max {max_b} B"
    );

    let rec = Recording::open(&out).unwrap();
    let counter = |name: &str| {
        rec.counters
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| *v)
            .unwrap_or_else(|| panic!("counter {name} missing: {:?}", rec.counters))
    };
    for loss in ["procs_map_full", "dirty_map_full", "exits_lost"] {
        assert_eq!(counter(loss), 0, "{loss}: {:?}", rec.counters);
    }
    // Everything in scope has exited: the map must be (nearly) empty.
    let entries = counter("procs_map_entries");
    assert!(entries <= 2, "process map entries left behind: {entries}");

    // Every forked child is in the recording, with its exit.
    let pids: HashSet<u32> = std::fs::read_to_string(dir.path().join("pids"))
        .unwrap()
        .lines()
        .filter_map(|l| l.trim().parse().ok())
        .collect();
    let forked = std::fs::read_to_string(dir.path().join("pids"))
        .unwrap()
        .lines()
        .count();
    eprintln!(
        "soak: {secs} s, {forked} children forked, {} processes recorded",
        rec.processes().unwrap().len()
    );
    assert!(forked >= 1000, "only {forked} children in {secs} s");
    let recorded: HashSet<u32> = rec.processes().unwrap().iter().map(|p| p.id.pid).collect();
    let missing: Vec<&u32> = pids.iter().filter(|p| !recorded.contains(p)).collect();
    assert!(
        missing.is_empty(),
        "{} of {} children missing from the recording, e.g. {:?}",
        missing.len(),
        pids.len(),
        &missing[..missing.len().min(10)]
    );
    assert!(
        rec.processes().unwrap().len() > forked,
        "each child (plus the shell) is its own process"
    );
    let no_exit: Vec<_> = rec
        .processes()
        .unwrap()
        .into_iter()
        .filter(|p| p.exit_ns.is_none())
        .collect();
    assert!(
        no_exit.is_empty(),
        "exits missing: {:?}",
        &no_exit[..no_exit.len().min(5)]
    );
}
