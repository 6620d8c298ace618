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

/// Prints the script to stdout; returns the exit code.
pub fn run(cmd: clap::Command, args: CompletionsArgs) -> anyhow::Result<i32> {
    write(cmd, args.shell, &mut std::io::stdout().lock());
    Ok(0)
}
