//! `memleak schema`: prints the JSON Schema of `--format json` reports, so
//! consumers can install and validate against the exact version their
//! binary writes.

use std::io::Write;

/// Prints the schema; returns the exit code.
pub fn run() -> anyhow::Result<i32> {
    std::io::stdout()
        .lock()
        .write_all(crate::report::json::SCHEMA.as_bytes())?;
    Ok(0)
}
