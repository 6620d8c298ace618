//! `memleak run`: record a command's process tree, then analyse it.

use anyhow::Result;
use clap::Args;

use super::analyze::{analyse_and_report, AnalysisArgs, ReportArgs, EXIT_LEAK};
use super::common::SamplingArgs;
use crate::sample::Scope;

#[derive(Args, Debug)]
pub struct RunArgs {
    #[command(flatten)]
    pub sampling: SamplingArgs,

    #[command(flatten)]
    pub analysis: AnalysisArgs,

    #[command(flatten)]
    pub report: ReportArgs,

    /// The command to run (after `--`), e.g. `memleak run -- pytest -x`.
    /// It is killed (SIGKILL) if memleak itself dies without stopping it,
    /// so a killed recorder leaves no orphan behind.
    #[arg(last = true, required = true, value_name = "CMD")]
    pub command: Vec<String>,
}

/// Exit code: the command's own when it failed; else 3 when a leak was
/// flagged and --fail-on-leak is given; else 0.
pub fn run(args: RunArgs) -> Result<i32> {
    let outcome = super::record::record_with(
        "run",
        &args.sampling,
        Scope::Tree(Vec::new()),
        None,
        Some(args.command.clone()),
    )?;
    eprintln!(
        "memleak: recorded {} processes with the {} sampler into {}{}",
        outcome.processes,
        outcome.sampler,
        outcome.path.display(),
        super::record::data_lost(&outcome)
    );
    let leak = analyse_and_report(&outcome.path, &args.analysis, &args.report)?;
    let code = outcome.status.map(|s| s.0).unwrap_or(0);
    Ok(if code != 0 {
        code
    } else if outcome.storage_error.is_some() {
        1
    } else if leak && args.report.fail_on_leak {
        EXIT_LEAK
    } else {
        0
    })
}
