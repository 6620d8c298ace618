//! `cargo xtask setup`: what building and loading the eBPF program needs.
//! Idempotent: it only checks when everything is already there.

use crate::run::{cargo, cargo_bin_dir, output, run};
use anyhow::{bail, Context, Result};
use std::path::Path;
use std::process::Command;

/// The bpf-linker that matches nightly's LLVM (the README's Requirements
/// section says which and why).
const BPF_LINKER: &str = "bpf-linker@0.10.3";
const TRACEFS: &str = "/sys/kernel/tracing";

pub fn setup() -> Result<()> {
    println!("xtask setup: checking what the eBPF build needs");
    ensure_rustup()?;
    ensure_nightly()?;
    ensure_component(Some("nightly"), "rust-src")?;
    ensure_bpf_linker()?;
    ensure_nextest()?;
    ensure_tracefs();
    ensure_corpus_runtimes()?;
    println!("xtask setup: done");
    Ok(())
}

fn ensure_rustup() -> Result<()> {
    if which::which("rustup").is_err() {
        bail!(
            "rustup is not on PATH; the eBPF crate needs a nightly toolchain managed by rustup\n  \
             how to fix: install rustup (https://rustup.rs), e.g.\n    \
             curl -sSf https://sh.rustup.rs | sh -s -- -y && . \"$HOME/.cargo/env\""
        );
    }
    Ok(())
}

/// Installs the `nightly` toolchain when `cargo +nightly` would not find one.
fn ensure_nightly() -> Result<()> {
    let list = output(
        Command::new("rustup").args(["toolchain", "list"]),
        "check that rustup works: `rustup toolchain list`",
    )?;
    // `nightly-<host>` is what `+nightly` resolves to; dated nightlies
    // (`nightly-2025-...`) do not count.
    let present = list.lines().any(|l| {
        l.strip_prefix("nightly-")
            .is_some_and(|rest| !rest.starts_with(|c: char| c.is_ascii_digit()))
    });
    if present {
        println!("  nightly toolchain: present");
        return Ok(());
    }
    println!("  nightly toolchain: missing, installing");
    run(
        Command::new("rustup").args(["toolchain", "install", "nightly", "--profile", "minimal"]),
        "check the network, then run `rustup toolchain install nightly --profile minimal`",
    )
}

/// Installs a numbered toolchain (e.g. the MSRV, "1.91") if missing.
pub fn ensure_toolchain(version: &str) -> Result<()> {
    let list = output(
        Command::new("rustup").args(["toolchain", "list"]),
        "check that rustup works: `rustup toolchain list`",
    )?;
    if list.lines().any(|l| l.starts_with(&format!("{version}-"))) {
        println!("  toolchain {version}: present");
        return Ok(());
    }
    println!("  toolchain {version}: missing, installing");
    run(
        Command::new("rustup").args(["toolchain", "install", version, "--profile", "minimal"]),
        &format!(
            "check the network, then run `rustup toolchain install {version} --profile minimal`"
        ),
    )
}

/// Adds a rustup component to `toolchain` (None: the active one) if missing.
pub fn ensure_component(toolchain: Option<&str>, component: &str) -> Result<()> {
    let mut list = Command::new("rustup");
    list.args(["component", "list", "--installed"]);
    if let Some(tc) = toolchain {
        list.args(["--toolchain", tc]);
    }
    let installed = output(
        &mut list,
        "check that rustup works: `rustup component list`",
    )?;
    let prefix = format!("{component}-");
    let label = toolchain.unwrap_or("active toolchain");
    if installed
        .lines()
        .map(str::trim)
        .any(|l| l == component || l.starts_with(&prefix))
    {
        println!("  {component} ({label}): present");
        return Ok(());
    }
    println!("  {component} ({label}): missing, installing");
    let mut add = Command::new("rustup");
    add.args(["component", "add", component]);
    if let Some(tc) = toolchain {
        add.args(["--toolchain", tc]);
    }
    let fix = format!(
        "run `rustup component add {component}{}` by hand and read its error",
        toolchain
            .map(|t| format!(" --toolchain {t}"))
            .unwrap_or_default()
    );
    run(&mut add, &fix)
}

fn ensure_bpf_linker() -> Result<()> {
    let found = which::which("bpf-linker").ok().or_else(|| {
        cargo_bin_dir()
            .map(|d| d.join("bpf-linker"))
            .filter(|p| p.is_file())
    });
    let Some(path) = found else {
        println!("  bpf-linker: missing, installing {BPF_LINKER} (takes a minute or two)");
        return run(
            &mut cargo(["install", BPF_LINKER, "--locked"]),
            "`cargo install` needs network access and a C toolchain; \
             later bpf-linker versions need a system LLVM, so keep this version",
        );
    };
    let version = Command::new(&path)
        .arg("--version")
        .output()
        .with_context(|| format!("could not run {}", path.display()))?;
    let version = String::from_utf8_lossy(&version.stdout).trim().to_string();
    println!("  bpf-linker: {} ({version})", path.display());
    if !version.contains(" 0.10.") {
        println!(
            "  warning: memleak is tested with {BPF_LINKER}; if the eBPF build fails to link, \
             run `cargo install {BPF_LINKER} --locked --force`"
        );
    }
    Ok(())
}

/// cargo-nextest: the cargo recipe test (tests/tests/cargo_recipe.rs) runs
/// a throwaway crate's tests under `memleak run -- cargo nextest run`.
fn ensure_nextest() -> Result<()> {
    let found = which::which("cargo-nextest").is_ok()
        || cargo_bin_dir().is_some_and(|d| d.join("cargo-nextest").is_file());
    if found {
        return Ok(());
    }
    println!("  cargo-nextest: missing, installing it (takes a few minutes, once)");
    run(
        &mut cargo(["install", "cargo-nextest", "--locked"]),
        "`cargo install` needs network access to crates.io",
    )
}

/// The real-runtime corpus (`cargo xtask corpus --set real`,
/// tests/tests/corpus_real.rs) runs Node.js and Java programs and compiles
/// the Java ones: install them from Debian when missing. (python3 and gcc
/// are needed by the build and other tests already.)
fn ensure_corpus_runtimes() -> Result<()> {
    const RUNTIMES: &[(&str, &str)] = &[
        ("node", "nodejs"),
        ("java", "default-jre-headless"),
        ("javac", "default-jdk-headless"),
    ];
    for (bin, pkg) in RUNTIMES {
        match which::which(bin) {
            Ok(path) => println!("  {bin}: {}", path.display()),
            Err(_) => println!("  {bin}: missing, installing Debian package {pkg}"),
        }
    }
    crate::apt::ensure_tools(RUNTIMES)
}

/// Tracepoint formats come from tracefs; mount it if nobody has. Only warns
/// on failure: memleak then falls back to sampling /proc.
fn ensure_tracefs() {
    if Path::new(TRACEFS).join("events").is_dir() {
        println!("  tracefs: mounted at {TRACEFS}");
        return;
    }
    println!("  tracefs: not mounted, mounting");
    let result = run(
        Command::new("mount").args(["-t", "tracefs", "nodev", TRACEFS]),
        "run as root (or mount tracefs yourself)",
    );
    match result {
        Ok(()) if Path::new(TRACEFS).join("events").is_dir() => {
            println!("  tracefs: mounted at {TRACEFS}")
        }
        Ok(()) => println!("  warning: mounted tracefs but {TRACEFS}/events is missing"),
        Err(e) => println!(
            "  warning: could not mount tracefs ({e:#}); \
             memleak will fall back to the procfs sampler and the eBPF tests may fail"
        ),
    }
}
