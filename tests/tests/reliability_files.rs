//! Files memleak reads and writes on a user's behalf: outputs never follow a
//! planted symlink, inputs are bounded regular files, durations are bounded,
//! settings are checked before a command starts, readers leave a crashed
//! recording as it is, and `watch` keeps its directory private and prunes
//! only its own recordings.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use memleak_tests::memleak_bin;

/// A real recording of a short command, by the procfs sampler (no
/// privileges needed).
fn good_recording(dir: &Path) -> PathBuf {
    let out = dir.join("good.memleak");
    let st = Command::new(memleak_bin())
        .args(["record", "-q", "--sampler", "procfs", "-i", "50ms", "-o"])
        .arg(&out)
        .args(["--", "sh", "-c", "sleep 0.4"])
        .status()
        .expect("run memleak record");
    assert!(st.success(), "recording the reference file: {st}");
    out
}

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

/// Exit 1 with one `memleak: error:` line holding every one of `expect`.
fn assert_error(o: &Output, what: &str, expect: &[&str]) {
    let err = stderr(o);
    assert_eq!(o.status.code(), Some(1), "{what}: exit 1; stderr: {err}");
    assert!(!err.contains("panicked"), "{what}: {err}");
    let lines: Vec<&str> = err
        .lines()
        .filter(|l| l.starts_with("memleak: error:"))
        .collect();
    assert_eq!(lines.len(), 1, "{what}: one error line: {err}");
    for e in expect {
        assert!(lines[0].contains(e), "{what}: expected `{e}` in {err}");
    }
}

fn mkfifo(path: &Path) {
    let c = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()).unwrap();
    // SAFETY: a valid NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
}

#[test]
fn report_outputs_never_write_through_symlinks() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let good = good_recording(d);
    let victim = d.join("victim");
    std::fs::write(&victim, b"precious").unwrap();

    let link = d.join("report.json");
    std::os::unix::fs::symlink(&victim, &link).unwrap();
    let o = run_within(
        memleak(args!["analyze", &good, "--format", "json", "-o", &link]),
        Duration::from_secs(30),
    );
    assert_error(&o, "analyze -o SYMLINK", &["report.json", "symbolic link"]);

    let base_link = d.join("base.json");
    std::os::unix::fs::symlink(&victim, &base_link).unwrap();
    let o = run_within(
        memleak(args!["baseline", "save", &good, "-o", &base_link]),
        Duration::from_secs(30),
    );
    assert_error(
        &o,
        "baseline save -o SYMLINK",
        &["base.json", "symbolic link"],
    );

    // An HTML directory that is a link, and a real one holding a planted
    // link where index.html goes.
    let real = d.join("real");
    std::fs::create_dir(&real).unwrap();
    let dir_link = d.join("html-link");
    std::os::unix::fs::symlink(&real, &dir_link).unwrap();
    let o = run_within(
        memleak(args!["analyze", &good, "--format", "html", "-o", &dir_link]),
        Duration::from_secs(30),
    );
    assert_error(&o, "html -o SYMLINK", &["html-link", "symbolic link"]);
    std::os::unix::fs::symlink(&victim, real.join("index.html")).unwrap();
    let o = run_within(
        memleak(args!["analyze", &good, "--format", "html", "-o", &real]),
        Duration::from_secs(30),
    );
    assert_error(
        &o,
        "html index.html SYMLINK",
        &["index.html", "symbolic link"],
    );

    assert_eq!(std::fs::read(&victim).unwrap(), b"precious");

    // An existing regular report is replaced (a CI job reruns), whole.
    let plain = d.join("plain.json");
    std::fs::write(&plain, b"old").unwrap();
    let o = run_within(
        memleak(args!["analyze", &good, "--format", "json", "-o", &plain]),
        Duration::from_secs(30),
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let text = std::fs::read_to_string(&plain).unwrap();
    assert!(
        text.starts_with('{') && text.contains("schema_version"),
        "{text}"
    );
    // No temporary file is left next to it.
    let names: Vec<String> = std::fs::read_dir(d)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(".plain.json") || n.contains(".tmp"))
        .collect();
    assert!(names.is_empty(), "left behind: {names:?}");
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

