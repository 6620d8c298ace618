//! Running subprocesses: every command is printed before it runs, and a
//! failure says what failed and how to fix it.

use anyhow::{bail, Context, Result};
use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// The workspace root (xtask lives one level below it).
pub fn root() -> PathBuf {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest.parent().unwrap_or(manifest).to_path_buf()
}

/// Where cargo puts build output: `$CARGO_TARGET_DIR` or `<root>/target`.
pub fn target_dir() -> PathBuf {
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(dir) if !dir.is_empty() => root().join(dir),
        _ => root().join("target"),
    }
}

/// Builds `packages` in release mode and returns the paths of `bins` in
/// `target/release`, failing with a clear message when one is missing.
/// Shared by `demo`, `corpus` and `bench`, which all run release binaries.
pub fn build_release(packages: &[&str], bins: &[&str]) -> Result<Vec<PathBuf>> {
    let mut args = vec!["build", "--release"];
    for p in packages {
        args.extend(["-p", p]);
    }
    run(
        &mut cargo(&args),
        "read the compiler errors above; `cargo xtask setup` must have succeeded",
    )
    .with_context(|| format!("building {} failed", packages.join(", ")))?;
    let release = target_dir().join("release");
    bins.iter()
        .map(|b| {
            let path = release.join(b);
            if path.is_file() {
                Ok(path)
            } else {
                bail!(
                    "{} is missing after the build\n  how to fix: check CARGO_TARGET_DIR and \
                     `cargo build --release -p {}`",
                    path.display(),
                    packages.join(" -p ")
                )
            }
        })
        .collect()
}

/// `$CARGO_HOME/bin` (default `~/.cargo/bin`), where `cargo install` puts tools.
pub fn cargo_bin_dir() -> Option<PathBuf> {
    let home = match std::env::var_os("CARGO_HOME") {
        Some(h) if !h.is_empty() => PathBuf::from(h),
        _ => PathBuf::from(std::env::var_os("HOME")?).join(".cargo"),
    };
    Some(home.join("bin"))
}

/// Puts `$CARGO_HOME/bin` on PATH (for us and every child) so a freshly
/// installed bpf-linker is found even when the shell's PATH lacks it.
pub fn prepare_env() {
    let Some(bin) = cargo_bin_dir() else { return };
    let path = std::env::var_os("PATH").unwrap_or_default();
    if std::env::split_paths(&path).any(|p| p == bin) {
        return;
    }
    let joined = std::env::join_paths(std::iter::once(bin).chain(std::env::split_paths(&path)));
    if let Ok(joined) = joined {
        std::env::set_var("PATH", joined);
    }
}

/// A `cargo` command run from the workspace root.
pub fn cargo<I, S>(args: I) -> Command
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let mut cmd = Command::new("cargo");
    cmd.args(args).current_dir(root());
    cmd
}

/// A command line as a shell would show it.
pub fn display(cmd: &Command) -> String {
    std::iter::once(cmd.get_program())
        .chain(cmd.get_args())
        .map(|a| quote(&a.to_string_lossy()))
        .collect::<Vec<_>>()
        .join(" ")
}

fn quote(s: &str) -> String {
    let plain = !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./=+:,@%".contains(c));
    if plain {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

fn announce(cmd: &Command) {
    println!("$ {}", display(cmd));
}

/// Runs `cmd` with inherited stdio; on failure the error says `fix`.
pub fn run(cmd: &mut Command, fix: &str) -> Result<()> {
    announce(cmd);
    let status = cmd.status().with_context(|| {
        format!(
            "could not start `{}` (is it installed and on PATH?)",
            display(cmd)
        )
    })?;
    if !status.success() {
        bail!("`{}` failed ({status})\n  how to fix: {fix}", display(cmd));
    }
    Ok(())
}

/// Runs `cmd` and returns its stdout (stderr passes through).
pub fn output(cmd: &mut Command, fix: &str) -> Result<String> {
    announce(cmd);
    let out = cmd.stderr(Stdio::inherit()).output().with_context(|| {
        format!(
            "could not start `{}` (is it installed and on PATH?)",
            display(cmd)
        )
    })?;
    if !out.status.success() {
        bail!(
            "`{}` failed ({})\n  how to fix: {fix}",
            display(cmd),
            out.status
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}
