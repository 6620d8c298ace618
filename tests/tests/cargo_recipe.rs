//! The docs/cargo.md recipe on a throwaway crate whose test leaks:
//! `memleak run -- cargo test` attributes the growth to the leaking test
//! through phase markers, and `memleak run -- cargo nextest run` (one
//! process per test) reports the leaking test's own process as grown
//! until exit (it passed and exited by itself: reported, not failed).
//!
//! The nextest half needs `cargo-nextest`; without it that half skips
//! with the reason, except on CI (CI=true), where it fails.

use std::path::Path;
use std::process::Command;

use memleak_tests::{memleak_bin, on_ci, output_ok};
use serde_json::Value;

const CARGO_TOML: &str = r#"[package]
name = "leaky-crate"
version = "0.1.0"
edition = "2021"

[workspace]
"#;

/// The marker helper of docs/cargo.md, verbatim in spirit.
const TEST_RS: &str = r#"
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::time::Duration;

/// Marks a phase in a memleak recording (no-op outside `memleak run`).
struct Phase(String);

fn phase(name: &str) -> Phase {
    send("begin", name);
    Phase(name.to_string())
}

impl Drop for Phase {
    fn drop(&mut self) {
        send("end", &self.0);
    }
}

fn send(kind: &str, name: &str) {
    let Some(path) = std::env::var_os("MEMLEAK_MARKERS") else { return };
    if let Ok(mut f) = std::fs::OpenOptions::new()
        .write(true)
        .custom_flags(libc_o_nonblock())
        .open(path)
    {
        let _ = f.write_all(format!("{kind} {name}\n").as_bytes());
    }
}

const fn libc_o_nonblock() -> i32 {
    0o4000
}

#[test]
fn a_stable() {
    let _p = phase("a_stable");
    let v = vec![1u8; 16 << 20];
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(v[12345], 1);
}

#[test]
fn b_leaky() {
    let _p = phase("b_leaky");
    // About 40 MiB/s for 3 s, every page written, never freed.
    for _ in 0..60 {
        Box::leak(vec![1u8; 2 << 20].into_boxed_slice());
        std::thread::sleep(Duration::from_millis(50));
    }
}
"#;

fn has_nextest() -> bool {
    Command::new("cargo")
        .args(["nextest", "--version"])
        .output()
        .is_ok_and(|o| o.status.success())
}

fn memleak_run(krate: &Path, report: &Path, argv: &[&str]) -> Value {
    let out = Command::new(memleak_bin())
        .args(["run", "-q", "-i", "100ms", "-o"])
        .arg(report.with_extension("memleak"))
        .args(["--format", "json", "--report"])
        .arg(report)
        .arg("--")
        .args(argv)
        .current_dir(krate)
        .env("CARGO_TARGET_DIR", krate.join("target"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{argv:?} under memleak run: {}\n{}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_str(&std::fs::read_to_string(report).unwrap()).unwrap()
}

#[test]
fn cargo_test_and_nextest_under_memleak_name_the_leaking_test() {
    let tmp = tempfile::tempdir().unwrap();
    let krate = tmp.path().join("leaky-crate");
    std::fs::create_dir_all(krate.join("src")).unwrap();
    std::fs::create_dir_all(krate.join("tests")).unwrap();
    std::fs::write(krate.join("Cargo.toml"), CARGO_TOML).unwrap();
    std::fs::write(krate.join("src/lib.rs"), "").unwrap();
    std::fs::write(krate.join("tests/leak.rs"), TEST_RS).unwrap();
    // Build outside the recording (the recipe's first step).
    output_ok(
        Command::new("cargo")
            .args(["test", "--no-run", "-q"])
            .current_dir(&krate)
            .env("CARGO_TARGET_DIR", krate.join("target")),
    );

    // cargo test: one process for all tests; markers say which one grew.
    let v = memleak_run(
        &krate,
        &tmp.path().join("cargo-test.json"),
        &[
            "cargo",
            "test",
            "-q",
            "--test",
            "leak",
            "--",
            "--test-threads=1",
        ],
    );
    // The test binary exits by itself after its tests pass: its growth is
    // reported (grew until exit), not failed, and the markers say which
    // test it grew in.
    let grew: Vec<&Value> = v["processes"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["verdict"] == "grew_until_exit")
        .collect();
    assert!(
        grew.iter()
            .any(|p| p["comm"].as_str().unwrap().starts_with("leak-")),
        "the test binary's growth should be reported: {v}"
    );
    let phases = v["phases"].as_array().expect("phases from the markers");
    let top = &phases
        .iter()
        .find(|p| p["comm"].as_str().unwrap().starts_with("leak-"))
        .expect("phases of the test binary")["phases"][0];
    assert_eq!(top["name"], "b_leaky", "{phases:?}");
    assert!(top["growth_bytes"].as_f64().unwrap() > 60.0 * 1048576.0);

    // cargo nextest run: one process per test, named after the binary;
    // its command line names the test.
    if !has_nextest() {
        if on_ci() {
            panic!("cargo-nextest is required on CI (cargo install cargo-nextest --locked)");
        }
        eprintln!("SKIPPED (nextest half): cargo-nextest is not installed");
        return;
    }
    let v = memleak_run(
        &krate,
        &tmp.path().join("nextest.json"),
        &[
            "cargo",
            "nextest",
            "run",
            "--test",
            "leak",
            "--no-fail-fast",
        ],
    );
    let procs = v["processes"].as_array().unwrap();
    let of_test = |name: &str| -> Vec<&str> {
        procs
            .iter()
            .filter(|p| {
                p["comm"].as_str().unwrap().starts_with("leak-")
                    && p["cmdline"]
                        .as_str()
                        .is_some_and(|c| c.split_whitespace().any(|w| w == name))
            })
            .map(|p| p["verdict"].as_str().unwrap())
            .collect()
    };
    // Each test's process exits by itself: the leaking one is reported
    // by name, the stable one is not, and neither fails the run.
    assert_eq!(of_test("b_leaky"), ["grew_until_exit"], "{v}");
    let stable = of_test("a_stable");
    assert!(
        !stable
            .iter()
            .any(|v| *v == "leak" || *v == "grew_until_exit"),
        "{v}"
    );
}
