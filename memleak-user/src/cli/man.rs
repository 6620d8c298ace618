//! Man pages: `memleak man DIR` writes memleak.1 and one page per
//! subcommand. NAME, SYNOPSIS, DESCRIPTION and OPTIONS come from the same
//! clap definitions as `--help`, so the pages cannot drift from the binary;
//! the sections clap has no notion of (exit status, environment, files) are
//! written here in roff.

use std::io::Write;
use std::path::Path;

use anyhow::{Context, Result};
use clap_mangen::Man;

/// (code, meaning) pairs: the one table both the man page and `--help` show.
pub const EXIT_CODES: &[(&str, &str)] = &[
    (
        "0",
        "Success, also when leaks were flagged unless --fail-on-leak was given.",
    ),
    (
        "1",
        "Error: unreadable recording, sampler or storage failure, and the like; \
         one line on stderr says what and how to fix it.",
    ),
    ("2", "Usage error (bad flags or arguments)."),
    (
        "3",
        "A leak was flagged and --fail-on-leak was given, or (compare, diff) \
         memory behaviour changed and --fail-on-change was given.",
    ),
    (
        "other",
        "run and record -- CMD: the command's own exit code when it failed \
         (128 + N when a signal N killed it); this wins over 3.",
    ),
];

pub const ENVIRONMENT: &[(&str, &str)] = &[
    (
        "MEMLEAK_LOG",
        "Diagnostics filter for stderr, in tracing's EnvFilter syntax \
         (default: warn). MEMLEAK_LOG=debug adds why the eBPF sampler did not \
         load and when run thins its interval; MEMLEAK_LOG=memleak::record=trace \
         adds one line per snapshot (processes read, samples written, read and \
         write time).",
    ),
    (
        "NO_COLOR",
        "When set (and not empty), diagnostics carry no colour even on a \
         terminal; they never do when stderr is not a terminal.",
    ),
    (
        "MEMLEAK_MARKERS",
        "Set by run and record for the monitored command: the path of a FIFO \
         that takes phase markers, one line per write: begin NAME, end NAME, \
         mark TEXT. Test harnesses use it to attribute growth to tests.",
    ),
    (
        "MEMLEAK_PROMETHEUS_BEARER_TOKEN",
        "analyze --prometheus: a bearer token to send, when \
         --prometheus-bearer-token-file is not given. Never shown.",
    ),
    (
        "MEMLEAK_PROMETHEUS_USERNAME, MEMLEAK_PROMETHEUS_PASSWORD",
        "analyze --prometheus: basic-auth credentials, when \
         --prometheus-username and --prometheus-password-file are not given. \
         The password is never shown.",
    ),
];

const FILES: &[(&str, &str)] = &[
    (
        "*.memleak",
        "A recording: one SQLite database (WAL mode, created mode 0600). \
         memleak info FILE describes it, and memleak info FILE --series PID \
         prints a process's samples as CSV; sqlite3 opens it for ad-hoc \
         queries (most samples are in compact chunks there).",
    ),
    (
        "./memleak.toml",
        "Analysis thresholds in an [analysis] table, read by analyze and run \
         when present (--config PATH names another file); flags override it.",
    ),
    (
        "/sys/kernel/btf/vmlinux, /sys/kernel/tracing",
        "Read by the eBPF sampler at start-up for kernel struct offsets and \
         tracepoint formats; without them memleak falls back to /proc. \
         tracefs is mode 0700: a user other than root needs CAP_DAC_READ_SEARCH \
         besides CAP_BPF and CAP_PERFMON.",
    ),
];

/// The `memleak --help` epilogue: exit codes and environment, from the same
/// tables as the man page.
pub fn help_epilogue() -> String {
    let mut out = String::from("Exit status:\n");
    for (code, text) in EXIT_CODES {
        out.push_str(&format!("  {code}\n          {text}\n"));
    }
    out.push_str("\nEnvironment:\n");
    for (name, text) in ENVIRONMENT {
        out.push_str(&format!("  {name}\n          {text}\n"));
    }
    out.push_str(
        "\nWithout root (or CAP_BPF + CAP_PERFMON + CAP_DAC_READ_SEARCH, the last to read \
         tracefs, mode 0700) the procfs sampler is used and memleak says \
         what that loses; `memleak info FILE` shows which sampler recorded.\n\
         Man pages: `memleak man DIR` writes them.",
    );
    out
}

