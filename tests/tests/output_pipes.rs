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
