//! Debian packages the tests need (xmllint, prometheus, ...), installed
//! with apt-get when missing so a fresh CI machine needs no manual step.

use std::process::Command;

use anyhow::Result;

use crate::run::run;

/// Ensures each `(binary, package)` is present: installs the packages of
/// missing binaries in one apt-get call (running `apt-get update` first).
pub fn ensure_tools(tools: &[(&str, &str)]) -> Result<()> {
    let missing: Vec<&str> = tools
        .iter()
        .filter(|(bin, _)| which::which(bin).is_err())
        .map(|(_, pkg)| *pkg)
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    println!("  test tools missing, installing: {}", missing.join(" "));
    run(
        Command::new("apt-get").args(["update", "-qq"]),
        "apt-get needs root and a reachable Debian mirror",
    )?;
    run(
        Command::new("apt-get")
            .args(["install", "-y", "-qq", "--no-install-recommends"])
            .args(&missing)
            .env("DEBIAN_FRONTEND", "noninteractive"),
        "install them by hand with apt-get, as root",
    )
}
