//! `cargo xtask test`: what CI runs, in order, stopping at the first failure.

use crate::run::{cargo, run};
use crate::setup::{ensure_component, ensure_toolchain, setup};
use anyhow::{Context, Result};
use std::process::Command;

struct Step {
    name: &'static str,
    cmd: Command,
    fix: &'static str,
}

fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("Uid:"))
                .and_then(|u| u.split_whitespace().nth(1).map(|e| e == "0"))
        })
        .unwrap_or(false)
}

/// `rust-version` of the workspace (`[workspace.package]`), the one place
/// it is set.
fn msrv() -> Result<String> {
    let path = crate::run::root().join("Cargo.toml");
    let text = std::fs::read_to_string(&path)
        .with_context(|| format!("cannot read {}", path.display()))?;
    text.lines()
        .find_map(|l| {
            let v = l.trim().strip_prefix("rust-version")?.trim_start();
            Some(v.strip_prefix('=')?.trim().trim_matches('"').to_string())
        })
        .with_context(|| format!("{} sets no rust-version", path.display()))
}

pub fn test() -> Result<()> {
    setup()?;
    // Lints and formatting need these components; minimal profiles lack them.
    ensure_component(None, "rustfmt")?;
    ensure_component(None, "clippy")?;
    ensure_component(Some("nightly"), "clippy")?;
    // Tools the end-to-end tests call: xmllint validates the JUnit report;
    // prometheus scrapes `memleak watch --metrics`; python3 (with venv)
    // runs the pytest plugin's test; chromium renders the HTML report to a
    // screenshot (tests/tests/html_browser.rs).
    crate::apt::ensure_tools(&[
        ("xmllint", "libxml2-utils"),
        ("prometheus", "prometheus"),
        ("python3", "python3-venv"),
        ("chromium", "chromium"),
    ])?;

    let msrv = msrv()?;
    ensure_toolchain(&msrv)?;
    let steps = [
        Step {
            name: "formatting",
            cmd: cargo(["fmt", "--all", "--", "--check"]),
            fix: "run `cargo fmt --all` and commit the result",
        },
        Step {
            name: "clippy (host crates)",
            cmd: cargo([
                "clippy",
                "--workspace",
                "--exclude",
                "memleak-ebpf",
                "--all-targets",
                "--",
                "-D",
                "warnings",
            ]),
            fix: "fix the warnings above (`cargo clippy --fix` helps with some)",
        },
        Step {
            name: "clippy (eBPF crate)",
            cmd: cargo([
                "+nightly",
                "clippy",
                "-p",
                "memleak-ebpf",
                "--target",
                "bpfel-unknown-none",
                "-Z",
                "build-std=core",
                "--",
                "-D",
                "warnings",
            ]),
            fix: "fix the warnings above; the eBPF crate builds only with nightly + rust-src",
        },
        Step {
            // The declared rust-version must build the host crates and
            // their tests, or it is a false promise to packagers.
            name: "MSRV (workspace rust-version)",
            cmd: cargo([
                &format!("+{msrv}"),
                "check",
                "--workspace",
                "--exclude",
                "memleak-ebpf",
                "--all-targets",
            ]),
            fix: "raise rust-version in Cargo.toml to what the error needs, or avoid the newer API",
        },
        Step {
            // The end-to-end tests run the `memleak` binary itself.
            name: "build binaries",
            cmd: cargo([
                "build",
                "--workspace",
                "--exclude",
                "memleak-ebpf",
                "--bins",
            ]),
            fix: "see the build errors above",
        },
        Step {
            name: "tests",
            cmd: {
                let mut c = cargo(["test", "--workspace", "--exclude", "memleak-ebpf"]);
                // As root the privileged tests must really run: a skip
                // would hide a broken eBPF sampler.
                if is_root() {
                    c.env("MEMLEAK_REQUIRE_EBPF", "1");
                }
                c
            },
            fix: "see the failing tests above; the end-to-end tests in tests/ need root \
                  (or CAP_BPF+CAP_PERFMON) and tracefs",
        },
    ];
    let total = steps.len();
    for (i, mut step) in steps.into_iter().enumerate() {
        println!("\n=== xtask test [{}/{total}]: {} ===", i + 1, step.name);
        run(&mut step.cmd, step.fix)
            .with_context(|| format!("xtask test: {} failed", step.name))?;
    }
    println!("\nxtask test: all {total} steps passed");
    Ok(())
}
