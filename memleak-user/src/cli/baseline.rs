//! `memleak baseline save`, `memleak compare`, `memleak diff`: memory
//! behaviour across runs, per process name (see `analyse::baseline`).

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand};

use crate::analyse::baseline::{compare, Baseline, BASELINE_VERSION};
use crate::load::baseline::figures;
use crate::report::baseline::render;
use crate::store::Recording;

/// Far more than a baseline of thousands of process names takes; a larger
/// file is not one.
const MAX_BASELINE_BYTES: u64 = 64 << 20;

/// Exit code of compare/diff with --fail-on-change when something changed.
pub const EXIT_CHANGED: i32 = 3;

#[derive(Args, Debug)]
pub struct BaselineArgs {
    #[command(subcommand)]
    pub command: BaselineCommand,
}

#[derive(Subcommand, Debug)]
pub enum BaselineCommand {
    /// Store per-process-name growth figures (rss slope, peak, final) of
    /// one or more runs, with their spread, in a JSON file.
    ///
    /// Give several recordings of the same test suite so the baseline
    /// knows how much the figures vary from run to run.
    Save {
        /// Recordings of runs that behave as expected.
        #[arg(required = true, value_name = "RECORDING")]
        recordings: Vec<PathBuf>,
        /// Baseline file to write.
        #[arg(short, long, value_name = "BASELINE.json")]
        output: PathBuf,
    },
}

#[derive(Args, Debug)]
pub struct CompareArgs {
    /// Baseline written by `memleak baseline save`.
    #[arg(long, value_name = "BASELINE.json")]
    pub baseline: PathBuf,
    /// The recording to check.
    pub file: PathBuf,
    /// Exit with code 3 when a process name changed beyond the usual spread.
    #[arg(long)]
    pub fail_on_change: bool,
}

#[derive(Args, Debug)]
pub struct DiffArgs {
    /// The reference recording (e.g. the previous revision's run).
    pub a: PathBuf,
    /// The recording to check against it.
    pub b: PathBuf,
    /// Exit with code 3 when a process name changed beyond the tolerance.
    #[arg(long)]
    pub fail_on_change: bool,
}

fn run_figures(
    path: &Path,
) -> Result<std::collections::BTreeMap<String, crate::analyse::baseline::Figures>> {
    let rec = Recording::open(path)?;
    Ok(figures(&rec)?)
}

pub fn run_baseline(args: BaselineArgs) -> Result<i32> {
    match args.command {
        BaselineCommand::Save { recordings, output } => {
            let runs = recordings
                .iter()
                .map(|p| run_figures(p))
                .collect::<Result<Vec<_>>>()?;
            let names = recordings.iter().map(|p| p.display().to_string()).collect();
            let base = Baseline::from_runs(names, &runs);
            let text = serde_json::to_string_pretty(&base)? + "\n";
            crate::files::write_output(&output, text.as_bytes(), crate::files::Audience::Owner)
                .context("cannot write the baseline")?;
            diag!(
                "memleak: baseline of {} process names over {} run{} written to {}",
                base.processes.len(),
                runs.len(),
                if runs.len() == 1 { "" } else { "s" },
                output.display()
            );
            Ok(0)
        }
    }
}

fn load_baseline(path: &Path) -> Result<Baseline> {
    let text =
        crate::files::read_text(path, MAX_BASELINE_BYTES).context("cannot read the baseline")?;
    let base: Baseline = serde_json::from_str(&text)
        .with_context(|| format!("{}: not a memleak baseline", path.display()))?;
    if base.baseline_version != BASELINE_VERSION {
        bail!(
            "{}: baseline version {} is not supported (this memleak reads {})",
            path.display(),
            base.baseline_version,
            BASELINE_VERSION
        );
    }
    Ok(base)
}

fn finish(base: &Baseline, file: &Path, against: &str, fail: bool) -> Result<i32> {
    let cmp = compare(base, &run_figures(file)?);
    print!("{}", render(&cmp, against));
    Ok(if fail && cmp.iter().any(|c| c.changed()) {
        EXIT_CHANGED
    } else {
        0
    })
}

pub fn run_compare(args: CompareArgs) -> Result<i32> {
    let base = load_baseline(&args.baseline)?;
    finish(&base, &args.file, "the baseline", args.fail_on_change)
}

pub fn run_diff(args: DiffArgs) -> Result<i32> {
    let base = Baseline::from_runs(vec![args.a.display().to_string()], &[run_figures(&args.a)?]);
    finish(
        &base,
        &args.b,
        &args.a.display().to_string(),
        args.fail_on_change,
    )
}
