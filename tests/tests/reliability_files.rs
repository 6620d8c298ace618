//! Files and flags memleak takes on a user's behalf: durations are bounded.

use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use memleak_tests::memleak_bin;

/// Runs `cmd` and kills it if it has not finished within `limit`: a hang is
/// a failure of its own, not a stuck test run.
fn run_within(mut cmd: impl std::borrow::BorrowMut<Command>, limit: Duration) -> Output {
    let cmd = cmd.borrow_mut();
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start memleak");
    let deadline = Instant::now() + limit;
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            let out = child.wait_with_output().unwrap();
            panic!(
                "{cmd:?} still running after {limit:?}; stderr: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.wait_with_output().unwrap()
}

fn memleak(args: &[&std::ffi::OsStr]) -> Command {
    let mut c = Command::new(memleak_bin());
    c.args(args);
    c
}

macro_rules! args {
    ($($a:expr),* $(,)?) => { &[$(std::ffi::OsStr::new($a)),*] };
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn huge_durations_are_usage_errors_naming_the_flag() {
    let dir = tempfile::tempdir().unwrap();
    let huge = "18446744073709551615s";
    let out = dir.path().join("x.memleak");
    let watch_dir = dir.path().join("w");
    let cases: Vec<(&str, Command)> = vec![
        (
            "--interval",
            memleak(args![
                "record",
                "-q",
                "--sampler",
                "procfs",
                "-i",
                huge,
                "-o",
                &out,
                "--",
                "true"
            ]),
        ),
        (
            "--duration",
            memleak(args![
                "record",
                "-q",
                "--sampler",
                "procfs",
                "-d",
                huge,
                "-o",
                &out,
                "--",
                "true"
            ]),
        ),
        (
            "--refresh",
            memleak(args![
                "watch",
                "--sampler",
                "procfs",
                "--pid",
                "1",
                "--dir",
                &watch_dir,
                "-d",
                "1s",
                "--refresh",
                huge,
                "--metrics",
                "127.0.0.1:0"
            ]),
        ),
        (
            "--horizon",
            memleak(args!["analyze", &out, "--horizon", huge]),
        ),
    ];
    for (flag, mut cmd) in cases {
        let o = run_within(&mut cmd, Duration::from_secs(20));
        let err = stderr(&o);
        assert_eq!(o.status.code(), Some(2), "{flag}: usage error; {err}");
        assert!(!err.contains("panicked"), "{flag}: {err}");
        assert!(err.contains(flag), "{flag}: names the flag: {err}");
        assert!(err.contains("at most"), "{flag}: gives the range: {err}");
    }
    assert!(!out.exists() && !watch_dir.exists(), "nothing started");
}