#[test]
fn run_checks_the_analysis_settings_before_starting_the_command() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let mark = d.join("ran");
    let script = format!("touch {}", mark.display());
    let out = d.join("run.memleak");
    let o = run_within(
        memleak(args![
            "run",
            "--sampler",
            "procfs",
            "--r2",
            "2",
            "-o",
            &out,
            "--",
            "sh",
            "-c",
            &script
        ])
        .current_dir(d),
        Duration::from_secs(30),
    );
    assert_error(&o, "run --r2 2", &["r2"]);
    assert!(!mark.exists(), "the command must not run with bad settings");
    assert!(!out.exists(), "no recording with bad settings");

    std::fs::write(d.join("memleak.toml"), "[analysis]\nr3 = 0.9\n").unwrap();
    let o = run_within(
        memleak(args![
            "run",
            "--sampler",
            "procfs",
            "-o",
            &out,
            "--",
            "sh",
            "-c",
            &script
        ])
        .current_dir(d),
        Duration::from_secs(30),
    );
    assert_error(
        &o,
        "run with a bad memleak.toml",
        &["memleak.toml", "invalid config file"],
    );
    assert!(!mark.exists(), "the command must not run with a bad config");
}

#[test]
fn inputs_must_be_bounded_regular_files() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let good = good_recording(d);
    let fifo = d.join("fifo.toml");
    mkfifo(&fifo);
    let big = d.join("big.toml");
    std::fs::File::create(&big)
        .unwrap()
        .set_len(1 << 30)
        .unwrap();
    let zero = Path::new("/dev/zero");
    let limit = Duration::from_secs(10);
    for (what, mut cmd, expect) in [
        (
            "--config /dev/zero",
            memleak(args!["analyze", &good, "--config", zero]),
            "not a regular file",
        ),
        (
            "--config FIFO",
            memleak(args!["analyze", &good, "--config", &fifo]),
            "not a regular file",
        ),
        (
            "--config BIG",
            memleak(args!["analyze", &good, "--config", &big]),
            "too large",
        ),
        (
            "eval /dev/zero",
            memleak(args!["eval", zero]),
            "not a regular file",
        ),
        (
            "eval FIFO",
            memleak(args!["eval", &fifo]),
            "not a regular file",
        ),
        (
            "compare --baseline /dev/zero",
            memleak(args!["compare", "--baseline", zero, &good]),
            "not a regular file",
        ),
        (
            "compare --baseline BIG",
            memleak(args!["compare", "--baseline", &big, &good]),
            "too large",
        ),
    ] {
        let o = run_within(&mut cmd, limit);
        assert_error(&o, what, &[expect]);
    }
}

