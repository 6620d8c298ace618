//! The shipped systemd unit (`contrib/systemd/memleak-watch.service`):
//! `systemd-analyze verify` accepts it without a warning, and `systemd-
//! analyze security` rates it OK (the unhardened unit scored 9.6 UNSAFE).
//! Skipped, with the reason, where systemd-analyze is missing. That the
//! unit's capabilities suffice is tests/tests/capabilities.rs.

use std::path::{Path, PathBuf};
use std::process::Command;

use memleak_tests::memleak_bin;

/// The worst `systemd-analyze security` exposure accepted (0 best, 10
/// worst; below 2.0 is "OK"). Raise it only with a reason in docs/watch.md.
const MAX_EXPOSURE: f64 = 2.0;

fn unit_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../contrib/systemd/memleak-watch.service")
}

fn systemd_analyze() -> Option<()> {
    match Command::new("systemd-analyze").arg("--version").output() {
        Ok(o) if o.status.success() => Some(()),
        Ok(o) => {
            eprintln!(
                "SKIPPED: systemd-analyze --version failed: {}",
                String::from_utf8_lossy(&o.stderr)
            );
            None
        }
        Err(e) => {
            eprintln!("SKIPPED: systemd-analyze is not installed ({e})");
            None
        }
    }
}

/// The unit with ExecStart pointing at the binary under test: verify
/// checks that the command exists, and /usr/local/bin may hold none (or an
/// older one).
fn unit_for_this_build(dir: &Path) -> PathBuf {
    let text = std::fs::read_to_string(unit_path()).unwrap();
    let exec = "ExecStart=/usr/local/bin/memleak ";
    assert!(text.contains(exec), "the unit runs {exec}");
    let text = text.replace(exec, &format!("ExecStart={} ", memleak_bin().display()));
    let unit = dir.join("memleak-watch.service");
    std::fs::write(&unit, text).unwrap();
    unit
}

#[test]
fn systemd_analyze_verify_accepts_the_unit_without_warnings() {
    if systemd_analyze().is_none() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let unit = unit_for_this_build(dir.path());
    let o = Command::new("systemd-analyze")
        .arg("verify")
        .arg(&unit)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{stderr}");
    // verify exits 0 on unknown or misspelt keys: it only warns.
    assert_eq!(stderr.trim(), "", "verify warns");
}

#[test]
fn systemd_analyze_security_rates_the_unit_ok() {
    if systemd_analyze().is_none() {
        return;
    }
    let o = Command::new("systemd-analyze")
        .args(["security", "--no-pager", "--offline=true"])
        .arg(unit_path())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&o.stdout);
    let stderr = String::from_utf8_lossy(&o.stderr);
    if !o.status.success() && stderr.contains("offline") {
        eprintln!("SKIPPED: this systemd-analyze has no --offline (systemd < 250): {stderr}");
        return;
    }
    let score: f64 = stdout
        .lines()
        .find_map(|l| l.split("Overall exposure level for ").nth(1))
        .and_then(|rest| rest.split(": ").nth(1))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no exposure level in:\n{stdout}\n{stderr}"));
    assert!(
        score <= MAX_EXPOSURE,
        "exposure {score} > {MAX_EXPOSURE}:\n{stdout}"
    );
}
