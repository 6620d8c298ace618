//! `memleak eval DIR`: score the analyser on labelled recordings.

use std::path::PathBuf;

use anyhow::Result;
use clap::Args;

use crate::analyse::ModelChoice;
use crate::cli::analyze::AnalysisArgs;
use crate::load::eval::{evaluate, load_labels};
use crate::report::eval::render;

#[derive(Args, Debug)]
pub struct EvalArgs {
    /// Corpus directory with labels.toml and the recordings it names
    /// (written by `cargo xtask corpus`), or the labels file itself.
    pub dir: PathBuf,

    /// Thresholds, as for `memleak analyze`. Without --model every model
    /// is scored (lbr, sawtooth, trend and the combined default, all).
    #[command(flatten)]
    pub analysis: AnalysisArgs,

    /// Print the scores as JSON.
    #[arg(long)]
    pub json: bool,
}

pub fn run(args: EvalArgs) -> Result<i32> {
    let settings = args.analysis.settings()?;
    let models: Vec<ModelChoice> = match &args.analysis.model {
        Some(_) => vec![settings.model],
        None => ModelChoice::ALL.to_vec(),
    };
    let (dir, labels) = load_labels(&args.dir)?;
    let scores = evaluate(&dir, &labels, &settings, &models)?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&scores)?);
    } else {
        print!("{}", render(&labels, &scores));
    }
    Ok(0)
}
