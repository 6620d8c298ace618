//! Faults during recording: the recorder interrupted, the monitored command
//! crashing or killed, the disk filling up, the eBPF process map filling up.
//! Nothing recorded so far is lost, and the user is told.

use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

use memleak::store::Recording;
use memleak_tests::{memleak_bin, require_ebpf, wait_for_child_named};

fn meta<'a>(rec: &'a Recording, key: &str) -> Option<&'a str> {
    rec.meta
        .raw
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
}

/// `memleak record -q OPTS -o OUT -- CMD`, ready to run or spawn.
fn recorder(out: &Path, opts: &[&str], cmd: &[&str]) -> Command {
    let mut c = Command::new(memleak_bin());
    c.args(["record", "-q"])
        .args(opts)
        .arg("-o")
        .arg(out)
        .arg("--")
        .args(cmd);
    c
}

fn record(out: &Path, extra: &[&str], cmd: &[&str]) -> Output {
    let mut opts = vec!["--interval", "100ms"];
    opts.extend_from_slice(extra);
    recorder(out, &opts, cmd)
        .output()
        .expect("run memleak record")
}

/// Stops a recording of `sleep 30` with `signal` once it runs, and checks
/// the clean stop: end written, snapshots kept, the command stopped too and
/// its exit recorded, and memleak returning the command's status.
fn stops_cleanly_on(signal: i32) {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join(format!("signal{signal}.memleak"));
    let mut child = recorder(&out, &["--interval", "100ms"], &["sleep", "30"])
        .spawn()
        .expect("start memleak");
    // Signal a recording in progress, not one still loading its sampler.
    wait_for_child_named(child.id(), "sleep");
    std::thread::sleep(Duration::from_millis(300));
    // SAFETY: signalling our own child.
    unsafe { libc::kill(child.id() as i32, signal) };
    let status = child.wait().unwrap();
    let rec = Recording::open(&out).expect("the recording opens after the signal");
    assert!(rec.meta.end_ns.is_some(), "a clean end is written");
    assert_eq!(meta(&rec, "interrupted"), Some("true"));
    assert!(rec.ticks.len() >= 3, "snapshots kept: {}", rec.ticks.len());
    let sleep = rec
        .processes()
        .unwrap()
        .into_iter()
        .find(|p| p.comm == "sleep")
        .expect("the command is recorded");
    assert!(
        sleep.exit_ns.is_some(),
        "the command was stopped and its exit recorded"
    );
    // memleak passes SIGTERM on to the command and returns its status.
    assert_eq!(status.code(), Some(128 + libc::SIGTERM));
}

#[test]
fn sigint_stops_cleanly_and_keeps_the_recording() {
    stops_cleanly_on(libc::SIGINT);
}

#[test]
fn sigterm_stops_cleanly_and_keeps_the_recording() {
    stops_cleanly_on(libc::SIGTERM);
}

/// Between snapshots the recorder sleeps on the signal pipe: a stop during
/// a 60 s interval ends the recording at once, not at the next snapshot.
#[test]
fn a_stop_signal_wakes_a_recorder_in_a_long_interval() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("long.memleak");
    let mut child = recorder(
        &out,
        &["--sampler", "procfs", "--interval", "60s"],
        &["sleep", "120"],
    )
    .spawn()
    .expect("start memleak");
    wait_for_child_named(child.id(), "sleep");
    std::thread::sleep(Duration::from_millis(300));
    let signalled = std::time::Instant::now();
    // SAFETY: signalling our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let status = child.wait().unwrap();
    let took = signalled.elapsed();
    assert_eq!(status.code(), Some(128 + libc::SIGTERM));
    assert!(
        took < Duration::from_secs(20),
        "stopped {took:?} after the signal: it slept through its 60 s interval"
    );
    let rec = Recording::open(&out).unwrap();
    assert!(rec.meta.end_ns.is_some(), "a clean end is written");
}

