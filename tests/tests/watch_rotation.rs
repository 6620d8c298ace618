//! `memleak watch` keeps one sampler across file rotations: every file must
//! still hold every process in scope from its first snapshot, including
//! one whose memory never changes (a sampler reports only changes, so
//! without a re-report at each new file it would vanish from file two on).

use std::process::Command;

use memleak::store::Recording;
use memleak_tests::{memleak_bin, require_ebpf};

fn every_file_holds_the_idle_process(sampler: &str) {
    let dir = tempfile::tempdir().unwrap();
    let watch_dir = dir.path().join("w");
    let mut idle = Command::new("sleep").arg("60").spawn().unwrap();
    let out = Command::new(memleak_bin())
        .args([
            "watch",
            "--sampler",
            sampler,
            "-i",
            "100ms",
            "--rotate",
            "1s",
        ])
        .args(["-d", "3500ms", "--pid", &idle.id().to_string(), "--dir"])
        .arg(&watch_dir)
        .output()
        .unwrap();
    let _ = idle.kill();
    let _ = idle.wait();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{err}");
    let files = memleak::source::range::list_files(&watch_dir).unwrap();
    assert!(files.len() >= 3, "3.5 s at --rotate 1s: {files:?}\n{err}");
    for f in &files {
        let rec = Recording::open(f).unwrap();
        let procs = rec.processes_with_pid(idle.id()).unwrap();
        assert_eq!(
            procs.len(),
            1,
            "{}: the idle process is missing (it never changed)\n{err}",
            f.display()
        );
    }
}

#[test]
fn procfs_sampler_reports_idle_processes_in_every_rotated_file() {
    every_file_holds_the_idle_process("procfs");
}

#[test]
fn ebpf_sampler_reports_idle_processes_in_every_rotated_file() {
    require_ebpf!();
    every_file_holds_the_idle_process("ebpf");
}

#[test]
fn a_sampler_that_cannot_load_fails_before_any_file_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let watch_dir = dir.path().join("w");
    // Not a process: the sampler cannot open its scope.
    let out = Command::new(memleak_bin())
        .args(["watch", "--sampler", "procfs", "--pid", "999999999"])
        .args(["-d", "1s", "--dir"])
        .arg(&watch_dir)
        .output()
        .unwrap();
    assert_ne!(out.status.code(), Some(0));
    let left = std::fs::read_dir(&watch_dir)
        .map(|d| d.flatten().count())
        .unwrap_or(0);
    assert_eq!(left, 0, "no recording for a watch that never started");
}
