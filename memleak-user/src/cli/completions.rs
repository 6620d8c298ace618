//! `memleak completions SHELL`: a completion script for bash, zsh or fish,
//! generated from the same clap definitions as `--help`, so it cannot
//! drift from the binary. Packagers install it; users may source it.

use clap::ValueEnum;
use clap_complete::Shell;

/// The shells memleak writes completions for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum CompletionShell {
    Bash,
    Zsh,
    Fish,
}

impl CompletionShell {
    fn generator(self) -> Shell {
        match self {
            Self::Bash => Shell::Bash,
            Self::Zsh => Shell::Zsh,
            Self::Fish => Shell::Fish,
        }
    }
}

#[derive(clap::Args, Debug)]
pub struct CompletionsArgs {
    /// Shell to write the script for.
    #[arg(value_enum)]
    pub shell: CompletionShell,
}

/// Writes the script for `shell` to `out`.
pub fn write(mut cmd: clap::Command, shell: CompletionShell, out: &mut dyn std::io::Write) {
    let name = cmd.get_name().to_string();
    clap_complete::generate(shell.generator(), &mut cmd, name, out);
}

/// Prints the script to stdout; returns the exit code. The script is built
/// in memory first: clap_complete panics when its writer fails, and a full
/// disk or closed pipe is the user's to hear about, not a crash.
pub fn run(cmd: clap::Command, args: CompletionsArgs) -> anyhow::Result<i32> {
    use anyhow::Context;
    use std::io::Write;
    let mut script = Vec::new();
    write(cmd, args.shell, &mut script);
    let mut out = std::io::stdout().lock();
    out.write_all(&script).and_then(|()| out.flush()).context(
        "writing the completion script to stdout (is the disk full, or the pipe closed?)",
    )?;
    Ok(0)
}
