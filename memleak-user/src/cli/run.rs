//! `memleak run`: record a command's process tree, then analyse it.

use anyhow::Result;
use clap::Args;

use super::analyze::{analyse_and_report, AnalysisArgs, ReportArgs, EXIT_LEAK};
use super::common::{LocateFlags, SamplingArgs};
use super::record::{forgot_double_dash, not_started, record_with};
use crate::sample::Scope;

#[derive(Args, Debug)]
// The command is checked in `run` (to hint at a forgotten `--`), so clap
// no longer marks it required; the usage still shows it is.
#[command(override_usage = "memleak run [OPTIONS] -- <CMD>...")]
pub struct RunArgs {
    #[command(flatten)]
    pub sampling: SamplingArgs,

    #[command(flatten)]
    pub locate: LocateFlags,

    #[command(flatten)]
    pub analysis: AnalysisArgs,

    #[command(flatten)]
    pub report: ReportArgs,

    /// A command given without `--`: refused with a hint.
    #[arg(hide = true)]
    pub without_double_dash: Vec<String>,

    /// The command to run (after `--`), e.g. `memleak run -- pytest -x`.
    /// It runs in a cgroup of its own (else a process group): it and every
    /// process it started are killed (SIGKILL) if memleak itself dies, and
    /// what it leaves running when it ends is killed too.
    #[arg(last = true, value_name = "CMD")]
    pub command: Vec<String>,
}

/// Exit code: the command's own when it failed; else 3 when a leak was
/// flagged and --fail-on-leak is given; else 0.
pub fn run(args: RunArgs) -> Result<i32> {
    if let Some(code) = forgot_double_dash("run", &args.without_double_dash) {
        return Ok(code);
    }
    if args.command.is_empty() {
        diag!("memleak: error: no command to run: give it after `--`, as in `memleak run -- pytest -x`");
        return Ok(2);
    }
    // Bad flags or config fail now, not after the whole command has run.
    args.analysis.settings()?;
    let outcome = match record_with(
        "run",
        &args.sampling,
        args.locate.period(),
        Scope::Tree(Vec::new()),
        None,
        Some(args.command.clone()),
    ) {
        Ok(o) => o,
        Err(e) => return not_started(e),
    };
    diag!(
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
