//! End-to-end: a fast subset of the labelled corpus (`cargo xtask corpus`),
//! recorded all at once with the real eBPF sampler under a 2 GiB
//! address-space limit; the combined default must flag every leak case and
//! none of the no-leak cases.

use std::process::Command;

use memleak::analyse::{ModelChoice, Settings, Verdict};
use memleak::load::analyse_recording as analyse;
use memleak::store::Recording;
use memleak_tests::{memleak_bin, require_ebpf, workload};

const SECONDS: &str = "12";

/// (case = process name, leak?, workload arguments before --seconds).
const CASES: &[(&str, bool, &[&str])] = &[
    ("steady-leak", true, &["leak", "--rate-mib", "4"]),
    (
        "slow-leak",
        true,
        &[
            "noisy-leak",
            "--rate-mib",
            "2",
            "--noise-mib",
            "12",
            "--seed",
            "7",
        ],
    ),
    (
        "sawtooth-leak",
        true,
        &[
            "sawtooth",
            "--rise-mib",
            "16",
            "--keep-mib",
            "4",
            "--period-s",
            "1.5",
        ],
    ),
    ("gchild-leak", true, &["gchild-leak", "--rate-mib", "3"]),
    (
        "gc-sawtooth",
        false,
        &[
            "sawtooth",
            "--rise-mib",
            "24",
            "--keep-mib",
            "0",
            "--period-s",
            "1.5",
        ],
    ),
    (
        "warmup-plateau",
        false,
        &["warmup", "--mib", "48", "--grow-s", "7"],
    ),
    ("step-once", false, &["step", "--mib", "48", "--at-s", "6"]),
    (
        "mmap-churn",
        false,
        &["mmap-churn", "--mib", "32", "--seed", "3"],
    ),
];

#[test]
fn combined_default_flags_exactly_the_leaks() {
    require_ebpf!();
    let dir = tempfile::tempdir().unwrap();
    let bin = dir.path().join("bin");
    std::fs::create_dir(&bin).unwrap();
    // Each case runs in its own process group until the driver stops it
    // after SECONDS: leaks keep growing until they are stopped (a process
    // that finishes on its own with status 0 is a bounded batch).
    let mut script = String::from("pids=\n");
    for (name, _, args) in CASES {
        std::os::unix::fs::symlink(workload(), bin.join(name)).unwrap();
        script.push_str(&format!("setsid '{}'", bin.join(name).display()));
        for a in args.iter().chain(&["--seconds", "60"]) {
            script.push_str(&format!(" '{a}'"));
        }
        script.push_str(" & pids=\"$pids $!\"\n");
    }
    script.push_str(&format!("sleep {SECONDS}\n"));
    script.push_str(
        "for p in $pids; do\n  kill -s TERM -- \"-$p\" 2>/dev/null || \
         /usr/bin/env kill -s TERM -- \"-$p\" 2>/dev/null\ndone\nwait\n",
    );
    let driver = dir.path().join("driver.sh");
    std::fs::write(&driver, script).unwrap();
    let rec_path = dir.path().join("corpus.memleak");
    let status = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "ulimit -v {} && exec \"$0\" record -q --sampler ebpf -i 100ms -o \"$1\" -- sh \"$2\"",
            2u64 << 20
        ))
        .arg(memleak_bin())
        .arg(&rec_path)
        .arg(&driver)
        .status()
        .unwrap();
    assert!(status.success(), "memleak record failed: {status}");
    let rec = Recording::open(&rec_path).unwrap();
    assert_eq!(rec.meta.rlimit_as, Some(2 << 30));

    let flagged = |model: ModelChoice| {
        let a = analyse(
            &rec,
            &Settings {
                model,
                ..Settings::default()
            },
        )
        .unwrap();
        CASES
            .iter()
            .map(|(name, _, _)| {
                let procs: Vec<_> = a
                    .results
                    .iter()
                    .filter(|r| r.process.comm == *name)
                    .collect();
                assert!(
                    !procs.is_empty(),
                    "{name}: no analysed process of that name"
                );
                let leak = procs.iter().any(|r| r.verdict == Verdict::Leak);
                let why: Vec<String> = procs
                    .iter()
                    .filter_map(|r| r.top().map(|f| format!("[{}] {}", f.model.name(), f.why)))
                    .collect();
                (*name, leak, why)
            })
            .collect::<Vec<_>>()
    };
    let all = flagged(ModelChoice::All);
    for ((name, label, _), (_, got, why)) in CASES.iter().zip(&all) {
        assert_eq!(got, label, "{name}: expected leak = {label}; {why:?}");
    }
}