#[test]
fn command_exit_status_and_crash_are_recorded() {
    require_ebpf!();
    let dir = tempfile::tempdir().unwrap();
    // Exit code 7.
    let out = dir.path().join("exit7.memleak");
    let o = record(
        &out,
        &["--sampler", "ebpf"],
        &["sh", "-c", "sleep 0.2; exit 7"],
    );
    assert_eq!(
        o.status.code(),
        Some(7),
        "memleak returns the command's code"
    );
    let rec = Recording::open(&out).unwrap();
    assert_eq!(rec.meta.exit_code, Some(7));
    let sh = rec
        .processes()
        .unwrap()
        .into_iter()
        .find(|p| p.comm == "sh")
        .expect("sh");
    assert_eq!(sh.exit_code, Some(7 << 8), "raw wait status of exit(7)");

    // A crash: SIGSEGV (raw status holds the signal; 0x80 if it dumped core).
    let out = dir.path().join("segv.memleak");
    let o = record(
        &out,
        &["--sampler", "ebpf"],
        &["sh", "-c", "sleep 0.2; kill -SEGV $$"],
    );
    assert_eq!(o.status.code(), Some(128 + libc::SIGSEGV));
    let rec = Recording::open(&out).unwrap();
    assert_eq!(rec.meta.exit_code, Some(128 + libc::SIGSEGV));
    let sh = rec
        .processes()
        .unwrap()
        .into_iter()
        .find(|p| p.comm == "sh")
        .expect("sh");
    assert_eq!(
        sh.exit_code.map(|c| c & 0x7f),
        Some(libc::SIGSEGV),
        "{:?}",
        sh.exit_code
    );
    let info = Command::new(memleak_bin())
        .arg("info")
        .arg(&out)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&info.stdout);
    assert!(text.contains("(exit code 139)"), "info shows it: {text}");
}

#[test]
fn command_killed_from_outside_is_recorded() {
    require_ebpf!();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("killed-cmd.memleak");
    let child = recorder(
        &out,
        &["--sampler", "ebpf", "--interval", "100ms"],
        &["sleep", "30"],
    )
    .stderr(std::process::Stdio::piped())
    .spawn()
    .expect("start memleak");
    let sleep_pid = wait_for_child_named(child.id(), "sleep");
    std::thread::sleep(Duration::from_millis(300));
    // SAFETY: killing a process we started (through memleak).
    unsafe { libc::kill(sleep_pid as i32, libc::SIGKILL) };
    let o = child.wait_with_output().unwrap();
    assert_eq!(o.status.code(), Some(128 + libc::SIGKILL));
    let rec = Recording::open(&out).unwrap();
    assert_eq!(rec.meta.exit_code, Some(128 + libc::SIGKILL));
    assert!(rec.meta.end_ns.is_some(), "memleak itself ended cleanly");
    let sleep = rec
        .processes()
        .unwrap()
        .into_iter()
        .find(|p| p.id.pid == sleep_pid)
        .expect("the command is recorded");
    assert_eq!(sleep.exit_code.map(|c| c & 0x7f), Some(libc::SIGKILL));
    assert!(sleep.exit_ns.is_some());
}

/// Mounts a small tmpfs; `None` (with the reason) when not permitted.
fn small_tmpfs(at: &Path, size: &str) -> Result<(), String> {
    std::fs::create_dir_all(at).unwrap();
    let o = Command::new("mount")
        .args([
            "-t",
            "tmpfs",
            "-o",
            &format!("size={size},mode=0777"),
            "tmpfs",
        ])
        .arg(at)
        .output()
        .map_err(|e| format!("cannot run mount: {e}"))?;
    if o.status.success() {
        Ok(())
    } else {
        Err(String::from_utf8_lossy(&o.stderr).trim().to_string())
    }
}

struct Unmount<'a>(&'a Path);
impl Drop for Unmount<'_> {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(self.0).status();
    }
}

#[test]
fn disk_full_stops_with_a_clear_error_and_keeps_the_recording() {
    let dir = tempfile::tempdir().unwrap();
    let mnt = dir.path().join("small");
    if let Err(why) = small_tmpfs(&mnt, "300k") {
        eprintln!("SKIPPED: cannot mount a small tmpfs to fill: {why}");
        return;
    }
    let _unmount = Unmount(&mnt);
    let out = mnt.join("full.memleak");
    // Thousands of short processes: each is a new row, so the file grows
    // well past 300 KiB. Every snapshot's commit writes whole pages to the
    // WAL whatever it holds, so at a short interval the disk fills after a
    // fixed time, and how many processes the shell started by then depends
    // on how busy the machine is: at 200 ms a loaded 2-core machine still
    // starts dozens before the disk is full.
    let script = "i=0; while [ $i -lt 4000 ]; do /bin/true; i=$((i+1)); done";
    let o = recorder(&out, &["--interval", "200ms"], &["sh", "-c", script])
        .output()
        .expect("run memleak");
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert_eq!(
        o.status.code(),
        Some(1),
        "non-zero exit on a full disk: {stderr}"
    );
    let errors: Vec<&str> = stderr
        .lines()
        .filter(|l| l.starts_with("memleak: error:"))
        .collect();
    assert_eq!(errors.len(), 1, "one error line: {stderr}");
    assert!(
        errors[0].contains("disk is full")
            && errors[0].contains("full.memleak")
            && errors[0].contains(&mnt.display().to_string()),
        "the error says the disk is full and names the file: {stderr}"
    );
    // What was committed before the disk filled is readable.
    let info = Command::new(memleak_bin())
        .arg("info")
        .arg(&out)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&info.stdout);
    assert!(
        info.status.success(),
        "the recording opens after a full disk: {}",
        String::from_utf8_lossy(&info.stderr)
    );
    let rec = Recording::open(&out).unwrap();
    assert!(
        !rec.ticks.is_empty(),
        "snapshots before the disk filled: {text}"
    );
    assert!(
        rec.processes().unwrap().len() > 10,
        "processes kept: {}",
        rec.processes().unwrap().len()
    );
}

