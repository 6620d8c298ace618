//! `cargo xtask test`: what CI runs, in order, stopping at the first failure.

use crate::run::{cargo, run};
use crate::setup::{ensure_component, setup};
use anyhow::{Context, Result};
use std::process::Command;

struct Step {
    name: &'static str,
    cmd: Command,
    fix: &'static str,
}

pub fn test() -> Result<()> {
    setup()?;
    // Lints and formatting need these components; minimal profiles lack them.
    ensure_component(None, "rustfmt")?;
    ensure_component(None, "clippy")?;
    ensure_component(Some("nightly"), "clippy")?;

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
            name: "tests",
            cmd: cargo(["test", "--workspace", "--exclude", "memleak-ebpf"]),
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
