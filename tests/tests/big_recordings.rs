//! Recordings far larger than memory should need: a machine-wide recording
//! can hold millions of processes, and analysing it must take memory in
//! proportion to one process's series, not to the file.

use std::path::Path;
use std::process::{Command, Stdio};

use memleak::sample::{Mem, Observation, ProcId, ProcMeta};
use memleak::store::Writer;
use memleak_tests::memleak_bin;

const PROCESSES: u64 = 100_000;

/// A recording of `PROCESSES` short-lived processes with one sample each
/// (a build farm's compiler invocations), written through the store's
/// Writer for the header and in bulk SQL for the rows, which is what the
/// Writer would have produced one snapshot at a time.
fn many_short_processes(path: &Path) {
    let start: u64 = 1_000_000_000_000;
    let mut w = Writer::create(path).unwrap();
    w.set_meta("start_ns", &start.to_string()).unwrap();
    w.set_meta("interval_ns", "1000000000").unwrap();
    let obs = Observation {
        id: ProcId {
            pid: 1,
            start_ns: start,
        },
        at_ns: start + 1_000_000_000,
        mem: Mem {
            vm: 100 << 20,
            rss_anon: 10 << 20,
            ..Mem::default()
        },
        meta: ProcMeta {
            ppid: 0,
            comm: "init".into(),
            cmdline: Some("/sbin/init".into()),
        },
        exit: None,
    };
    w.write_snapshot(start + 1_000_000_000, &[obs]).unwrap();
    w.finish(start + 10_000_000_000).unwrap();
    let c = rusqlite::Connection::open(path).unwrap();
    c.execute_batch(&format!(
        "BEGIN;
         WITH RECURSIVE n(i) AS (SELECT 2 UNION ALL SELECT i + 1 FROM n WHERE i < {last})
         INSERT INTO processes (id, pid, start_ns, ppid, comm, cmdline, exit_ns, exit_code)
         SELECT i, 10000 + i, {start} + i * 1000, 1, 'cc1', '/usr/lib/gcc/cc1 -quiet unit' || i || '.c -o unit' || i || '.s',
                {start} + i * 1000 + 500, 0 FROM n;
         WITH RECURSIVE n(i) AS (SELECT 2 UNION ALL SELECT i + 1 FROM n WHERE i < {last})
         INSERT INTO samples (proc_id, t_ns, vm, rss_anon, rss_file, rss_shmem, swap)
         SELECT i, {start} + i * 1000 + 100, 50000000, 20000000, 4000000, 0, 0 FROM n;
         COMMIT;",
        last = PROCESSES + 1
    ))
    .unwrap();
}

/// Runs memleak and returns (exit code, stdout, peak RSS in KiB).
// The child is reaped by wait4 (for its rusage), which clippy cannot see.
#[allow(clippy::zombie_processes)]
fn run_measured(args: &[&str]) -> (i32, Vec<u8>, i64) {
    let child = Command::new(memleak_bin())
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let pid = child.id() as libc::pid_t;
    let mut stdout = child.stdout.unwrap();
    let mut out = Vec::new();
    std::io::Read::read_to_end(&mut stdout, &mut out).unwrap();
    let mut status = 0;
    // SAFETY: rusage is plain data, filled by the kernel for our child.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    let r = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    assert_eq!(r, pid, "wait4");
    (libc::WEXITSTATUS(status), out, usage.ru_maxrss)
}

#[test]
fn analysing_many_processes_takes_memory_of_one_not_of_all() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("many.memleak");
    many_short_processes(&file);
    let f = file.to_str().unwrap();
    for format in ["table", "json", "junit"] {
        let (code, out, peak_kib) = run_measured(&["analyze", f, "--format", format]);
        assert_eq!(code, 0, "{format}: {}", String::from_utf8_lossy(&out));
        // 100,000 process rows alone are ~25 MiB as ProcessInfo; a reader
        // that holds them all (and a report listing each) peaks far above.
        assert!(
            peak_kib < 48 * 1024,
            "{format}: analysing {PROCESSES} one-sample processes peaked at {} MiB",
            peak_kib / 1024
        );
        if format == "json" {
            let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
            assert_eq!(v["recording"]["processes"], PROCESSES + 1);
            assert_eq!(v["summary"]["skipped"], PROCESSES + 1);
            assert_eq!(
                v["skipped"].as_array().unwrap().len(),
                memleak::analyse::LISTED_SKIPPED,
                "skipped processes past the first {} are counted, not listed",
                memleak::analyse::LISTED_SKIPPED
            );
        }
    }
}