#[test]
fn a_full_process_map_is_counted_and_reported() {
    require_ebpf!();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("mapfull.memleak");
    // 60 processes alive at once, 16 slots.
    let script = "for i in $(seq 60); do sleep 1.5 & done; wait";
    let o = record(
        &out,
        &["--sampler", "ebpf", "--max-procs", "16"],
        &["sh", "-c", script],
    );
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{stderr}");
    assert!(
        stderr.contains("memleak: note: the sampler lost information (procs_map_full: "),
        "the user is told right away: {stderr}"
    );
    let rec = Recording::open(&out).unwrap();
    let full = rec
        .counters
        .iter()
        .find(|(k, _)| k == "procs_map_full")
        .map(|(_, v)| *v)
        .unwrap_or(0);
    assert!(full >= 30, "overflow counted: {full}, {:?}", rec.counters);
    // Once everything exited, the slots are free again: nothing leaked.
    let entries = rec
        .counters
        .iter()
        .find(|(k, _)| k == "procs_map_entries")
        .map(|(_, v)| *v);
    assert!(
        entries.is_some_and(|n| n <= 2),
        "process map entries at the end: {entries:?}"
    );
    assert!(
        rec.processes().unwrap().len() <= 16 + 2,
        "no more processes than slots (plus exits freeing slots): {}",
        rec.processes().unwrap().len()
    );
    let info = Command::new(memleak_bin())
        .arg("info")
        .arg(&out)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&info.stdout);
    assert!(text.contains(&format!("procs_map_full={full}")), "{text}");
    assert!(
        text.lines().any(|l| l.starts_with("note")
            && l.contains("procs_map_full")
            && l.contains("--max-procs")),
        "info carries the note with the remedy: {text}"
    );
}

/// The summary line counts what the file holds, not what the recorder saw:
/// on a disk that fills during setup or the first snapshots, "recorded 45
/// processes" over a file holding none would hide the loss.
#[test]
fn disk_full_summary_counts_only_what_the_file_holds_and_says_data_was_lost() {
    let dir = tempfile::tempdir().unwrap();
    let mnt = dir.path().join("tiny");
    if let Err(why) = small_tmpfs(&mnt, "256k") {
        eprintln!("SKIPPED: cannot mount a small tmpfs to fill: {why}");
        return;
    }
    let _unmount = Unmount(&mnt);
    let out = mnt.join("tiny.memleak");
    let script = "i=0; while [ $i -lt 4000 ]; do /bin/true; i=$((i+1)); done";
    let o = recorder(&out, &["--interval", "20ms"], &["sh", "-c", script])
        .output()
        .expect("run memleak");
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{stderr}");
    let summary = stderr
        .lines()
        .find(|l| l.starts_with("memleak: recorded "))
        .unwrap_or_else(|| panic!("a summary line: {stderr}"));
    let claimed: usize = summary
        .trim_start_matches("memleak: recorded ")
        .split_whitespace()
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("a process count: {summary}"));
    let held = Recording::open(&out)
        .map(|r| r.processes().unwrap().len())
        .unwrap_or(0);
    assert_eq!(
        claimed, held,
        "the summary counts the file's processes: {summary}"
    );
    assert!(
        summary.contains("lost"),
        "the summary says data was lost: {summary}"
    );
}

