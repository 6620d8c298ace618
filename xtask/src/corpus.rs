//! `cargo xtask corpus`: record the labelled workload corpus with the real
//! sampler, for `memleak eval`.
//!
//! Every case is a `memleak-workload` subcommand run under its own process
//! name (a symlink named after the case, so `comm` is the case name), all
//! at once in one `memleak record` of a driver script: the 2 cores stay
//! busy for one run's length instead of eleven. The recording runs under a
//! 2 GiB address-space limit (`ulimit -v`, what a CI container might set),
//! which memleak records and projects virtual size against; the leak rates
//! are chosen so every leak reaches it within the default 1 h horizon.
//!
//! Output: `DIR/corpus.memleak` and `DIR/labels.toml` (case name → leak or
//! not, the process name, the command).
//!
//! `--set real` records the real-runtime corpus instead (Python, Node.js,
//! Java and C programs under `tests/corpus/real/`, see the
//! `memleak-corpus` crate): the same layout, without a global address-space
//! limit (a JVM reserves more than 2 GiB of address space at start); the
//! cases that need a limit set their own.
//!
//! `--set batch` runs the third-party batch corpus instead
//! (`memleak_corpus::batch`: xz, sort, gcc, git, jq, javac, ...), each case
//! under its own `memleak run --fail-on-leak --format json` at default
//! settings with the already built `target/debug/memleak`, and prints and
//! writes `DIR/batch-table.md`.

use crate::run::{build_release, run, target_dir};
use anyhow::{bail, Context, Result};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Which corpus to record.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Set {
    /// `memleak-workload` cases with exact, seeded shapes.
    Synthetic,
    /// Small Python, Node.js, Java and C programs (tests/corpus/real/).
    Real,
    /// Third-party batch programs from the distribution (xz, sort, gcc,
    /// git, jq, javac, ...), each under its own `memleak run --fail-on-leak`
    /// (tests/corpus/src/batch.rs).
    Batch,
}

#[derive(clap::Args)]
pub struct Args {
    /// Which corpus: synthetic workloads or real runtimes.
    #[arg(long, value_enum, default_value_t = Set::Synthetic)]
    set: Set,
    /// Directory for the recording and labels.toml (created; must not hold
    /// a previous corpus.memleak).
    #[arg(long, default_value = "corpus-out")]
    out: PathBuf,
    /// Seed of the workloads' noise: the same seed gives the same shapes.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// ci: 24 s at 200 ms, rates scaled up; full: 10 min at 1 s.
    /// (Synthetic set only.)
    #[arg(long, value_parser = ["ci", "full"], default_value = "ci")]
    scale: String,
    /// Run length of the real set, in seconds (default 60; its rates are
    /// fixed). (Real set only.)
    #[arg(long)]
    seconds: Option<f64>,
    /// Use these binaries instead of building them (a directory holding
    /// memleak and, for the synthetic set, memleak-workload). The batch
    /// set defaults to target/debug (build it with `cargo build -p
    /// memleak-user --bins`).
    #[arg(long)]
    bin_dir: Option<PathBuf>,
    /// Batch set: run only the cases with these names (repeatable).
    #[arg(long = "case")]
    only: Vec<String>,
    /// Batch set: only the quick subset the end-to-end test runs.
    #[arg(long)]
    quick: bool,
}

/// Address-space limit the corpus runs under (bytes).
pub const RLIMIT_AS: u64 = 2 << 30;

/// One case: name (= process name), label, workload arguments.
pub struct Case {
    pub name: &'static str,
    pub leak: bool,
    pub args: Vec<String>,
}

