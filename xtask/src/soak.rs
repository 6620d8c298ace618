//! `cargo xtask soak --minutes N`: the reliability soak test, run longer.
//!
//! Runs `tests/tests/reliability_soak.rs` (thousands of short processes under
//! the eBPF sampler; recorder memory flat, no leaked map entries, no missing
//! process) for N minutes instead of CI's ~45 s. Needs root.

use crate::run::{cargo, run};
use anyhow::{Context, Result};

#[derive(clap::Args)]
pub struct Args {
    /// How long the workload runs, in minutes.
    #[arg(long, default_value_t = 10)]
    minutes: u64,
}

pub fn soak(args: &Args) -> Result<()> {
    crate::setup::setup()?;
    run(
        &mut cargo([
            "build",
            "--workspace",
            "--exclude",
            "memleak-ebpf",
            "--bins",
        ]),
        "see the build errors above",
    )
    .context("building memleak and the workload failed")?;
    let mut cmd = cargo([
        "test",
        "-p",
        "memleak-tests",
        "--test",
        "reliability_soak",
        "--",
        "--nocapture",
    ]);
    cmd.env("MEMLEAK_SOAK_SECS", (args.minutes.max(1) * 60).to_string())
        .env("MEMLEAK_REQUIRE_EBPF", "1");
    run(
        &mut cmd,
        "see the assertion above; the soak needs root (eBPF) and tracefs",
    )
    .with_context(|| format!("soak of {} minutes failed", args.minutes))
}