/// Runs `memleak info FILE` (as nobody when `as_nobody`) and returns its
/// error line.
fn info_error(file: &Path, as_nobody: bool) -> String {
    let mut cmd = memleak(args!["info", file]);
    // nobody must be able to reach the binary wherever the tree is checked out.
    let _anyone = as_nobody.then(|| {
        let (dir, bin) = memleak_tests::memleak_bin_for_anyone();
        cmd = Command::new(bin);
        cmd.args(args!["info", file]);
        dir
    });
    if as_nobody {
        // SAFETY: setgid/setuid in the child before exec, async-signal-safe.
        unsafe {
            cmd.pre_exec(|| {
                if libc::setgid(65534) != 0 || libc::setuid(65534) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
    }
    let o = run_within(&mut cmd, Duration::from_secs(10));
    assert_error(&o, &format!("info {}", file.display()), &[]);
    stderr(&o)
}

#[test]
fn bad_recordings_say_what_happened() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let good = good_recording(d);
    let bytes = std::fs::read(&good).unwrap();
    for cut in [20, 99, 100, 512, 4096, 8192] {
        let p = d.join(format!("cut{cut}.memleak"));
        std::fs::write(&p, &bytes[..cut]).unwrap();
        let e = info_error(&p, false);
        assert!(e.contains("truncated"), "cut at {cut}: {e}");
        assert!(!e.contains("not written by memleak"), "cut at {cut}: {e}");
    }
    // The main file of a recording whose recorder was killed before any
    // checkpoint, copied without its WAL: every byte of data is in the WAL.
    let no_wal = d.join("nowal.memleak");
    rusqlite::Connection::open(&no_wal)
        .unwrap()
        .pragma_update(None, "journal_mode", "WAL")
        .unwrap();
    let e = info_error(&no_wal, false);
    assert!(e.contains("nowal.memleak-wal"), "{e}");
    assert!(!e.contains("not written by memleak"), "{e}");

    let fifo = d.join("fifo.memleak");
    mkfifo(&fifo);
    for special in [fifo.as_path(), Path::new("/dev/null")] {
        let e = info_error(special, false);
        assert!(e.contains("not a regular file"), "{e}");
    }
    let (a, b) = (d.join("loop-a.memleak"), d.join("loop-b.memleak"));
    std::os::unix::fs::symlink(&b, &a).unwrap();
    std::os::unix::fs::symlink(&a, &b).unwrap();
    let e = info_error(&a, false);
    assert!(e.contains("symbolic link"), "{e}");

    // A file its reader may not open. Root reads everything, so the reader
    // drops to nobody (the temporary folder is private to root).
    let locked = d.join("locked.memleak");
    std::fs::copy(&good, &locked).unwrap();
    std::fs::set_permissions(&locked, std::fs::Permissions::from_mode(0o600)).unwrap();
    // SAFETY: plain getter.
    let root = unsafe { libc::geteuid() } == 0;
    if !root {
        std::fs::set_permissions(&locked, std::fs::Permissions::from_mode(0o000)).unwrap();
    }
    let e = info_error(&locked, root);
    assert!(e.contains("permission denied"), "{e}");
    assert!(!e.contains("no such recording"), "{e}");
}

/// Length and modification time of `path`, or None when it is missing.
fn stamp(path: &Path) -> Option<(u64, i64, i64)> {
    std::fs::metadata(path)
        .ok()
        .map(|m| (m.len(), m.mtime(), m.mtime_nsec()))
}

#[test]
fn readers_leave_a_killed_recording_as_it_is() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let out = d.join("killed.memleak");
    let wal = d.join("killed.memleak-wal");
    let mut target = Command::new("sleep").arg("60").spawn().unwrap();
    let mut rec = Command::new(memleak_bin())
        .args(["record", "-q", "--sampler", "procfs", "-i", "50ms", "--pid"])
        .arg(target.id().to_string())
        .arg("-o")
        .arg(&out)
        .stdin(Stdio::null())
        .spawn()
        .unwrap();
    // Wait until snapshots are committed to the WAL, then kill the recorder
    // so nothing merges it.
    let deadline = Instant::now() + Duration::from_secs(20);
    while stamp(&wal).is_none_or(|s| s.0 < 16 * 1024) {
        assert!(Instant::now() < deadline, "no WAL written in 20 s");
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_millis(300));
    rec.kill().unwrap();
    rec.wait().unwrap();
    target.kill().unwrap();
    target.wait().unwrap();

    let before = (std::fs::read(&out).unwrap(), std::fs::read(&wal).unwrap());
    for cmd in ["info", "analyze"] {
        let o = run_within(memleak(args![cmd, &out]), Duration::from_secs(30));
        assert!(o.status.success(), "{cmd}: {}", stderr(&o));
        if cmd == "info" {
            let text = String::from_utf8_lossy(&o.stdout);
            let snaps: usize = text
                .lines()
                .find_map(|l| l.strip_prefix("snapshots"))
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or(0);
            assert!(snaps >= 3, "the WAL's snapshots are read: {text}");
        }
        assert!(wal.exists(), "{cmd} must not merge and delete the WAL");
        let after = (std::fs::read(&out).unwrap(), std::fs::read(&wal).unwrap());
        assert!(before == after, "{cmd} changed the recording or its WAL");
    }
}

fn sleeper() -> std::process::Child {
    Command::new("sleep").arg("60").spawn().unwrap()
}

#[test]
fn watch_keeps_its_directory_private() {
    let dir = tempfile::tempdir().unwrap();
    let wd = dir.path().join("watch");
    let mut target = sleeper();
    let mut cmd = memleak(args![
        "watch",
        "--sampler",
        "procfs",
        "-i",
        "100ms",
        "-d",
        "1s",
        "--dir",
        &wd,
        "--pid"
    ]);
    cmd.arg(target.id().to_string());
    // SAFETY: umask in the child before exec.
    unsafe {
        cmd.pre_exec(|| {
            libc::umask(0);
            Ok(())
        });
    }
    let o = run_within(&mut cmd, Duration::from_secs(30));
    assert!(o.status.success(), "{}", stderr(&o));
    let mode = std::fs::metadata(&wd).unwrap().permissions().mode() & 0o7777;
    assert_eq!(mode, 0o700, "watch --dir is private: {mode:o}");

    let shared = dir.path().join("shared");
    std::fs::create_dir(&shared).unwrap();
    std::fs::set_permissions(&shared, std::fs::Permissions::from_mode(0o777)).unwrap();
    let o = run_within(
        memleak(args![
            "watch",
            "--sampler",
            "procfs",
            "-d",
            "1s",
            "--dir",
            &shared,
            "--pid"
        ])
        .arg(target.id().to_string()),
        Duration::from_secs(30),
    );
    assert_error(&o, "watch --dir WORLD-WRITABLE", &["shared", "writable"]);
    target.kill().unwrap();
    target.wait().unwrap();
}

#[test]
fn watch_prunes_only_its_own_recordings() {
    // SAFETY: plain getter.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("SKIPPED: planting another user's file needs root (chown)");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let wd = dir.path().join("watch");
    std::fs::create_dir(&wd).unwrap();
    std::fs::set_permissions(&wd, std::fs::Permissions::from_mode(0o700)).unwrap();
    // Another user's files sorting after every real one: by name they are
    // "the newest".
    let planted: Vec<PathBuf> = [
        "memleak-29991231-000000.memleak",
        "memleak-29991231-000001.memleak",
    ]
    .iter()
    .map(|n| wd.join(n))
    .collect();
    for p in &planted {
        std::fs::write(p, b"not yours").unwrap();
        std::os::unix::fs::chown(p, Some(65534), Some(65534)).unwrap();
    }
    let mut target = sleeper();
    let o = run_within(
        memleak(args![
            "watch",
            "--sampler",
            "procfs",
            "-i",
            "100ms",
            "--rotate",
            "1s",
            "-d",
            "3500ms",
            "--keep",
            "1",
            "--dir",
            &wd,
            "--pid"
        ])
        .arg(target.id().to_string()),
        Duration::from_secs(30),
    );
    target.kill().unwrap();
    target.wait().unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    for p in &planted {
        assert_eq!(
            std::fs::read(p).unwrap(),
            b"not yours",
            "not watch's to delete"
        );
    }
    let own: Vec<String> = std::fs::read_dir(&wd)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| !planted.contains(p) && p.extension().is_some_and(|e| e == "memleak"))
        .map(|p| p.display().to_string())
        .collect();
    assert_eq!(
        own.len(),
        1,
        "--keep 1 keeps watch's newest recording: {own:?}\n{}",
        stderr(&o)
    );
}