/// The corpus at a scale: run length `s` seconds; `full` uses gentler
/// rates. Labels match `memleak::analyse::corpus::CASES`.
pub fn cases(full: bool, seed: u64) -> (f64, f64, Vec<Case>) {
    let (s, interval) = if full { (600.0, 1.0) } else { (24.0, 0.2) };
    let pick = |ci: f64, f: f64| if full { f } else { ci };
    let fmt = |v: f64| format!("{v}");
    let case = |name: &'static str, leak: bool, args: Vec<String>| Case { name, leak, args };
    let v = |items: &[&str]| items.iter().map(|x| x.to_string()).collect::<Vec<_>>();
    let cases = vec![
        case(
            "steady-leak",
            true,
            [v(&["leak", "--rate-mib"]), v(&[&fmt(pick(4.0, 1.0))])].concat(),
        ),
        case(
            "slow-leak",
            true,
            v(&[
                "noisy-leak",
                "--rate-mib",
                &fmt(pick(1.0, 0.75)),
                "--noise-mib",
                &fmt(pick(16.0, 64.0)),
                "--seed",
                &(seed + 1).to_string(),
            ]),
        ),
        case(
            "thread-leak",
            true,
            v(&["thread-leak", "--rate-mib", &fmt(pick(3.0, 0.75))]),
        ),
        case(
            "sawtooth-leak",
            true,
            v(&[
                "sawtooth",
                "--rise-mib",
                &fmt(pick(24.0, 96.0)),
                "--keep-mib",
                &fmt(pick(6.0, 48.0)),
                "--period-s",
                &fmt(pick(3.0, 60.0)),
            ]),
        ),
        case(
            "gchild-leak",
            true,
            v(&["gchild-leak", "--rate-mib", &fmt(pick(3.0, 1.0))]),
        ),
        case(
            "gc-sawtooth",
            false,
            v(&[
                "sawtooth",
                "--rise-mib",
                &fmt(pick(32.0, 128.0)),
                "--keep-mib",
                "0",
                "--period-s",
                &fmt(pick(2.5, 50.0)),
            ]),
        ),
        case(
            "warmup-plateau",
            false,
            v(&[
                "warmup",
                "--mib",
                &fmt(pick(64.0, 256.0)),
                "--grow-s",
                &fmt(0.6 * s),
            ]),
        ),
        case(
            "cache-cap",
            false,
            v(&[
                "cache",
                "--cap-mib",
                &fmt(pick(64.0, 256.0)),
                "--fill-mib-per-s",
                &fmt(pick(64.0, 256.0) / (0.5 * s)),
                "--seed",
                &(seed + 2).to_string(),
            ]),
        ),
        case(
            "mmap-churn",
            false,
            v(&[
                "mmap-churn",
                "--mib",
                &fmt(pick(48.0, 128.0)),
                "--seed",
                &(seed + 3).to_string(),
            ]),
        ),
        case(
            "step-once",
            false,
            v(&[
                "step",
                "--mib",
                &fmt(pick(64.0, 256.0)),
                "--at-s",
                &fmt(0.5 * s),
            ]),
        ),
        case(
            "short-children",
            false,
            v(&[
                "children",
                "--count",
                &fmt(pick(40.0, 300.0)),
                "--mib",
                "4",
                "--ms",
                "100",
            ]),
        ),
    ];
    // Every case runs until the driver stops it after `s` seconds (see
    // [`driver_script`]); `--seconds` is only a safety net.
    let cases = cases
        .into_iter()
        .map(|mut c| {
            c.args
                .extend(["--seconds".to_string(), fmt(2.0 * s + 10.0)]);
            c
        })
        .collect();
    (s, interval, cases)
}

fn sh_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// The driver script: every case in the background in its own process
/// group, then after `seconds` each group is stopped with SIGTERM. A leak
/// that keeps growing until it is stopped is what the horizon rule judges;
/// a process that finishes on its own with status 0 is a bounded batch
/// (see memleak's `analyse::life`), which is not what these cases model.
pub fn driver_script(bin: &Path, cases: &[Case], seconds: f64) -> String {
    let mut script = String::from("pids=\n");
    for c in cases {
        let _ = write!(
            script,
            "setsid {}",
            sh_quote(&bin.join(c.name).display().to_string())
        );
        for a in &c.args {
            let _ = write!(script, " {}", sh_quote(a));
        }
        script.push_str(" & pids=\"$pids $!\"\n");
    }
    let _ = writeln!(script, "sleep {seconds}");
    script.push_str(STOP_GROUPS);
    script
}

/// Stops the process group of each pid in `$pids` (dash's builtin kill
/// takes no negative pids; procps' does), then waits.
pub const STOP_GROUPS: &str = "for p in $pids; do\n  \
    kill -s TERM -- \"-$p\" 2>/dev/null || /usr/bin/env kill -s TERM -- \"-$p\" 2>/dev/null\n\
    done\nwait\n";

/// labels.toml for `memleak eval`.
pub fn labels_toml(scale: &str, seed: u64, recording: &str, cases: &[Case]) -> String {
    let mut out = format!(
        "# Labels of a memleak corpus recording (cargo xtask corpus).\n\
         # A case is flagged when any process named `comm` gets a leak verdict.\n\
         scale = \"{scale}\"\nseed = {seed}\nrecording = \"{recording}\"\n"
    );
    for c in cases {
        let _ = write!(
            out,
            "\n[cases.{}]\nleak = {}\ncomm = \"{}\"\ncommand = {:?}\n",
            c.name,
            c.leak,
            c.name,
            format!("memleak-workload {}", c.args.join(" "))
        );
    }
    out
}

