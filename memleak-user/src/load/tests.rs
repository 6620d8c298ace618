//! Verdicts of the analysis on small recordings written with the store's
//! writer and read back through [`analyse_recording`].

use crate::analyse::limits::LimitSource;
use crate::analyse::{Analysis, Metric, Settings, Verdict};
use crate::load::analyse_recording as analyse;
use crate::sample::ProcId;
use crate::store::Recording;

const MIB: f64 = 1024.0 * 1024.0;

fn close(a: f64, b: f64, rel: f64) -> bool {
    (a - b).abs() <= rel * a.abs().max(b.abs())
}

/// A small recording: pid 100 leaks 1 MiB/s of anon memory, pid 200 is
/// flat, pid 300 lives 3 s. 1 GiB RAM, 1 s interval, 120 s.
pub(crate) fn tiny_recording(dir: &std::path::Path) -> std::path::PathBuf {
    use crate::sample::{Exit, Mem, Observation, ProcMeta};
    use crate::store::Writer;
    let path = dir.join("tiny.memleak");
    let mut w = Writer::create(&path).unwrap();
    let start = 1_000_000_000_000u64;
    for (k, v) in [
        ("interval_ns", "1000000000".to_string()),
        ("start_ns", start.to_string()),
        ("mem_total", (1u64 << 30).to_string()),
        ("swap_total", "0".to_string()),
        ("sampler", "procfs".to_string()),
        ("command", "./leaky --fast <x>".to_string()),
    ] {
        w.set_meta(k, &v).unwrap();
    }
    let obs = |pid: u32, at: u64, anon: u64, comm: &str| Observation {
        id: ProcId {
            pid,
            start_ns: start - 1000 + pid as u64,
        },
        at_ns: at,
        mem: Mem {
            vm: 500 << 20,
            rss_anon: anon,
            rss_file: 8 << 20,
            rss_shmem: 0,
            swap: 0,
        },
        meta: ProcMeta {
            ppid: 1,
            comm: comm.to_string(),
            cmdline: Some(format!("{comm} --arg \"&<>\"")),
        },
        exit: None,
    };
    for i in 0..=120u64 {
        let at = start + i * 1_000_000_000;
        let mut o = vec![
            obs(100, at, (100 << 20) + i * (1 << 20), "leaky<&>"),
            obs(200, at, 50 << 20, "steady"),
        ];
        if i < 3 {
            let mut b = obs(300, at, 1 << 20, "brief");
            if i == 2 {
                b.exit = Some(Exit {
                    at_ns: at,
                    code: Some(0),
                    stop_signal: None,
                    oom_killed: false,
                });
            }
            o.push(b);
        }
        w.write_snapshot(at, &o).unwrap();
    }
    w.finish(start + 120 * 1_000_000_000).unwrap();
    path
}

/// The analysis of [`tiny_recording`] (for report tests).
pub(crate) fn tiny_analysis() -> Analysis {
    let dir = tempfile::tempdir().unwrap();
    let path = tiny_recording(dir.path());
    let rec = Recording::open(&path).unwrap();
    analyse(&rec, &Settings::default()).unwrap()
}

#[test]
fn recording_flags_exactly_the_leaking_process() {
    let a = tiny_analysis();
    let leaks: Vec<u32> = a.leaks().map(|r| r.process.id.pid).collect();
    assert_eq!(leaks, vec![100]);
    assert!(a.any_leak());
    assert_eq!(a.results.len(), 2);
    assert_eq!(a.results[0].process.id.pid, 100);
    let top = a.results[0].top().unwrap();
    // Judged on anon (file-backed pages are reclaimable).
    assert_eq!(top.metric, Metric::Anon);
    assert!(close(top.fit.unwrap().slope, MIB, 1e-9));
    // Last anon = 100 + 120 MiB; (1024 - 220) MiB at 1 MiB/s.
    assert!(close(top.time_to_limit_s.unwrap(), 804.0, 1e-9));
    let steady = &a.results[1];
    assert_eq!(steady.process.comm, "steady");
    assert_eq!(steady.verdict, Verdict::NoTrend);
    assert!(
        steady.findings[0].why.starts_with("anon stays at 50.0 MiB"),
        "{}",
        steady.findings[0].why
    );
    assert_eq!(a.skipped.len(), 1);
    assert_eq!(a.skipped[0].process.id.pid, 300);
    assert_eq!(a.skip_counts(), vec![("too_short", 1)]);
    assert_eq!(a.recording.interval_s, 1.0);
    assert_eq!(a.recording.duration_s, 120.0);
}

/// A parent with its own recorded limits and a child that exited before its
/// limits were read: both are judged against the parent's RLIMIT_AS and
/// cgroup limit, which fork copies, not against RAM.
#[test]
fn recorded_limits_apply_to_the_process_and_its_children() {
    use crate::sample::proclimits::LimitKind;
    use crate::sample::{Mem, Observation, ProcMeta};
    use crate::store::Writer;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("limits.memleak");
    let mut w = Writer::create(&path).unwrap();
    let start = 1_000_000_000_000u64;
    for (k, v) in [
        ("interval_ns", "1000000000".to_string()),
        ("start_ns", start.to_string()),
        ("mem_total", (64u64 << 30).to_string()),
        ("origin", "record".to_string()),
    ] {
        w.set_meta(k, &v).unwrap();
    }
    let id = |pid: u32| ProcId {
        pid,
        start_ns: start - 1000 + pid as u64,
    };
    let obs = |pid: u32, ppid: u32, at: u64, i: u64| Observation {
        id: id(pid),
        at_ns: at,
        mem: Mem {
            vm: (200 << 20) + i * (2 << 20),
            rss_anon: (20 << 20) + i * (1 << 20),
            ..Mem::default()
        },
        meta: ProcMeta {
            ppid,
            comm: format!("p{pid}"),
            cmdline: None,
        },
        exit: None,
    };
    let limits = [(
        id(10),
        vec![
            (LimitKind::RlimitAs, 1 << 30),
            (LimitKind::CgroupMax, 512 << 20),
        ],
    )];
    for i in 0..=60u64 {
        let at = start + i * 1_000_000_000;
        let o = vec![obs(10, 1, at, i), obs(11, 10, at, i)];
        let l = if i == 0 { &limits[..] } else { &[] };
        w.write_snapshot_with_limits(at, &o, l).unwrap();
    }
    w.finish(start + 60 * 1_000_000_000).unwrap();
    let rec = Recording::open(&path).unwrap();
    let a = analyse(&rec, &Settings::default()).unwrap();
    assert_eq!(a.results.len(), 2);
    for r in &a.results {
        let anon = r
            .findings
            .iter()
            .find(|f| f.metric == Metric::Anon)
            .unwrap();
        assert_eq!(
            anon.limit.source,
            LimitSource::Process(crate::sample::proclimits::LimitKind::CgroupMax),
            "{}",
            anon.why
        );
        // (512 - 80) MiB at 1 MiB/s: 7.2 min, within the hour.
        assert_eq!(anon.verdict, Verdict::Leak, "{}", anon.why);
        let vm = r.findings.iter().find(|f| f.metric == Metric::Vm).unwrap();
        assert_eq!(
            vm.limit.source,
            LimitSource::Process(crate::sample::proclimits::LimitKind::RlimitAs),
            "{}",
            vm.why
        );
        assert!(anon.why.contains("cgroup memory.max"), "{}", anon.why);
    }
}
