//! `memleak record`: record memory of the whole system, a cgroup, some
//! processes, or a command's process tree.

use std::time::Duration;

use anyhow::{bail, Context, Result};
use clap::Args;

use super::common::{parse_duration, SamplingArgs, ScopeArgs};
use crate::record::{self, RecordOutcome};
use crate::sample::Scope;

#[derive(Args, Debug)]
pub struct RecordArgs {
    #[command(flatten)]
    pub scope: ScopeArgs,

    /// Stop after this long (e.g. 30s, 8h). Without it, recording stops at
    /// Ctrl-C (or when the command ends).
    #[arg(short, long, value_parser = parse_duration, value_name = "DURATION")]
    pub duration: Option<Duration>,

    #[command(flatten)]
    pub sampling: SamplingArgs,

    /// Command to run and record with its whole process tree (after `--`).
    /// It is killed (SIGKILL) if memleak itself dies without stopping it.
    #[arg(last = true, value_name = "CMD")]
    pub command: Vec<String>,
}

pub fn run(args: RecordArgs) -> Result<i32> {
    let command = (!args.command.is_empty()).then(|| args.command.clone());
    let Some(scope) = args.scope.scope(command.is_some())? else {
        bail!("nothing to record: give a command after `--`, or --all, --cgroup PATH or --pid PID (see `memleak record --help`)");
    };
    let outcome = record_with("record", &args.sampling, scope, args.duration, command)?;
    eprintln!(
        "memleak: recorded {} processes, {} samples in {} ({} sampler){}",
        outcome.processes,
        outcome.samples,
        outcome.path.display(),
        outcome.sampler,
        data_lost(&outcome)
    );
    // A storage error (disk full) stopped the recording early: not a success,
    // unless the command's own failure code says more.
    Ok(match outcome.status.map(|s| s.0).unwrap_or(0) {
        0 if outcome.storage_error.is_some() => 1,
        code => code,
    })
}

/// The end of the summary line when a storage error stopped the recording:
/// the counts are what the file holds, and what came after is gone.
pub fn data_lost(outcome: &RecordOutcome) -> &'static str {
    if outcome.storage_error.is_some() {
        "; recording stopped by the storage error above: everything after that was lost"
    } else {
        ""
    }
}

/// Records with the shared options; prints the notes a user must see.
pub fn record_with(
    origin: &'static str,
    sampling: &SamplingArgs,
    scope: Scope,
    duration: Option<Duration>,
    command: Option<Vec<String>>,
) -> Result<RecordOutcome> {
    let opts = sampling.snapshot.record_options(
        origin,
        sampling.output_path(),
        scope,
        duration,
        command,
        !sampling.quiet,
    );
    let outcome =
        record::record(&opts).with_context(|| format!("recording to {}", opts.output.display()))?;
    for note in &outcome.notes {
        eprintln!("memleak: note: {note}");
    }
    if outcome.interrupted {
        eprintln!("memleak: interrupted; the recording up to now is kept");
    }
    if let Some(e) = &outcome.storage_error {
        eprintln!("memleak: error: {e}");
    }
    Ok(outcome)
}
