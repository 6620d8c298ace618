//! A recorder killed with SIGKILL leaves a recording that opens and reads.

use std::process::Command;
use std::time::Duration;

use memleak::store::Recording;
use memleak_tests::{comm, memleak_bin, workload};

#[test]
fn recording_survives_sigkill_of_the_recorder() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("killed.memleak");
    let wl = workload();
    let mut child = Command::new(memleak_bin())
        .args(["record", "-q", "--interval", "100ms", "-o"])
        .arg(&out)
        .args(["--", &wl, "leak", "--rate-mib", "10", "--seconds", "10"])
        .spawn()
        .expect("start memleak");
    // Start-up (loading the eBPF program) takes a moment: wait for the
    // recording to hold a dozen snapshots, then kill.
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        std::thread::sleep(Duration::from_millis(100));
        let ticks = Recording::open(&out).map(|r| r.ticks.len()).unwrap_or(0);
        if ticks >= 12 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "recorder made only {ticks} snapshots in 20 s"
        );
    }
    // SAFETY: killing our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGKILL) };
    child.wait().unwrap();

    let rec = Recording::open(&out).expect("the recording opens after SIGKILL");
    assert!(rec.meta.end_ns.is_none(), "no clean end was written");
    assert!(
        rec.ticks.len() >= 12,
        "the committed snapshots are kept, got {}",
        rec.ticks.len()
    );
    let leaker = rec
        .processes()
        .unwrap()
        .into_iter()
        .find(|p| p.comm == "memleak-workloa")
        .expect("the workload is in the recording");
    let s = rec.series(&leaker).unwrap();
    let first = s.mem.first().unwrap().rss_anon;
    let last = s.mem.last().unwrap().rss_anon;
    assert!(
        last > first + 5 * 1024 * 1024,
        "growth up to the kill is kept: {first} -> {last}"
    );
    // The orphaned workload is still running; stop it, by its pid (a
    // pattern could hit another test's workload).
    if comm(leaker.id.pid) == "memleak-workloa" {
        // SAFETY: the workload we started (through memleak).
        unsafe { libc::kill(leaker.id.pid as i32, libc::SIGKILL) };
    }
}
