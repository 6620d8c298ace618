//! `memleak info FILE --series PID`: a process's samples as CSV, decoded
//! from the chunks that `sqlite3` cannot read, exactly as the library
//! reads them.

use std::process::Command;
use std::time::Duration;

use memleak::record::SamplerChoice;
use memleak_tests::{memleak_bin, record_command};

#[test]
fn series_prints_every_recorded_sample_of_the_process() {
    let dir = tempfile::tempdir().unwrap();
    let pid_file = dir.path().join("pid");
    // A shell that grows a string for a while, so it has several samples.
    let script = format!(
        "echo $$ > {}; x=; i=0; while [ $i -lt 3000 ]; do x=\"$x$i\"; i=$((i+1)); done; sleep 0.3",
        pid_file.display()
    );
    let rec = record_command(
        dir.path(),
        SamplerChoice::Procfs,
        Duration::from_millis(20),
        &["sh", "-c", &script],
    );
    let pid: u32 = std::fs::read_to_string(&pid_file)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let procs = rec.processes_with_pid(pid).unwrap();
    assert_eq!(procs.len(), 1, "the shell was recorded");
    let want = rec.raw_samples(&procs[0]).unwrap();
    assert!(want.len() >= 2, "the shell changed: {want:?}");
    // A finished recording has folded every sample into chunks: none is
    // left where `sqlite3` could read it.
    let db = rusqlite::Connection::open(rec.path()).unwrap();
    let rows: i64 = db
        .query_row(
            "SELECT count(*) FROM samples WHERE proc_id = ?1",
            [procs[0].row],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(rows, 0, "the samples are in chunks");

    let out = Command::new(memleak_bin())
        .args(["info", "--series", &pid.to_string()])
        .arg(rec.path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    let mut lines = text.lines();
    assert_eq!(
        lines.next(),
        Some("pid,start_ns,t_ns,t_s,vm,rss_anon,rss_file,rss_shmem,swap")
    );
    let rows: Vec<Vec<u64>> = lines
        .map(|l| {
            l.split(',')
                .enumerate()
                .filter(|(i, _)| *i != 3) // t_s is t_ns relative to the start
                .map(|(_, f)| f.parse().unwrap())
                .collect()
        })
        .collect();
    let expected: Vec<Vec<u64>> = want
        .iter()
        .map(|(t, m)| {
            vec![
                u64::from(pid),
                procs[0].id.start_ns,
                *t,
                m.vm,
                m.rss_anon,
                m.rss_file,
                m.rss_shmem,
                m.swap,
            ]
        })
        .collect();
    assert_eq!(rows, expected);
}

#[test]
fn series_of_an_absent_pid_says_where_to_look() {
    let dir = tempfile::tempdir().unwrap();
    let rec = record_command(
        dir.path(),
        SamplerChoice::Procfs,
        Duration::from_millis(50),
        &["sh", "-c", "sleep 0.2"],
    );
    // PIDs never exceed 2^22 on Linux.
    let out = Command::new(memleak_bin())
        .args(["info", "--series", "4294967295"])
        .arg(rec.path())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("holds no process with PID 4294967295") && err.contains("memleak info -p"),
        "{err}"
    );
}
