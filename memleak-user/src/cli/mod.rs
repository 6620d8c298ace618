//! Command-line front end: one module per subcommand, each returning the
//! process exit code, and [`main`], which parses and dispatches. Private to
//! the library: clap types are not part of its API; the binary calls
//! [`crate::cli_main`].

use std::process::ExitCode;

use clap::{Parser, Subcommand};

pub(crate) mod analyze;
pub(crate) mod baseline;
pub(crate) mod common;
pub(crate) mod completions;
pub(crate) mod eval;
pub(crate) mod info;
pub(crate) mod locate;
pub(crate) mod man;
pub(crate) mod record;
pub(crate) mod run;
pub(crate) mod schema;
pub(crate) mod sources;
pub(crate) mod summary;
pub(crate) mod watch;

/// memleak: a low-overhead memory-leak alert for Linux.
///
/// It records how much memory every process of a command (or of the whole
/// machine) uses over time, cheaply, with eBPF counters in the kernel (or by
/// polling /proc without privileges), then flags processes whose memory
/// grows like a leak.
///
/// Typical use in CI:  memleak run -- pytest -x
#[derive(Parser, Debug)]
#[command(
    name = "memleak",
    version,
    propagate_version = true,
    max_term_width = 100,
    after_long_help = self::man::help_epilogue()
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run a command, record its process tree, then report.
    ///
    /// Exit code: the command's own when it failed, else 0 (see the README
    /// for the leak exit code of --fail-on-leak).
    Run(self::run::RunArgs),
    /// Record memory of a command, some PIDs, a cgroup or the whole system.
    Record(self::record::RecordArgs),
    /// Analyse a recording: flag processes whose memory grows like a leak.
    ///
    /// Exit code 3 when a leak is flagged and --fail-on-leak is given.
    #[command(alias = "analyse")]
    Analyze(self::analyze::AnalyzeArgs),
    /// Describe a recording: where, how, how much, and what was lost.
    Info(self::info::InfoArgs),
    /// Sample where a running process first touches new memory, with user
    /// stacks: which code paths grow it.
    ///
    /// Once a process is suspect (`memleak run` or `analyze` flagged it),
    /// this says which code grows it. One page fault in --period of that
    /// process (and of the threads and children it starts meanwhile) is
    /// sampled with its user stack; each sample stands for about
    /// period x 4 KiB of newly touched memory, and the paths that touched
    /// the most are printed first. Nothing else on the machine is slowed.
    /// `run --locate` and `record --locate` do the same for what they
    /// record and store the stacks in the recording; `watch --locate` does
    /// it for each process its analysis flags, for a bounded time.
    ///
    /// It shows where memory is first touched, not what is kept: a path
    /// that frees to the kernel and allocates again shows too. Stacks are
    /// unwound with frame pointers: build with -fno-omit-frame-pointer
    /// (C/C++) or -C force-frame-pointers=yes (Rust); JIT runtimes need a
    /// perf map (/tmp/perf-PID.map; Python needs 3.12+ with -X perf).
    /// Needs root, or CAP_BPF and CAP_PERFMON. See "Locating growth" in
    /// the README.
    Locate(self::locate::LocateArgs),
    /// Score the analyser on labelled recordings (`cargo xtask corpus`):
    /// precision, recall, F1, false positives and time to first alert, per
    /// model.
    Eval(self::eval::EvalArgs),
    /// Save per-process-name memory figures of good runs as a baseline.
    Baseline(self::baseline::BaselineArgs),
    /// Compare a recording with a baseline: which process names' growth
    /// rate, peak or final memory moved beyond the usual spread, and which
    /// are unchanged ("did this revision change memory behaviour?").
    ///
    /// Exit code 3 when something changed and --fail-on-change is given.
    Compare(self::baseline::CompareArgs),
    /// Compare two recordings (A the reference, B the new run) per process
    /// name: growth rate, peak and final memory.
    ///
    /// Exit code 3 when something changed and --fail-on-change is given.
    Diff(self::baseline::DiffArgs),
    /// Record continuously into rotated files (nightly/whole-system
    /// monitoring), optionally serving Prometheus metrics and locating
    /// (--locate) where each flagged process grows.
    Watch(self::watch::WatchArgs),
    /// Write man pages for memleak and each subcommand (memleak.1,
    /// memleak-run.1, ...) into DIR, for packagers.
    /// Print a shell completion script (bash, zsh or fish) to stdout.
    ///
    /// bash: memleak completions bash > /etc/bash_completion.d/memleak
    Completions(self::completions::CompletionsArgs),
    /// Print the JSON Schema of `--format json` reports to stdout.
    Schema,
    #[command(hide = true)]
    Man {
        /// Folder to write the pages to (created when missing).
        dir: std::path::PathBuf,
    },
}

