//! Bad recordings (empty, truncated, corrupted, wrong version, foreign files)
//! make `memleak info` and `memleak analyze` print exactly one
//! `memleak: error:` line and exit 1, never panic.

use std::path::{Path, PathBuf};
use std::process::Command;

use memleak_tests::{memleak_bin, output_ok};

/// A real recording of a short command, written by the procfs sampler so the
/// test needs no privileges.
fn good_recording(dir: &Path) -> PathBuf {
    let out = dir.join("good.memleak");
    let st = Command::new(memleak_bin())
        .args([
            "record",
            "-q",
            "--sampler",
            "procfs",
            "--interval",
            "50ms",
            "-o",
        ])
        .arg(&out)
        .args(["--", "sh", "-c", "sleep 0.4"])
        .status()
        .expect("run memleak record");
    assert!(st.success(), "recording the reference file: {st}");
    out
}

fn variant(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, bytes).unwrap();
    p
}

/// Runs `memleak <cmd> <file>` and checks the one-error-line contract;
/// returns the error line.
fn expect_clean_failure(cmd: &str, file: &Path) -> String {
    let out = Command::new(memleak_bin())
        .arg(cmd)
        .arg(file)
        .output()
        .expect("run memleak");
    let stderr = String::from_utf8_lossy(&out.stderr);
    let what = format!("memleak {cmd} {}", file.display());
    assert_eq!(
        out.status.code(),
        Some(1),
        "{what}: exit 1, stderr: {stderr}"
    );
    assert!(!stderr.contains("panicked"), "{what} panicked: {stderr}");
    let errors: Vec<&str> = stderr
        .lines()
        .filter(|l| l.starts_with("memleak: error:"))
        .collect();
    assert_eq!(errors.len(), 1, "{what}: one error line, got: {stderr}");
    assert_eq!(
        stderr.lines().count(),
        1,
        "{what}: nothing but the error line on stderr: {stderr}"
    );
    errors[0].to_string()
}

#[test]
fn bad_recordings_give_one_clear_error_line() {
    let dir = tempfile::tempdir().unwrap();
    let good = good_recording(dir.path());
    let bytes = std::fs::read(&good).unwrap();
    assert!(bytes.len() > 8192, "a few pages at least: {}", bytes.len());

    // Corrupted: keep the header page, garble everything after it.
    let mut garbled = bytes.clone();
    for (i, b) in garbled.iter_mut().enumerate().skip(4096) {
        *b = (i as u8).wrapping_mul(31) ^ 0x5a;
    }
    let wrong_version = dir.path().join("v99.memleak");
    std::fs::copy(&good, &wrong_version).unwrap();
    rusqlite::Connection::open(&wrong_version)
        .unwrap()
        .pragma_update(None, "user_version", 99)
        .unwrap();
    let other_sqlite = dir.path().join("other.memleak");
    {
        let c = rusqlite::Connection::open(&other_sqlite).unwrap();
        c.execute_batch("CREATE TABLE samples(x); INSERT INTO samples VALUES (1);")
            .unwrap();
    }
    // memleak's application id and version, but a schema that is not ours.
    let bad_schema = dir.path().join("schema.memleak");
    {
        let c = rusqlite::Connection::open(&bad_schema).unwrap();
        c.pragma_update(None, "application_id", 0x4D4C_524B)
            .unwrap();
        c.pragma_update(None, "user_version", 1).unwrap();
        c.execute_batch(
            "CREATE TABLE meta(key, value); CREATE TABLE processes(id);
             CREATE TABLE samples(x); CREATE TABLE ticks(t_ns); CREATE TABLE notes(text);",
        )
        .unwrap();
    }
    let cases: Vec<(PathBuf, &str)> = vec![
        (dir.path().join("missing.memleak"), "no such recording"),
        (variant(dir.path(), "empty.memleak", b""), "empty"),
        (
            variant(dir.path(), "trunc.memleak", &bytes[..3000]),
            "truncated",
        ),
        (
            variant(dir.path(), "half.memleak", &bytes[..bytes.len() / 2]),
            "truncated",
        ),
        (variant(dir.path(), "garbled.memleak", &garbled), "damaged"),
        (wrong_version, "format version 99 is not supported"),
        (
            variant(dir.path(), "text.memleak", b"hello, I am a text file\n"),
            "not a memleak recording",
        ),
        (
            variant(
                dir.path(),
                "elf.memleak",
                &std::fs::read(memleak_bin()).unwrap()[..65536],
            ),
            "not a memleak recording",
        ),
        (other_sqlite, "not a memleak recording"),
        (bad_schema, "damaged"),
        (dir.path().to_path_buf(), "not a memleak recording"),
    ];
    for (file, expect) in &cases {
        // `analyze DIR` reads a directory of recordings (another feature).
        let cmds: &[&str] = if file.is_dir() {
            &["info"]
        } else {
            &["info", "analyze"]
        };
        for &cmd in cmds {
            let line = expect_clean_failure(cmd, file);
            assert!(
                line.contains(expect),
                "memleak {cmd} {}: expected `{expect}` in {line:?}",
                file.display()
            );
            if file.is_file() || !file.exists() {
                assert!(
                    line.contains(&file.file_name().unwrap().to_string_lossy().to_string()),
                    "the error names the file: {line}"
                );
            }
        }
    }
    // And the good file still works, so the failures above are the files'.
    output_ok(Command::new(memleak_bin()).arg("info").arg(&good));
}

