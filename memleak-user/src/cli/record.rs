//! `memleak record`: record memory of the whole system, a cgroup, some
//! processes, or a command's process tree.

use std::time::Duration;

use anyhow::{bail, Context, Result};
use clap::Args;

use super::common::{parse_duration, LocateFlags, SamplingArgs, ScopeArgs};
use crate::record::{self, RecordError, RecordOutcome};
use crate::sample::Scope;

#[derive(Args, Debug)]
pub struct RecordArgs {
    #[command(flatten)]
    pub scope: ScopeArgs,

    /// Stop after this long (e.g. 30s, 8h); a command still running then
    /// is stopped as by Ctrl-C (see --kill-after). Without it, recording
    /// stops at Ctrl-C (or when the command ends).
    #[arg(short, long, value_parser = parse_duration, value_name = "DURATION")]
    pub duration: Option<Duration>,

    #[command(flatten)]
    pub sampling: SamplingArgs,

    #[command(flatten)]
    pub locate: LocateFlags,

    /// A command given without `--`: refused with a hint.
    #[arg(hide = true)]
    pub without_double_dash: Vec<String>,

    /// Command to run and record with its whole process tree (after `--`).
    /// The tree runs in a cgroup of its own (else a process group) and is
    /// killed (SIGKILL) if memleak itself dies, or when the command ends.
    #[arg(last = true, value_name = "CMD")]
    pub command: Vec<String>,
}

pub fn run(args: RecordArgs) -> Result<i32> {
    if let Some(code) = forgot_double_dash("record", &args.without_double_dash) {
        return Ok(code);
    }
    let command = (!args.command.is_empty()).then(|| args.command.clone());
    let Some(scope) = args.scope.scope(command.is_some())? else {
        bail!("nothing to record: give a command after `--`, or --all, --cgroup PATH or --pid PID (see `memleak record --help`)");
    };
    let outcome = match record_with(
        "record",
        &args.sampling,
        args.locate.period(),
        scope,
        args.duration,
        command,
    ) {
        Ok(o) => o,
        Err(e) => return not_started(e),
    };
    diag!(
        "memleak: recorded {} processes, {} samples in {} ({} sampler){}",
        outcome.processes,
        outcome.samples,
        outcome.path.display(),
        outcome.sampler,
        data_lost(&outcome)
    );
    // A storage error (disk full) stopped the recording early: not a success,
    // unless the command's own failure code says more. A command stopped at
    // --duration was stopped as asked: its SIGTERM status is no failure.
    let status = outcome.status.filter(|_| !outcome.duration_reached);
    Ok(match status.map(|s| s.0).unwrap_or(0) {
        0 if outcome.storage_error.is_some() => 1,
        code => code,
    })
}

/// Usage error (exit 2) for words that look like a command given without
/// `--`: clap alone would only say "unexpected argument".
pub fn forgot_double_dash(sub: &str, words: &[String]) -> Option<i32> {
    if words.is_empty() {
        return None;
    }
    if sub == "record" && words.iter().all(|w| w.parse::<u32>().is_ok()) {
        // `--pid 5 6`: the second PID, not a command.
        diag!(
            "memleak: error: unexpected argument `{}`: give each PID its own option, as in `--pid 5 --pid 6`",
            words[0]
        );
        return Some(2);
    }
    diag!(
        "memleak: error: unexpected argument `{}`: the command to record goes after `--`, as in `memleak {sub} -- {}`",
        words[0],
        record::shell_join(words)
    );
    Some(2)
}

/// A command that could not start ends `run` and `record` with the shell's
/// code (127 not found, 126 not executable) instead of 1, so scripts that
/// test for it keep working; other errors pass through.
pub fn not_started(e: anyhow::Error) -> Result<i32> {
    let spawn = e
        .chain()
        .find_map(|c| match c.downcast_ref::<RecordError>() {
            Some(RecordError::Spawn(s)) => Some(s),
            _ => None,
        });
    match spawn.and_then(|s| s.shell_code().map(|code| (s, code))) {
        Some((s, code)) => {
            diag!("memleak: error: {s}; nothing was recorded");
            Ok(code)
        }
        None => Err(e),
    }
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
    locate: Option<u64>,
    scope: Scope,
    duration: Option<Duration>,
    command: Option<Vec<String>>,
) -> Result<RecordOutcome> {
    let mut opts = sampling.snapshot.record_options(
        origin,
        sampling.output_path(),
        scope,
        duration,
        command,
        !sampling.quiet,
    );
    opts.locate = locate;
    opts.kill_after = sampling.kill_after;
    let outcome =
        record::record(&opts).with_context(|| format!("recording to {}", opts.output.display()))?;
    for note in &outcome.notes {
        diag!("memleak: note: {note}");
    }
    if outcome.interrupted {
        diag!("memleak: interrupted; the recording up to now is kept");
    }
    if let Some(e) = &outcome.storage_error {
        diag!("memleak: error: {e}");
    }
    Ok(outcome)
}
