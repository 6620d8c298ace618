//! End-to-end (issue 26): ordinary third-party batch programs doing
//! correct, memory-hungry work — the quick subset of the batch corpus
//! (`memleak_corpus::batch`, `cargo xtask corpus --set batch` runs all of
//! it) — each under `memleak run --fail-on-leak --format json` at default
//! settings, as a CI user runs it.
//!
//! What must hold for each case: the program itself succeeded (exit code
//! 0 in the report's recording), no process got a `leak` verdict, and
//! memleak exits 0. Growing until it exits by itself is what a batch
//! program does, not a leak. A case whose tool is not installed is skipped
//! with the reason printed.

use memleak_corpus::batch;
use memleak_tests::{memleak_bin, require_ebpf};

#[test]
fn quick_batch_programs_growing_until_exit_pass_the_run() {
    require_ebpf!();
    let memleak = memleak_bin();
    let dir = tempfile::tempdir().unwrap();
    let mut failures = Vec::new();
    let mut ran = 0;
    for case in batch::CASES.iter().filter(|c| c.quick) {
        let missing = batch::missing_tools(case);
        if !missing.is_empty() {
            eprintln!("SKIPPED case {}: not installed: {missing:?}", case.name);
            continue;
        }
        let case_dir = dir.path().join(case.name);
        batch::setup(case, &case_dir).unwrap_or_else(|e| panic!("{}: {e}", case.name));
        let o =
            batch::run(&memleak, case, &case_dir).unwrap_or_else(|e| panic!("{}: {e}", case.name));
        ran += 1;
        eprintln!(
            "{}: memleak exit {:?}, command exit {:?}, grew most {:?}: {}, {:.0} s",
            o.case, o.memleak_exit, o.command_exit, o.top, o.verdict, o.seconds
        );
        if o.command_exit != Some(0) {
            failures.push(format!(
                "{}: the command itself failed (exit {:?}): `{}`",
                o.case, o.command_exit, case.command
            ));
            continue;
        }
        if !o.leaks.is_empty() {
            failures.push(format!("{}: leak verdicts: {}", o.case, o.leaks.join("; ")));
        }
        if o.memleak_exit != Some(0) {
            failures.push(format!(
                "{}: memleak exited {:?} under --fail-on-leak (report {})",
                o.case,
                o.memleak_exit,
                o.report.display()
            ));
        }
        // The inputs are large: drop them once the case passed.
        if failures
            .iter()
            .all(|f| !f.starts_with(&format!("{}:", o.case)))
        {
            let _ = std::fs::remove_dir_all(&case_dir);
        }
    }
    eprintln!("{ran} quick batch case(s) ran");
    if !failures.is_empty() {
        // Keep the recordings and reports for a look.
        let kept = dir.keep();
        panic!(
            "batch programs flagged (recordings under {}):\n{}",
            kept.display(),
            failures.join("\n")
        );
    }
}