#[test]
fn bad_config_gives_one_clear_error_line() {
    let dir = tempfile::tempdir().unwrap();
    let good = good_recording(dir.path());
    for (name, text, expect) in [
        ("typo.toml", "[analysis]\nr3 = 0.9\n", "invalid config file"),
        (
            "binary.toml",
            "\u{0}\u{1}\u{2}garbage[[",
            "invalid config file",
        ),
        ("unit.toml", "[analysis]\nhorizon = \"soon\"\n", "horizon"),
        ("range.toml", "[analysis]\nr2 = 7\n", "r2"),
    ] {
        let cfg = variant(dir.path(), name, text.as_bytes());
        let out = Command::new(memleak_bin())
            .arg("analyze")
            .arg(&good)
            .arg("--config")
            .arg(&cfg)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{name}: {stderr}");
        assert!(!stderr.contains("panicked"), "{name}: {stderr}");
        let errors: Vec<&str> = stderr
            .lines()
            .filter(|l| l.starts_with("memleak: error:"))
            .collect();
        assert_eq!(errors.len(), 1, "{name}: {stderr}");
        assert!(errors[0].contains(expect), "{name}: {stderr}");
    }
}

/// `-o` naming a file that exists leaves it untouched and says so; a folder
/// that does not exist is named with its cause, once.
#[test]
fn bad_output_paths_give_one_clear_error_line() {
    let dir = tempfile::tempdir().unwrap();
    let existing = variant(dir.path(), "kept.memleak", b"precious");
    let missing_dir = dir.path().join("no-such-folder").join("x.memleak");
    for (out, expect) in [
        (
            &existing,
            "already exists; memleak never overwrites a recording",
        ),
        (&missing_dir, "cannot create the recording"),
    ] {
        let o = Command::new(memleak_bin())
            .args(["record", "-q", "--sampler", "procfs", "-o"])
            .arg(out)
            .args(["--", "true"])
            .output()
            .expect("run memleak record");
        assert_eq!(o.status.code(), Some(1));
        let err = String::from_utf8_lossy(&o.stderr);
        let lines: Vec<&str> = err.lines().filter(|l| l.contains("error")).collect();
        assert_eq!(lines.len(), 1, "{err}");
        assert!(lines[0].contains(expect), "{err}");
        // Each cause once: the OS error is not repeated.
        assert!(lines[0].matches("os error").count() <= 1, "{err}");
    }
    assert_eq!(std::fs::read(&existing).unwrap(), b"precious");
}
