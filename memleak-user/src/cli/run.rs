//! `memleak run`: record a command's process tree, then analyse it.

use anyhow::Result;
use clap::Args;

use super::common::SamplingArgs;
use crate::sample::Scope;

#[derive(Args, Debug)]
pub struct RunArgs {
    #[command(flatten)]
    pub sampling: SamplingArgs,

    /// The command to run (after `--`), e.g. `memleak run -- pytest -x`.
    #[arg(last = true, required = true, value_name = "CMD")]
    pub command: Vec<String>,
}

pub fn run(args: RunArgs) -> Result<i32> {
    let outcome = super::record::record_with(
        &args.sampling,
        Scope::Tree(Vec::new()),
        None,
        Some(args.command.clone()),
    )?;
    let rec = crate::store::Recording::open(&outcome.path)?;
    eprintln!(
        "memleak: recorded {} processes with the {} sampler into {}",
        rec.processes.len(),
        outcome.sampler,
        outcome.path.display()
    );
    super::summary::print(&rec)?;
    let code = outcome.status.map(|s| s.0).unwrap_or(0);
    if outcome.storage_error.is_some() && code == 0 {
        return Ok(1);
    }
    Ok(code)
}