pub fn corpus(args: &Args) -> Result<()> {
    match args.set {
        Set::Synthetic => synthetic(args),
        Set::Real => real(args),
        Set::Batch => batch(args),
    }
}

/// `--set batch`: every third-party batch case under its own
/// `memleak run --fail-on-leak --format json` at default settings; prints
/// the table and writes it to `DIR/batch-table.md`.
fn batch(args: &Args) -> Result<()> {
    use memleak_corpus::batch;
    if args.seconds.is_some() || args.scale != "ci" {
        bail!("--seconds and --scale do not apply to the batch set");
    }
    let memleak = args
        .bin_dir
        .clone()
        .unwrap_or_else(|| target_dir().join("debug"))
        .join("memleak");
    if !memleak.is_file() {
        bail!(
            "{} is missing\n  how to fix: cargo build -p memleak-user --bins (or pass --bin-dir)",
            memleak.display()
        );
    }
    let cases: Vec<&batch::Case> = batch::CASES
        .iter()
        .filter(|c| args.only.is_empty() || args.only.iter().any(|o| o == c.name))
        .filter(|c| !args.quick || c.quick)
        .collect();
    if cases.is_empty() {
        bail!("no batch case matches --case {:?}", args.only);
    }
    // Install what is missing (apt), once for every case.
    let mut tools: Vec<(&str, &str)> = cases.iter().flat_map(|c| c.tools.iter().copied()).collect();
    tools.sort();
    tools.dedup();
    crate::apt::ensure_tools(&tools)?;
    std::fs::create_dir_all(&args.out)?;
    let out = args.out.canonicalize()?;
    let mut outcomes = Vec::new();
    let mut skipped = Vec::new();
    for c in cases {
        let missing = batch::missing_tools(c);
        if !missing.is_empty() {
            println!("  skipping {}: missing {missing:?}", c.name);
            skipped.push(c.name);
            continue;
        }
        let dir = out.join(c.name);
        if dir.exists() {
            std::fs::remove_dir_all(&dir)?;
        }
        println!("{}: {}", c.name, c.what);
        batch::setup(c, &dir).with_context(|| format!("setting up {}", c.name))?;
        let o = batch::run(&memleak, c, &dir).with_context(|| format!("running {}", c.name))?;
        println!(
            "  memleak exit {:?}, command exit {:?}, {} {:?}, {:.0} s",
            o.memleak_exit, o.command_exit, o.verdict, o.top, o.seconds
        );
        for l in &o.leaks {
            println!("  LEAK {l}");
        }
        // The inputs are large; the recording and report stay.
        for entry in std::fs::read_dir(&dir)?.flatten() {
            let p = entry.path();
            if p != o.recording && p != o.report {
                let _ = if p.is_dir() {
                    std::fs::remove_dir_all(&p)
                } else {
                    std::fs::remove_file(&p)
                };
            }
        }
        outcomes.push(o);
    }
    let flagged = outcomes
        .iter()
        .filter(|o| o.memleak_exit == Some(3))
        .count();
    let mut text = batch::table(&outcomes);
    let _ = writeln!(
        text,
        "\n{flagged} of {} cases failed the run (exit 3).",
        outcomes.len()
    );
    for o in outcomes.iter().filter(|o| !o.leaks.is_empty()) {
        for l in &o.leaks {
            let _ = writeln!(text, "- {}: {l}", o.case);
        }
    }
    for s in &skipped {
        let _ = writeln!(text, "- skipped {s}: tool missing");
    }
    println!("\n{text}");
    let file = out.join("batch-table.md");
    std::fs::write(&file, &text)?;
    println!("table written to {}", file.display());
    Ok(())
}

/// A fresh output directory (absolute) and its recording's path; refuses
/// to overwrite an earlier corpus.
fn out_dir(out: &Path) -> Result<(PathBuf, PathBuf)> {
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    let out = out.canonicalize()?;
    let recording = out.join("corpus.memleak");
    if recording.exists() {
        bail!(
            "{} exists already\n  how to fix: remove it or pick another --out",
            recording.display()
        );
    }
    Ok((out, recording))
}