/// `--all` with a process map smaller than the machine's process count
/// stays on eBPF and counts the overflow (it used to fall back to procfs
/// because seeding the map failed).
#[test]
fn all_scope_with_a_small_process_map_counts_overflow_and_stays_on_ebpf() {
    require_ebpf!();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("all-small-map.memleak");
    let o = Command::new(memleak_bin())
        .args(["record", "-q", "--all", "--max-procs", "16"])
        .args(["--interval", "100ms", "-d", "1s", "-o"])
        .arg(&out)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{stderr}");
    assert!(
        !stderr.contains("using the procfs sampler"),
        "no fallback to procfs: {stderr}"
    );
    let rec = Recording::open(&out).unwrap();
    assert_eq!(meta(&rec, "sampler"), Some("ebpf"), "{stderr}");
    let full = rec
        .counters
        .iter()
        .find(|(k, _)| k == "procs_map_full")
        .map(|(_, v)| *v)
        .unwrap_or(0);
    assert!(full > 0, "overflow counted: {:?}", rec.counters);
    assert!(
        stderr.contains("memleak: note: the sampler lost information (procs_map_full: "),
        "the user is told: {stderr}"
    );
}

#[test]
fn max_procs_below_the_minimum_is_a_usage_error() {
    let dir = tempfile::tempdir().unwrap();
    for bad in ["0", "3"] {
        let o = Command::new(memleak_bin())
            .args([
                "record",
                "-q",
                "--all",
                "-d",
                "1s",
                "--max-procs",
                bad,
                "-o",
            ])
            .arg(dir.path().join(format!("max-procs-{bad}.memleak")))
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "usage error for {bad}: {stderr}");
        assert!(
            stderr.contains("--max-procs") && stderr.contains("at least 16"),
            "the message names the option and the minimum: {stderr}"
        );
    }
}

/// Polls `f` every 20 ms until it is true, failing after `secs`.
fn wait_for(what: &str, secs: u64, mut f: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + Duration::from_secs(secs);
    while !f() {
        assert!(std::time::Instant::now() < deadline, "timed out: {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Whether `pid` still runs (not gone, not a zombie).
fn running(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| s.rsplit_once(')').map(|(_, r)| r.trim_start().to_string()))
        .is_some_and(|r| !r.starts_with('Z') && !r.starts_with('X'))
}

/// A recorder killed with SIGKILL cannot pass a stop on: the kernel must
/// (parent-death signal), or the command runs on as an orphan.
#[test]
fn sigkill_of_the_recorder_kills_the_command() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("killed-recorder.memleak");
    let mut child = recorder(
        &out,
        &["--sampler", "procfs", "--interval", "100ms"],
        &["sleep", "30"],
    )
    .spawn()
    .expect("start memleak");
    let sleep_pid = wait_for_child_named(child.id(), "sleep");
    child.kill().unwrap();
    child.wait().unwrap();
    wait_for("the command dies with its recorder", 10, || {
        !running(sleep_pid)
    });
}

#[test]
fn run_of_a_missing_command_exits_127_and_leaves_no_recording() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("missing.memleak");
    let o = Command::new(memleak_bin())
        .args(["run", "-q", "--sampler", "procfs", "-o"])
        .arg(&out)
        .args(["--", "memleak-no-such-command"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(127), "{stderr}");
    assert!(
        stderr.contains("memleak-no-such-command") && stderr.contains("not found"),
        "{stderr}"
    );
    assert!(!out.exists(), "no empty recording is left behind");
    assert!(
        !Path::new(&format!("{}-wal", out.display())).exists(),
        "nor its WAL"
    );
}

#[test]
fn run_of_a_non_executable_file_exits_126() {
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("not-executable");
    std::fs::write(&script, "#!/bin/sh\nexit 0\n").unwrap();
    let out = dir.path().join("noexec.memleak");
    let o = Command::new(memleak_bin())
        .args(["record", "-q", "--sampler", "procfs", "-o"])
        .arg(&out)
        .arg("--")
        .arg(&script)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(126), "{stderr}");
    assert!(stderr.contains("not-executable"), "{stderr}");
    assert!(!out.exists(), "no empty recording is left behind");
}

#[test]
fn run_without_the_double_dash_hints_at_it() {
    let o = Command::new(memleak_bin())
        .args(["run", "sleep", "1"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("memleak run -- sleep 1"), "{stderr}");
}

#[test]
fn record_with_a_bare_second_pid_says_to_repeat_the_option() {
    let o = Command::new(memleak_bin())
        .args(["record", "--pid", "1", "2"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("--pid 5 --pid 6"), "{stderr}");
}
