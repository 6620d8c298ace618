//! `cargo xtask <command>`: project chores that need more than one cargo call.
//!
//! - `setup`: install what the eBPF build needs (nightly + rust-src,
//!   bpf-linker) and mount tracefs;
//! - `demo`: build and run `memleak run` around a leaking and a stable workload;
//! - `test`: fmt, clippy (host and eBPF), `cargo test` — what CI runs;
//! - `bench`: run a named benchmark and keep its output in `bench-results/`;
//! - `soak`: the reliability soak test for N minutes;
//! - `man`: write memleak's man pages.

mod apt;
mod bench;
mod checks;
mod corpus;
mod demo;
mod man;
mod run;
mod setup;
mod soak;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "xtask",
    bin_name = "cargo xtask",
    about = "memleak project chores",
    version
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Install the nightly toolchain, rust-src and bpf-linker if missing;
    /// mount tracefs if needed. Quick when everything is present.
    Setup,
    /// Build in release mode and record a leaking and a stable process
    /// with `memleak run` (about 20 s).
    Demo(demo::Args),
    /// Run every check CI runs: fmt, clippy (host and eBPF), cargo test.
    Test,
    /// Run a benchmark; output is also saved under bench-results/.
    Bench(bench::Args),
    /// Soak test: thousands of short processes for N minutes under the eBPF
    /// sampler; recorder memory flat, no leaked map entries, none missing.
    Soak(soak::Args),
    /// Record the labelled workload corpus (leak / no-leak cases, all at
    /// once under the eBPF sampler) and write labels.toml for `memleak eval`.
    Corpus(corpus::Args),
    /// Build memleak and write its man pages (memleak.1, memleak-run.1, ...).
    Man(man::Args),
}

fn main() {
    let cli = Cli::parse();
    run::prepare_env();
    let result = match cli.cmd {
        Cmd::Setup => setup::setup(),
        Cmd::Demo(args) => demo::demo(&args),
        Cmd::Test => checks::test(),
        Cmd::Bench(args) => bench::bench(&args),
        Cmd::Soak(args) => soak::soak(&args),
        Cmd::Corpus(args) => corpus::corpus(&args),
        Cmd::Man(args) => man::man(&args),
    };
    if let Err(err) = result {
        eprintln!("xtask: error: {err}");
        for cause in err.chain().skip(1) {
            eprintln!("  caused by: {cause}");
        }
        std::process::exit(1);
    }
}