/// `--set real`: build the cases, record them all at once, write labels.
fn real(args: &Args) -> Result<()> {
    if args.scale != "ci" {
        bail!(
            "--scale applies to the synthetic set only; the real set takes --seconds \
             (its rates are fixed)"
        );
    }
    let seconds = args.seconds.unwrap_or(memleak_corpus::RUN_SECONDS);
    if !(10.0..=3600.0).contains(&seconds) {
        bail!("--seconds must be between 10 and 3600");
    }
    let memleak = match &args.bin_dir {
        Some(d) => d.join("memleak"),
        None => {
            crate::setup::setup()?;
            build_release(&["memleak-user"], &["memleak"])?.remove(0)
        }
    };
    if !memleak.is_file() {
        bail!("{} is missing", memleak.display());
    }
    let (out, recording) = out_dir(&args.out)?;
    println!("building the real-runtime cases in {}", out.display());
    let mut prepared =
        memleak_corpus::prepare(&out, seconds).context("preparing the real-runtime corpus")?;
    for (name, why) in &prepared.skipped {
        println!("  skipping case {name}: {why}");
    }
    std::fs::write(out.join("driver.sh"), prepared.driver_script())?;
    println!(
        "recording {} cases at once for {} s at {} ms",
        prepared.cases.len(),
        seconds,
        memleak_corpus::INTERVAL_MS
    );
    let mut cmd = Command::new(&memleak);
    cmd.args(["record", "-q", "--sampler", "ebpf", "-i"])
        .arg(format!("{}ms", memleak_corpus::INTERVAL_MS))
        .arg("-o")
        .arg(&recording)
        .args(["--", "sh"])
        .arg(out.join("driver.sh"));
    let recorded = run(
        &mut cmd,
        "eBPF needs root and tracefs (`cargo xtask setup` mounts it)",
    );
    for failed in prepared.cleanup() {
        println!("  warning: could not remove cgroup {failed}");
    }
    recorded?;
    write_labels(&out, &prepared.labels_toml("corpus.memleak"), &memleak)
}

/// `--set synthetic` (the default): memleak-workload cases.
fn synthetic(args: &Args) -> Result<()> {
    if args.seconds.is_some() {
        bail!("--seconds applies to the real set only; the synthetic set takes --scale");
    }
    let full = args.scale == "full";
    let bin_dir = match &args.bin_dir {
        Some(d) => d.clone(),
        None => {
            crate::setup::setup()?;
            build_release(&["memleak-user", "memleak-tests"], &[])?;
            target_dir().join("release")
        }
    };
    let memleak = bin_dir.join("memleak");
    let workload = bin_dir.join("memleak-workload");
    for b in [&memleak, &workload] {
        if !b.is_file() {
            bail!("{} is missing", b.display());
        }
    }
    let (out, recording) = out_dir(&args.out)?;
    // Symlinks named after the cases: exec through them sets comm.
    let links = out.join("bin");
    std::fs::create_dir_all(&links)?;
    let workload = workload.canonicalize()?;
    let (s, interval, cases) = cases(full, args.seed);
    for c in &cases {
        let link = links.join(c.name);
        let _ = std::fs::remove_file(&link);
        std::os::unix::fs::symlink(&workload, &link)
            .with_context(|| format!("symlink {}", link.display()))?;
    }
    let script = driver_script(&links, &cases, s);
    std::fs::write(out.join("driver.sh"), &script)?;
    println!(
        "recording {} cases at once for {s} s ({} scale, seed {}), under a {} MiB address-space limit",
        cases.len(),
        args.scale,
        args.seed,
        RLIMIT_AS >> 20
    );
    let mut cmd = Command::new("sh");
    cmd.arg("-c")
        .arg(format!(
            "ulimit -v {} && exec \"$0\" record -q --sampler ebpf -i {}ms -o \"$1\" -- sh \"$2\"",
            RLIMIT_AS / 1024,
            (interval * 1000.0) as u64
        ))
        .arg(&memleak)
        .arg(&recording)
        .arg(out.join("driver.sh"));
    run(
        &mut cmd,
        "eBPF needs root and tracefs (`cargo xtask setup` mounts it)",
    )?;
    write_labels(
        &out,
        &labels_toml(&args.scale, args.seed, "corpus.memleak", &cases),
        &memleak,
    )
}

/// Writes `DIR/labels.toml` and says how to evaluate the corpus.
fn write_labels(out: &Path, labels: &str, memleak: &Path) -> Result<()> {
    std::fs::write(out.join("labels.toml"), labels)?;
    println!("corpus written to {}", out.display());
    println!(
        "  evaluate it with: {} eval {}",
        memleak.display(),
        out.display()
    );
    Ok(())
}
