//! `memleak run` at default settings on short real programs, as a CI user
//! runs it, failing on evidence only: an 8 s CPython script that keeps
//! memory and exits by itself "grew until exit" (reported, exit 0) unless
//! it peaks over a stated `--limit`; the same leak in a service stopped by
//! SIGTERM fails the run (exit 3); a flat program with allocation churn is
//! neither; and a leak too slow to reach RAM within the horizon is still
//! flagged in `run` because it kept memory until stopped (CI rule), while
//! `analyze --rule horizon` of the same recording only calls it growing.

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

/// The Python process of a report, by its verdict.
fn python_with<'a>(report: &'a serde_json::Value, verdict: &str) -> &'a serde_json::Value {
    report["processes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| {
            p["comm"].as_str().is_some_and(|c| c.starts_with("python")) && p["verdict"] == verdict
        })
        .unwrap_or_else(|| panic!("no python process judged {verdict}: {report:#}"))
}

#[test]
fn a_script_that_grows_until_it_exits_is_reported_not_failed() {
    require_ebpf!();
    memleak_tests::require_feature!("python3", python().err());
    let py = "python3".to_string();
    let dir = tempfile::tempdir().unwrap();
    // By its memory, a script that keeps 160 MiB and exits is awk building
    // a hash: its work had an end. Reported as such, never exit 3.
    let leak = run_default(dir.path(), "leak.memleak", &[], &[&py, "-c", PY_LEAK]);
    let report: serde_json::Value = serde_json::from_slice(&leak.stdout).expect("JSON report");
    assert_eq!(
        leak.status.code(),
        Some(0),
        "growth until a clean exit is not evidence of a leak\n{}\n{report:#}",
        String::from_utf8_lossy(&leak.stderr)
    );
    let p = python_with(&report, "grew_until_exit");
    assert_eq!(p["end"]["kind"], "exited", "{p:#}");
    let released = p["released_at_exit_bytes"].as_f64().unwrap_or(0.0);
    assert!(
        released > 100.0 * 1048576.0,
        "the heap freed at exit is reported: {p:#}"
    );
    let top = &p["findings"][0];
    assert!(
        top["peak_bytes"].as_f64().unwrap_or(0.0) > 100.0 * 1048576.0,
        "{top:#}"
    );
    assert!(top["evidence"].is_null(), "{top:#}");
    assert!(
        report["summary"]["grew_until_exit"].as_u64().unwrap_or(0) >= 1,
        "{report:#}"
    );

    // The same recording in a CI log: a warning, not an error.
    let gh = Command::new(memleak_bin())
        .current_dir(dir.path())
        .args(["analyze", "leak.memleak", "--format", "github"])
        .output()
        .unwrap();
    let gh = String::from_utf8_lossy(&gh.stdout);
    assert!(
        gh.contains("::warning title=Memory grew until exit"),
        "{gh}"
    );
    assert!(!gh.contains("::error"), "{gh}");

    let flat = run_default(dir.path(), "flat.memleak", &[], &[&py, "-c", PY_FLAT]);
    let report: serde_json::Value = serde_json::from_slice(&flat.stdout).expect("JSON report");
    assert_eq!(
        flat.status.code(),
        Some(0),
        "a flat process with churn passes\n{}\n{report:#}",
        String::from_utf8_lossy(&flat.stderr)
    );
    assert!(
        python_verdicts(&report)
            .iter()
            .all(|v| v != "leak" && v != "grew_until_exit"),
        "{report:#}"
    );
}

#[test]
fn a_script_over_the_stated_limit_fails_the_run_whatever_its_end() {
    require_ebpf!();
    memleak_tests::require_feature!("python3", python().err());
    let py = "python3".to_string();
    let dir = tempfile::tempdir().unwrap();
    // It will not fit in the 64 MiB container it is deployed to: that is
    // evidence, finished or not.
    let out = run_default(
        dir.path(),
        "limit.memleak",
        &["--limit", "64MiB"],
        &[&py, "-c", PY_LEAK],
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON report");
    assert_eq!(
        out.status.code(),
        Some(3),
        "over --limit fails the run\n{}\n{report:#}",
        String::from_utf8_lossy(&out.stderr)
    );
    let p = python_with(&report, "leak");
    assert_eq!(p["findings"][0]["evidence"], "over_stated_limit", "{p:#}");
}

/// Leaks 1 MiB every 50 ms until it is stopped, as a service would.
const PY_SERVICE_LEAK: &str = "
import time
keep = []
while True:
    b = bytearray(1 << 20)
    b[::4096] = b'x' * len(b[::4096])
    keep.append(b)
    time.sleep(0.05)
";

#[test]
fn a_service_that_grows_until_stopped_fails_the_run() {
    require_ebpf!();
    memleak_tests::require_feature!("python3", python().err());
    let py = "python3".to_string();
    let dir = tempfile::tempdir().unwrap();
    // The harness stops it with SIGTERM after 8 s, as a test suite stops the
    // server it tested, and itself passes: the server's growth had no end
    // of its own.
    let harness = format!("{py} -c \"$0\" & pid=$!; sleep 8; kill $pid; wait $pid; exit 0");
    let out = run_default(
        dir.path(),
        "service.memleak",
        &[],
        &["sh", "-c", &harness, PY_SERVICE_LEAK],
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON report");
    assert_eq!(
        out.status.code(),
        Some(3),
        "a service stopped while growing fails the run\n{}\n{report:#}",
        String::from_utf8_lossy(&out.stderr)
    );
    let p = python_with(&report, "leak");
    assert_eq!(p["end"]["kind"], "signaled", "{p:#}");
    // 20 MiB/s: at that rate it also reaches RAM within the hour.
    let evidence = p["findings"][0]["evidence"].as_str().unwrap_or_default();
    assert!(
        matches!(evidence, "kept_until_stopped" | "reaches_limit"),
        "{p:#}"
    );
}

#[test]
fn run_flags_kept_memory_that_the_horizon_rule_only_calls_growing() {
    require_ebpf!();
    let dir = tempfile::tempdir().unwrap();
    // 4 MiB/s until its harness stops it after 12 s (48 MiB kept, more than the 32 MiB
    // threshold), far from exhausting RAM within the hour at --horizon 1m.
    let wl = workload();
    let out = run_default(
        dir.path(),
        "slow.memleak",
        &["--horizon", "1m"],
        &[
            "sh",
            "-c",
            "\"$0\" leak --rate-mib 4 --seconds 600 & pid=$!; sleep 12; kill $pid; wait $pid; exit 0",
            &wl,
        ],
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

    // The same recording judged by the horizon rule: it would not reach
    // RAM within a minute, so it is not a leak.
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