/// Escapes text for a roff body line: backslashes, leading dots and quotes,
/// and hyphens (so option names render and copy as ASCII minus signs).
fn roff(text: &str) -> String {
    let t = text.replace('\\', "\\e").replace('-', "\\-");
    if t.starts_with('.') || t.starts_with('\'') {
        format!("\\&{t}")
    } else {
        t
    }
}

fn section(w: &mut dyn Write, title: &str, items: &[(&str, &str)]) -> std::io::Result<()> {
    writeln!(w, ".SH \"{title}\"")?;
    for (term, text) in items {
        writeln!(w, ".TP\n\\fB{}\\fR\n{}", roff(term), roff(text))?;
    }
    Ok(())
}

/// The top-level page: clap's sections, then ours instead of clap's
/// unformatted "EXTRA" rendering of `--help`'s epilogue.
fn render_main(cmd: clap::Command, w: &mut dyn Write) -> std::io::Result<()> {
    let man = Man::new(cmd.clone()).manual("memleak manual");
    man.render_title(w)?;
    man.render_name_section(w)?;
    man.render_synopsis_section(w)?;
    man.render_description_section(w)?;
    man.render_options_section(w)?;
    man.render_subcommands_section(w)?;
    section(w, "EXIT STATUS", EXIT_CODES)?;
    section(w, "ENVIRONMENT", ENVIRONMENT)?;
    section(w, "FILES", FILES)?;
    let mut see_also: Vec<String> = cmd
        .get_subcommands()
        .filter(|s| !s.is_hide_set())
        .map(|s| format!("\\fBmemleak\\-{}\\fR(1)", s.get_name()))
        .collect();
    see_also.push("README.md in the source tree (recording format, models, benchmarks)".into());
    writeln!(w, ".SH \"SEE ALSO\"\n{}", see_also.join(", "))?;
    man.render_version_section(w)
}

/// Writes every page into `dir` (created when missing); returns their count.
pub fn write_pages(cmd: clap::Command, dir: &Path) -> Result<usize> {
    match crate::files::create_output_dir(dir) {
        Err(crate::files::FileError::Io { error, .. }) => anyhow::bail!(
            "cannot create {}: {}",
            dir.display(),
            crate::files::explain(&error)
        ),
        created => created?,
    }
    // clap_mangen writes with File::create, which follows links: it writes
    // into a private folder, and each page is then moved with the checks
    // of every other output.
    let staging = private_temp_dir()?;
    let staged = clap_mangen::generate_to(cmd.clone(), &staging)
        .context("cannot render the man pages")
        .and_then(|_| {
            for entry in std::fs::read_dir(&staging)? {
                let entry = entry?;
                let text = std::fs::read(entry.path())?;
                crate::files::write_output(
                    &dir.join(entry.file_name()),
                    &text,
                    crate::files::Audience::Everyone,
                )?;
            }
            Ok(())
        });
    let _ = std::fs::remove_dir_all(&staging);
    staged.with_context(|| format!("cannot write man pages to {}", dir.display()))?;
    let mut buf = Vec::new();
    let count = pages(&cmd);
    render_main(cmd, &mut buf).context("rendering memleak.1")?;
    crate::files::write_output(
        &dir.join("memleak.1"),
        &buf,
        crate::files::Audience::Everyone,
    )?;
    Ok(count)
}

/// A new folder only this process can use (mode 0700, created exclusively).
fn private_temp_dir() -> Result<std::path::PathBuf> {
    use std::os::unix::fs::DirBuilderExt;
    let base = std::env::temp_dir();
    for n in 0..100 {
        let d = base.join(format!("memleak-man-{}-{n}", std::process::id()));
        match std::fs::DirBuilder::new().mode(0o700).create(&d) {
            Ok(()) => return Ok(d),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(e).context("cannot create a temporary folder"),
        }
    }
    anyhow::bail!("cannot create a temporary folder in {}", base.display())
}

/// How many pages generate_to writes: one per visible (sub)command,
/// recursively.
fn pages(cmd: &clap::Command) -> usize {
    1 + cmd
        .get_subcommands()
        .filter(|s| !s.is_hide_set())
        .map(pages)
        .sum::<usize>()
}