/// The error and its causes on one line, each cause once: library errors
/// often quote their source in their own message too, and `{:#}` would
/// print it twice.
fn one_line(e: &anyhow::Error) -> String {
    let mut out = String::new();
    for cause in e.chain() {
        let text = cause.to_string();
        if text.is_empty() || out.contains(&text) {
            continue;
        }
        if !out.is_empty() {
            out.push_str(": ");
        }
        out.push_str(&text);
    }
    out
}

/// `filter` with the HTTP client's wire-level trace cut off: ureq logs
/// headers redacted up to debug but verbatim at trace, and those carry the
/// Prometheus credentials (`MEMLEAK_LOG=trace` must not print them).
/// Only a filter that lets trace through gets the cap: a directive for a
/// target also raises it, and at `warn` ureq must stay quiet.
fn log_filter(filter: tracing_subscriber::EnvFilter) -> tracing_subscriber::EnvFilter {
    use tracing_subscriber::filter::LevelFilter;
    if filter
        .max_level_hint()
        .is_some_and(|l| l < LevelFilter::TRACE)
    {
        return filter;
    }
    ["ureq=debug", "ureq_proto=debug", "rustls=debug"]
        .iter()
        .filter_map(|d| d.parse().ok())
        .fold(filter, |f, d| f.add_directive(d))
}

/// The `memleak` command: parses the command line, dispatches, and maps
/// errors to a one-line message and an exit code.
pub fn main() -> ExitCode {
    // The guard of a recorded command's tree (see record::contain): not a
    // user's subcommand, so it is not in clap's tree, --help or man pages.
    let args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    if args
        .get(1)
        .is_some_and(|a| a == crate::record::contain::GUARD_ARG)
    {
        return ExitCode::from(crate::record::contain::guard_main(&args[2..]) as u8);
    }
    crate::record::contain::GUARD_EXEC.store(true, std::sync::atomic::Ordering::Relaxed);
    tracing_subscriber::fmt()
        .with_env_filter(log_filter(
            tracing_subscriber::EnvFilter::try_from_env("MEMLEAK_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        ))
        .with_writer(std::io::stderr)
        // Colour only for a person at a terminal: journald and CI logs store
        // escape codes verbatim (https://no-color.org).
        .with_ansi(
            std::io::IsTerminal::is_terminal(&std::io::stderr())
                && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty()),
        )
        // Its fallback for a failed write is eprintln!, which panics on a
        // closed or full stderr: a warning must never stop a recording.
        .log_internal_errors(false)
        .init();
    let cli = Cli::parse();
    if !matches!(
        cli.command,
        Command::Run(_) | Command::Record(_) | Command::Watch(_)
    ) {
        // Report commands end quietly when their reader goes away
        // (`memleak info -p FILE | head`), like other Unix tools, instead of
        // panicking on EPIPE. The recorders keep Rust's ignored SIGPIPE: a
        // closed stderr must not kill a recording.
        // SAFETY: setting a signal disposition before any thread starts.
        unsafe { libc::signal(libc::SIGPIPE, libc::SIG_DFL) };
    }
    let result = match cli.command {
        Command::Run(a) => self::run::run(a),
        Command::Record(a) => self::record::run(a),
        Command::Analyze(a) => self::analyze::run(a),
        Command::Info(a) => self::info::run(a),
        Command::Locate(a) => self::locate::run(a),
        Command::Eval(a) => self::eval::run(a),
        Command::Baseline(a) => self::baseline::run_baseline(a),
        Command::Compare(a) => self::baseline::run_compare(a),
        Command::Diff(a) => self::baseline::run_diff(a),
        Command::Watch(a) => self::watch::run(a),
        Command::Completions(a) => {
            self::completions::run(<Cli as clap::CommandFactory>::command(), a)
        }
        Command::Schema => self::schema::run(),
        Command::Man { dir } => {
            self::man::write_pages(<Cli as clap::CommandFactory>::command(), &dir).map(|n| {
                println!("memleak: wrote {n} man pages to {}", dir.display());
                0
            })
        }
    };
    match result {
        Ok(code) => ExitCode::from(code.clamp(0, 255) as u8),
        Err(e) => {
            diag!("memleak: error: {}", one_line(&e));
            ExitCode::from(1)
        }
    }
}
