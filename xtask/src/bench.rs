//! `cargo xtask bench [NAME...]`: run benchmarks and keep their output in
//! `bench-results/<name>-<unix time>.txt` (gitignored).

use crate::run::{cargo, display, root};
use anyhow::{bail, Context, Result};
use std::io::{BufRead, BufReader, Write};
use std::process::Stdio;
use std::time::{SystemTime, UNIX_EPOCH};

/// A benchmark xtask knows how to run. Add a row to add one.
struct Bench {
    name: &'static str,
    package: &'static str,
    /// The package's directory, relative to the workspace root.
    dir: &'static str,
    /// The `[[bench]]` target (file `benches/<target>.rs` of `package`).
    target: &'static str,
    about: &'static str,
}

const BENCHES: &[Bench] = &[Bench {
    name: "analyse",
    package: "memleak-user",
    dir: "memleak-user",
    target: "analyse",
    about: "analyser throughput (pre-processing + regression) on synthetic recordings",
}];

#[derive(clap::Args)]
pub struct Args {
    /// Benchmarks to run (default: all). Known: analyse.
    names: Vec<String>,
    /// Extra arguments for the bench harness (after `--`).
    #[arg(last = true)]
    harness_args: Vec<String>,
}

pub fn bench(args: &Args) -> Result<()> {
    let selected: Vec<&Bench> = if args.names.is_empty() || args.names.iter().any(|n| n == "all") {
        BENCHES.iter().collect()
    } else {
        args.names
            .iter()
            .map(|n| {
                BENCHES.iter().find(|b| b.name == n).with_context(|| {
                    let known: Vec<_> = BENCHES.iter().map(|b| b.name).collect();
                    format!("unknown benchmark `{n}`; known: {}", known.join(", "))
                })
            })
            .collect::<Result<_>>()?
    };
    let out_dir = root().join("bench-results");
    std::fs::create_dir_all(&out_dir)
        .with_context(|| format!("could not create {}", out_dir.display()))?;
    for b in selected {
        run_bench(b, &args.harness_args, &out_dir)?;
    }
    Ok(())
}

fn run_bench(b: &Bench, harness_args: &[String], out_dir: &std::path::Path) -> Result<()> {
    let file = root()
        .join(b.dir)
        .join("benches")
        .join(format!("{}.rs", b.target));
    if !file.is_file() {
        println!(
            "xtask bench: {} skipped: {} does not exist yet",
            b.name,
            file.strip_prefix(root()).unwrap_or(&file).display()
        );
        return Ok(());
    }
    println!("xtask bench: {} — {}", b.name, b.about);
    let mut cmd = cargo(["bench", "-p", b.package, "--bench", b.target]);
    if !harness_args.is_empty() {
        cmd.arg("--").args(harness_args);
    }
    let stamp = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let path = out_dir.join(format!("{}-{stamp}.txt", b.name));
    let mut log = std::fs::File::create(&path)
        .with_context(|| format!("could not create {}", path.display()))?;
    writeln!(log, "$ {}", display(&cmd))?;

    println!("$ {}", display(&cmd));
    let mut child = cmd
        .stdout(Stdio::piped())
        .spawn()
        .with_context(|| format!("could not start `{}`", display(&cmd)))?;
    // Tee the harness's stdout (the results) to the terminal and the file;
    // cargo's own progress goes to stderr and is not kept.
    if let Some(stdout) = child.stdout.take() {
        for line in BufReader::new(stdout).lines() {
            let line = line.context("reading benchmark output")?;
            println!("{line}");
            writeln!(log, "{line}")?;
        }
    }
    let status = child.wait().context("waiting for cargo bench")?;
    if !status.success() {
        bail!(
            "`{}` failed ({status}); partial output in {}\n  how to fix: read the errors above",
            display(&cmd),
            path.display()
        );
    }
    println!(
        "xtask bench: {} results saved to {}",
        b.name,
        path.display()
    );
    Ok(())
}
