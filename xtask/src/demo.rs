//! `cargo xtask demo`: record a leaking and a stable process with `memleak run`.

use crate::run::{build_release, run};
use anyhow::{bail, Context, Result};
use std::path::PathBuf;
use std::process::Command;

#[derive(clap::Args)]
pub struct Args {
    /// Keep the recording and print its path.
    #[arg(long)]
    keep: bool,
    /// Sampler to pass to `memleak run` (default: memleak's own, `auto`).
    #[arg(long, value_parser = ["auto", "ebpf", "procfs"])]
    sampler: Option<String>,
}

/// Three workloads side by side, as a CI job runs a service under test: a
/// "service" that grows 8 MiB/s and one that holds 64 MiB, both stopped
/// with SIGTERM after 20 s (the leak is flagged: it grew until stopped),
/// and a batch job that grows 4 MiB/s for 12 s and exits by itself
/// (reported as "grew until exit": its work had an end). The workload
/// binary comes in as `$1` so no path needs shell quoting.
const SCRIPT: &str = "\"$1\" leak --rate-mib 8 --seconds 3600 & leak=$!; \
                      \"$1\" stable --mib 64 --seconds 3600 & stable=$!; \
                      \"$1\" leak --rate-mib 4 --seconds 12 & \
                      sleep 20; kill $leak $stable; wait; exit 0";

pub fn demo(args: &Args) -> Result<()> {
    crate::setup::setup()?;
    let bins = build_release(
        &["memleak-user", "memleak-tests"],
        &["memleak", "memleak-workload"],
    )?;
    let (memleak, workload) = (&bins[0], &bins[1]);

    let dir = demo_dir()?;
    let recording = dir.join("demo.memleak");
    let mut cmd = Command::new(memleak);
    // 250 ms snapshots: a 20 s demo then has ~80 points per process, enough
    // for the analyser's 20-point minimum after the warm-up is dropped.
    cmd.arg("run")
        .args(["--interval", "250ms", "-o"])
        .arg(&recording);
    if let Some(sampler) = &args.sampler {
        cmd.args(["--sampler", sampler]);
    }
    cmd.args(["--", "sh", "-c", SCRIPT, "sh"]).arg(workload);
    let result = run(
        &mut cmd,
        "eBPF needs root (or CAP_BPF+CAP_PERFMON) and tracefs; \
         try `cargo xtask demo --sampler procfs` to use the fallback",
    )
    .context("the demo recording failed");
    if result.is_ok() {
        // Memory at start, end and peak of every process: the leaking one
        // rises, the stable one stays flat.
        println!();
        let _ = run(
            Command::new(memleak).args(["info", "-p"]).arg(&recording),
            "the recording could not be read",
        );
    }

    if args.keep {
        println!("recording kept: {}", recording.display());
        println!(
            "  re-analyse it with: {} analyze {}",
            memleak.display(),
            recording.display()
        );
    } else if let Err(e) = std::fs::remove_dir_all(&dir) {
        println!("warning: could not remove {}: {e}", dir.display());
    }
    result
}

/// A fresh private directory for the recording.
fn demo_dir() -> Result<PathBuf> {
    let base = std::env::temp_dir();
    for attempt in 0..100u32 {
        let dir = base.join(format!("memleak-demo-{}-{attempt}", std::process::id()));
        match std::fs::create_dir(&dir) {
            Ok(()) => return Ok(dir),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => {
                return Err(e).with_context(|| {
                    format!("could not create {} (is TMPDIR writable?)", dir.display())
                })
            }
        }
    }
    bail!(
        "could not find a free demo directory under {}",
        base.display()
    )
}
