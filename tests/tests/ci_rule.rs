//! `memleak run` at default settings on short real programs, as a CI user
//! runs it: an 8 s CPython leak whose heap is freed at interpreter exit is
//! flagged (exit 3 with --fail-on-leak), a flat program with allocation
//! churn is not (exit 0), and a leak too slow to reach RAM within the
//! horizon is still flagged in `run` because it kept memory (CI rule),
//! while `analyze --rule horizon` of the same recording only calls it
//! growing.

use std::path::Path;
use std::process::{Command, Output};

use memleak_tests::{memleak_bin, require_ebpf, workload};

/// python3 on PATH, or why the Python cases cannot run.
fn python() -> Result<String, String> {
    match Command::new("python3").arg("-c").arg("pass").output() {
        Ok(o) if o.status.success() => Ok("python3".into()),
        Ok(o) => Err(format!(
            "python3 fails: {}",
            String::from_utf8_lossy(&o.stderr)
        )),
        Err(e) => Err(format!("python3 not found: {e}")),
    }
}

fn run_default(dir: &Path, out: &str, extra: &[&str], cmd: &[&str]) -> Output {
    Command::new(memleak_bin())
        .current_dir(dir)
        .args(["run", "-q", "--fail-on-leak", "--format", "json", "-o", out])
        .args(extra)
        .arg("--")
        .args(cmd)
        .output()
        .expect("run memleak")
}

/// Keeps 1 MiB every 50 ms for 8 s (~160 MiB), touching every page; the
/// interpreter frees it all at exit.
const PY_LEAK: &str = "
import time
keep = []
end = time.time() + 8
while time.time() < end:
    b = bytearray(1 << 20)
    b[::4096] = b'x' * len(b[::4096])
    keep.append(b)
    time.sleep(0.05)
";

/// Allocates and drops up to 12 MiB of buffers again and again for 8 s.
const PY_FLAT: &str = "
import time, random
end = time.time() + 8
while time.time() < end:
    junk = [bytearray(random.randint(1, 64) << 10) for _ in range(200)]
    del junk
    time.sleep(0.01)
";

/// Verdicts of the Python processes judged (pyenv's shims, when python3 is
/// one, run as processes of other names).
fn python_verdicts(report: &serde_json::Value) -> Vec<String> {
    report["processes"]
        .as_array()
        .expect("processes")
        .iter()
        .filter(|p| p["comm"].as_str().is_some_and(|c| c.starts_with("python")))
        .map(|p| p["verdict"].as_str().unwrap_or("").to_string())
        .collect()
}

#[test]
fn an_eight_second_python_leak_freed_at_exit_fails_the_run() {
    require_ebpf!();
    let py = match python() {
        Ok(p) => p,
        Err(why) => {
            eprintln!("skipped: {why}");
            return;
        }
    };
    let dir = tempfile::tempdir().unwrap();
    let leak = run_default(dir.path(), "leak.memleak", &[], &[&py, "-c", PY_LEAK]);
    let report: serde_json::Value = serde_json::from_slice(&leak.stdout).expect("JSON report");
    assert_eq!(
        leak.status.code(),
        Some(3),
        "the leak fails the run\n{}\n{report:#}",
        String::from_utf8_lossy(&leak.stderr)
    );
    assert!(
        python_verdicts(&report).iter().any(|v| v == "leak"),
        "{report:#}"
    );
    let p = report["processes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["verdict"] == "leak")
        .unwrap();
    let released = p["released_at_exit_bytes"].as_f64().unwrap_or(0.0);
    assert!(
        released > 100.0 * 1048576.0,
        "the heap freed at exit is reported, not held against the verdict: {p:#}"
    );

    let flat = run_default(dir.path(), "flat.memleak", &[], &[&py, "-c", PY_FLAT]);
    let report: serde_json::Value = serde_json::from_slice(&flat.stdout).expect("JSON report");
    assert_eq!(
        flat.status.code(),
        Some(0),
        "a flat process with churn passes\n{}\n{report:#}",
        String::from_utf8_lossy(&flat.stderr)
    );
    assert!(
        python_verdicts(&report).iter().all(|v| v != "leak"),
        "{report:#}"
    );
}

#[test]
fn run_flags_kept_memory_that_the_horizon_rule_only_calls_growing() {
    require_ebpf!();
    let dir = tempfile::tempdir().unwrap();
    // 4 MiB/s for 12 s (48 MiB kept, more than the 32 MiB threshold), far
    // from exhausting RAM within the hour at --horizon 1m.
    let wl = workload();
    let out = run_default(
        dir.path(),
        "slow.memleak",
        &["--horizon", "1m"],
        &[&wl, "leak", "--rate-mib", "4", "--seconds", "12"],
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON report");
    assert_eq!(
        out.status.code(),
        Some(3),
        "kept memory fails the run whatever the horizon\n{}\n{report:#}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(report["settings"]["rule"], "ci", "{report:#}");
    let why = report["processes"][0]["findings"][0]["why"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(why.contains("CI rule"), "{why}");

    // The same recording judged by the horizon rule: it finished on its own
    // and would not reach RAM within a minute, so it is not a leak.
    let analyze = Command::new(memleak_bin())
        .current_dir(dir.path())
        .args([
            "analyze",
            "slow.memleak",
            "--rule",
            "horizon",
            "--horizon",
            "1m",
            "--fail-on-leak",
        ])
        .output()
        .unwrap();
    assert_eq!(
        analyze.status.code(),
        Some(0),
        "{}{}",
        String::from_utf8_lossy(&analyze.stdout),
        String::from_utf8_lossy(&analyze.stderr)
    );
}
