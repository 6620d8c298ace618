//! `cargo xtask man [--out DIR]`: build memleak and write its man pages.

use crate::run::{build_release, run, target_dir};
use anyhow::Result;
use std::path::PathBuf;
use std::process::Command;

#[derive(clap::Args)]
pub struct Args {
    /// Folder for the pages (default: target/man).
    #[arg(long)]
    out: Option<PathBuf>,
}

pub fn man(args: &Args) -> Result<()> {
    let bins = build_release(&["memleak-user"], &["memleak"])?;
    let out = args.out.clone().unwrap_or_else(|| target_dir().join("man"));
    run(
        Command::new(&bins[0]).arg("man").arg(&out),
        "read memleak's error above",
    )?;
    println!(
        "read one with `man -l {}/memleak.1`; install with `install -m644 {}/*.1 /usr/local/share/man/man1/`",
        out.display(),
        out.display()
    );
    Ok(())
}
