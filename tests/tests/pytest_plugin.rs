//! The pytest plugin (`pytest-memleak/`), installed with pip into a venv
//! under target/, on a tiny suite: `pytest --memleak` re-runs the session
//! under `memleak run`, marks each test, fails the session on a leak and
//! names the test that was running while memory grew.
//!
//! Needs python3 with venv and pip access to PyPI (for pytest). Without
//! python3 the test skips with the reason, except on CI (CI=true).

use std::path::{Path, PathBuf};
use std::process::Command;

use memleak_tests::{memleak_bin, target_dir};
use serde_json::Value;

const SUITE: &str = r#"
import time

_hold = []

def test_stable_first():
    time.sleep(0.8)

def test_stable_second():
    data = [b"y" * 4096 for _ in range(100)]
    time.sleep(0.8)
    del data

def test_leaky():
    # About 40 MiB/s for 3 s, every page touched; never freed.
    for _ in range(60):
        _hold.append(b"x" * (2 << 20))
        time.sleep(0.05)
"#;

fn on_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true")
}

fn run(cmd: &mut Command, what: &str) {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("{what}: cannot start: {e}"));
    assert!(
        out.status.success(),
        "{what} failed ({}):\n{}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A venv under target/ with pytest and the plugin from this checkout.
fn venv() -> Option<PathBuf> {
    let dir = target_dir().join("pytest-venv");
    let python = dir.join("bin/python");
    if !python.exists() {
        let made = Command::new("python3")
            .args(["-m", "venv"])
            .arg(&dir)
            .output();
        match made {
            Ok(o) if o.status.success() => {}
            other => {
                let why = match other {
                    Ok(o) => String::from_utf8_lossy(&o.stderr).into_owned(),
                    Err(e) => e.to_string(),
                };
                if on_ci() {
                    panic!("python3 -m venv is required on CI: {why}");
                }
                eprintln!("SKIPPED: cannot create a Python venv: {why}");
                return None;
            }
        }
    }
    // pip builds in the source tree (build/, *.egg-info): install from a
    // copy so the checkout stays clean.
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("../pytest-memleak");
    let copy = tempfile::tempdir().unwrap();
    let plugin = copy.path().join("pytest-memleak");
    copy_tree(&src, &plugin);
    run(
        Command::new(&python).args(["-m", "pip", "install", "-q", "pytest"]),
        "pip install pytest",
    );
    // Always reinstall the plugin: the checkout may have changed.
    run(
        Command::new(&python)
            .args([
                "-m",
                "pip",
                "install",
                "-q",
                "--force-reinstall",
                "--no-deps",
            ])
            .arg(&plugin),
        "pip install ./pytest-memleak",
    );
    Some(python)
}

fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let name = e.file_name();
        if name == "build" || name.to_string_lossy().ends_with(".egg-info") {
            continue;
        }
        if e.file_type().unwrap().is_dir() {
            copy_tree(&e.path(), &to.join(&name));
        } else {
            std::fs::copy(e.path(), to.join(&name)).unwrap();
        }
    }
}

#[test]
fn pytest_memleak_flags_the_leak_and_names_the_test() {
    let Some(python) = venv() else { return };
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(tmp.path().join("test_suite.py"), SUITE).unwrap();
    let report = tmp.path().join("leaks.json");
    let memleak = memleak_bin();
    let out = Command::new(&python)
        .args(["-m", "pytest", "-q", "-p", "no:cacheprovider", "--memleak"])
        .arg(format!("--memleak-bin={}", memleak.display()))
        .arg(format!(
            "--memleak-args=-i 100ms --format json --report {}",
            report.display()
        ))
        .current_dir(tmp.path())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    // The tests pass; the leak fails the session with memleak's code 3.
    assert_eq!(out.status.code(), Some(3), "{stdout}\n{stderr}");
    assert!(stdout.contains("3 passed"), "{stdout}");
    // The table names the test that ran while memory grew.
    assert!(stdout.contains("phases while pid"), "{stdout}");
    let v: Value = serde_json::from_str(&std::fs::read_to_string(&report).unwrap()).unwrap();
    assert!(v["summary"]["leaks"].as_u64().unwrap() >= 1, "{v}");
    let phases = v["phases"].as_array().expect("a phases array");
    let python_phases = phases
        .iter()
        .find(|p| {
            p["phases"]
                .as_array()
                .is_some_and(|ph| ph.iter().any(|x| x["name"] == "test_suite.py::test_leaky"))
        })
        .unwrap_or_else(|| panic!("no process attributes growth to test_leaky: {phases:?}"));
    let top = &python_phases["phases"][0];
    assert_eq!(top["name"], "test_suite.py::test_leaky", "{python_phases}");
    assert!(
        top["growth_bytes"].as_f64().unwrap() > 60.0 * 1048576.0,
        "{python_phases}"
    );
    // Stable tests that overlap the window saw (almost) no growth.
    for p in python_phases["phases"].as_array().unwrap().iter().skip(1) {
        assert!(
            p["growth_bytes"].as_f64().unwrap() < 8.0 * 1048576.0,
            "{python_phases}"
        );
    }

    // Without the leaky test: exit 0, nothing flagged.
    let out = Command::new(&python)
        .args(["-m", "pytest", "-q", "-p", "no:cacheprovider", "--memleak"])
        .args(["-k", "not leaky"])
        .arg(format!("--memleak-bin={}", memleak.display()))
        .arg("--memleak-args=-i 100ms")
        .current_dir(tmp.path())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("2 passed"), "{stdout}");
    assert!(!stdout.contains("phases while pid"), "{stdout}");
}
