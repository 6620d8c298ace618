//! Report commands piped into a reader that went away (`memleak info -p
//! FILE | head`) end quietly, as Unix tools do, instead of panicking.

use std::process::{Command, Stdio};

use memleak_tests::memleak_bin;

#[test]
fn a_closed_stdout_ends_report_commands_without_a_panic() {
    let dir = tempfile::tempdir().unwrap();
    let rec = dir.path().join("pipe.memleak");
    let st = Command::new(memleak_bin())
        .args(["record", "-q", "--sampler", "procfs", "-i", "50ms", "-o"])
        .arg(&rec)
        .args(["--", "sh", "-c", "sleep 0.3"])
        .status()
        .unwrap();
    assert!(st.success());
    for args in [&["info", "-p"][..], &["analyze"][..]] {
        // A pipe whose read end is closed before memleak writes a byte:
        // every write fails with EPIPE.
        let (reader, writer) = std::io::pipe().unwrap();
        drop(reader);
        let out = Command::new(memleak_bin())
            .args(args)
            .arg(&rec)
            .stdout(Stdio::from(writer))
            .stderr(Stdio::piped())
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            !err.contains("panicked"),
            "memleak {args:?} into a closed pipe: {err}"
        );
    }
}

/// Runs memleak with stderr on `/dev/full` (every write fails with ENOSPC).
fn with_full_stderr(args: &[&str], cwd: &std::path::Path) -> std::process::Output {
    let full = std::fs::OpenOptions::new()
        .write(true)
        .open("/dev/full")
        .unwrap();
    Command::new(memleak_bin())
        .args(args)
        .current_dir(cwd)
        .stdout(Stdio::piped())
        .stderr(Stdio::from(full))
        .output()
        .unwrap()
}

#[test]
fn run_with_a_full_stderr_keeps_the_report_and_the_exit_code() {
    let dir = tempfile::tempdir().unwrap();
    let out = with_full_stderr(
        &[
            "run",
            "-q",
            "--sampler",
            "procfs",
            "-i",
            "50ms",
            "-o",
            "r.memleak",
            "--",
            "sh",
            "-c",
            "sleep 0.2; exit 7",
        ],
        dir.path(),
    );
    let report = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(7), "report: {report}");
    assert!(report.contains("processes analysed"), "{report}");
}

#[test]
fn record_with_a_full_stderr_keeps_the_exit_code() {
    let dir = tempfile::tempdir().unwrap();
    let out = with_full_stderr(
        &[
            "record",
            "--sampler",
            "procfs",
            "-i",
            "50ms",
            "-o",
            "r.memleak",
            "--",
            "sh",
            "-c",
            "sleep 0.2; exit 7",
        ],
        dir.path(),
    );
    assert_eq!(out.status.code(), Some(7));
    assert!(dir.path().join("r.memleak").exists());
}

#[test]
fn watch_survives_a_closed_stderr_across_rotations() {
    let dir = tempfile::tempdir().unwrap();
    let mut sleeper = Command::new("sleep").arg("30").spawn().unwrap();
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let out = Command::new(memleak_bin())
        .args([
            "watch",
            "--sampler",
            "procfs",
            "-i",
            "100ms",
            "--rotate",
            "1s",
        ])
        .args(["-d", "3s", "--pid", &sleeper.id().to_string(), "--dir"])
        .arg(dir.path())
        .stdout(Stdio::null())
        .stderr(Stdio::from(writer))
        .output()
        .unwrap();
    let _ = sleeper.kill();
    let _ = sleeper.wait();
    assert_eq!(out.status.code(), Some(0), "watch died on a closed stderr");
    let files = std::fs::read_dir(dir.path())
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().ends_with(".memleak"))
        .count();
    assert!(files >= 2, "no rotation happened: {files} file(s)");
}

#[test]
fn run_into_a_closed_stdout_still_returns_the_command_exit_code() {
    let dir = tempfile::tempdir().unwrap();
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let out = Command::new(memleak_bin())
        .args([
            "run",
            "-q",
            "--sampler",
            "procfs",
            "-i",
            "50ms",
            "-o",
            "r.memleak",
        ])
        .args(["--", "sh", "-c", "sleep 0.2; exit 7"])
        .current_dir(dir.path())
        .stdout(Stdio::from(writer))
        .stderr(Stdio::piped())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(7), "{err}");
    assert!(!err.contains("panicked"), "{err}");
}

/// journald and CI logs store escape codes verbatim: log lines written to
/// a pipe (or with NO_COLOR) carry no colour.
#[test]
fn diagnostics_to_a_pipe_carry_no_colour_codes() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("c.memleak");
    let o = std::process::Command::new(memleak_tests::memleak_bin())
        .env("MEMLEAK_LOG", "memleak::record=trace")
        .args(["record", "-q", "--sampler", "procfs", "-i", "50ms", "-o"])
        .arg(&out)
        .args(["--", "sleep", "0.2"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("snapshot"), "trace lines are written: {err}");
    assert!(!err.contains('\u{1b}'), "no escape codes in: {err:?}");
}

/// On a terminal, the command's own output comes through intact: the
/// progress line is off while the command shares the terminal (it used to
/// redraw over the command's lines). `script` gives both a pseudo-terminal.
#[test]
fn the_commands_output_on_a_terminal_is_not_overdrawn() {
    if Command::new("script").arg("--version").output().is_err() {
        eprintln!("SKIPPED: `script` (util-linux) is not installed");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("tty.memleak");
    let inner = format!(
        "{} record --sampler procfs -i 50ms -o {} -- sh -c 'for i in 1 2 3; do echo child-line-$i; sleep 0.4; done'",
        memleak_bin().display(),
        out.display()
    );
    let o = Command::new("script")
        .args(["-qec", &inner, "/dev/null"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&o.stdout);
    for i in 1..=3 {
        assert!(
            text.contains(&format!("child-line-{i}\r\n")),
            "line {i} intact in {text:?}"
        );
    }
    assert!(
        !text.contains("recording to"),
        "no progress line while the command owns the terminal: {text:?}"
    );
}

/// clap_complete panics when its writer fails: the script must reach a
/// full disk as an error message and a non-zero exit, not a crash.
#[test]
fn completions_to_a_full_disk_fail_with_a_message_not_a_panic() {
    let full = std::fs::OpenOptions::new()
        .write(true)
        .open("/dev/full")
        .expect("/dev/full");
    let o = Command::new(memleak_bin())
        .args(["completions", "bash"])
        .stdout(full)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert_eq!(o.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("writing the completion script") && stderr.contains("No space left"),
        "says what failed: {stderr}"
    );
}

/// `--refresh 0s` would spin (and tokio's interval panics on zero).
#[test]
fn watch_refuses_a_zero_refresh() {
    let o = Command::new(memleak_bin())
        .args(["watch", "--all", "--refresh", "0s"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("--refresh") && stderr.contains("must be positive"),
        "{stderr}"
    );
}

#[test]
fn watch_refuses_a_max_size_smaller_than_an_empty_recording() {
    for size in ["0", "64KiB"] {
        let o = Command::new(memleak_bin())
            .args(["watch", "--all", "--max-size", size])
            .stdin(Stdio::null())
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "{size}: {stderr}");
        assert!(
            stderr.contains("--max-size") && stderr.contains("too small"),
            "{size}: {stderr}"
        );
    }
}
