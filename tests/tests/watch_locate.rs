//! `memleak watch --locate`: the daemon attaches the page-fault probe to a
//! process the moment its refresh flags it as a leak, for a bounded time,
//! and stores the stacks in the recording current when the session ends.
//! A leaking C program (tests/data/leaky.c, 25 MiB/s from `leak_site`)
//! runs beside a stable one, both started without memleak: the leak must
//! be located with `leak_site` on top, the stable process never attached.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use memleak::locate::LocatedStack;
use memleak::store::Recording;
use memleak_tests::{
    build_leaky, free_port, memleak_bin, output_ok, require_locate, workload, ChildGuard,
};

/// The body of GET /metrics, or None while the endpoint is not up.
fn scrape(port: u16) -> Option<String> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .ok()?;
    let mut text = String::new();
    s.read_to_string(&mut text).ok()?;
    Some(text.split_once("\r\n\r\n")?.1.to_string())
}

/// The value of the unlabelled series `name` in an exposition.
fn value(text: &str, name: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
}

/// Every located stack of every recording, with the file it is in.
fn located(dir: &Path) -> Vec<(PathBuf, LocatedStack)> {
    let mut out = Vec::new();
    // The order `analyze DIR` reads them in: by name, oldest first.
    for f in memleak::source::range::list_files(dir).unwrap() {
        let rec = Recording::open(&f).unwrap();
        for s in rec.located().unwrap().stacks {
            out.push((f.clone(), s));
        }
    }
    out
}

/// The leak and the stable process, started independently of memleak.
struct Workloads {
    leak: ChildGuard,
    stable: ChildGuard,
}

fn workloads(leaky: &Path) -> Workloads {
    Workloads {
        // 60 s at 25 MiB/s at most; stopped when the test ends.
        leak: ChildGuard(Command::new(leaky).arg("60").spawn().unwrap()),
        // Fills 64 MiB once, then rewrites the same pages: no new memory.
        stable: ChildGuard(
            Command::new(workload())
                .args(["stable", "--mib", "64", "--seconds", "60"])
                .spawn()
                .unwrap(),
        ),
    }
}

/// `memleak watch` of the two workloads, sampling fast and analysing a
/// short window so the leak is flagged within seconds, with `extra`.
fn watch_command(dir: &Path, w: &Workloads, extra: &[&str]) -> Command {
    let mut cmd = Command::new(memleak_bin());
    cmd.args(["watch", "-i", "200ms", "--dir"])
        .arg(dir)
        .args(["--pid", &w.leak.id().to_string()])
        .args(["--pid", &w.stable.id().to_string()])
        .args(["--refresh", "1s", "--window", "1m", "--limit", "4GiB"])
        .args(extra);
    cmd
}

/// The leak's stacks are in a recording with `leak_site` on top, the
/// stable process has none, and `info` and `analyze` of that file show it.
fn assert_located_the_leak_only(dir: &Path, w: &Workloads, stderr: &str) {
    let all = located(dir);
    let (leak, stable) = (w.leak.id(), w.stable.id());
    assert!(
        all.iter().all(|(_, s)| s.id.pid != stable),
        "the stable process was attached: {all:#?}\n{stderr}"
    );
    let mut ours: Vec<&(PathBuf, LocatedStack)> =
        all.iter().filter(|(_, s)| s.id.pid == leak).collect();
    assert!(!ours.is_empty(), "no stack of the leak: {all:#?}\n{stderr}");
    ours.sort_by_key(|(_, s)| std::cmp::Reverse(s.bytes));
    let (file, top) = ours[0];
    assert_eq!(top.top_function(), Some("leak_site"), "{ours:#?}\n{stderr}");
    assert!(
        stderr.contains(&format!("locating pid {leak} ")),
        "no session start line:\n{stderr}"
    );
    assert!(
        stderr.contains(&format!("located pid {leak} "))
            && stderr.contains("top leak_site (leaky.c:"),
        "no session end line naming leak_site:\n{stderr}"
    );
    assert!(
        !stderr.contains(&format!("locating pid {stable} ")),
        "{stderr}"
    );

    // The existing readers show what watch located, like `run --locate`.
    let info = output_ok(Command::new(memleak_bin()).arg("info").arg(file));
    let info = String::from_utf8_lossy(&info.stdout);
    let line = info
        .lines()
        .find(|l| l.starts_with("located "))
        .unwrap_or_else(|| panic!("no located line: {info}"));
    assert!(
        line.contains(&format!("top: leak_site in leaky-c (pid {leak})")),
        "{line}"
    );
    // `analyze` of that file, and of the directory over a time range as an
    // operator reads a watch, put the leak's stack first.
    for (path, range) in [(file.as_path(), &[][..]), (dir, &["--since", "1h"][..])] {
        let out = Command::new(memleak_bin())
            .args(["analyze", "--format", "json"])
            .args(range)
            .arg(path)
            .output()
            .unwrap();
        let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
            panic!(
                "JSON report of {}: {e}\n{}",
                path.display(),
                String::from_utf8_lossy(&out.stderr)
            )
        });
        let first = &report["located"]["stacks"][0];
        assert_eq!(
            first["pid"],
            leak,
            "{}: {:#}",
            path.display(),
            report["located"]
        );
        assert_eq!(first["frames"][0]["function"], "leak_site");
    }
}

/// A scratch directory, the leaky program built in it, and the two
/// workloads started; None (after saying why) when no C compiler is there.
fn setup() -> Option<(tempfile::TempDir, PathBuf, Workloads)> {
    let tmp = tempfile::tempdir().unwrap();
    let leaky = build_leaky(tmp.path())?;
    let dir = tmp.path().join("w");
    let w = workloads(&leaky);
    Some((tmp, dir, w))
}

#[test]
fn watch_locate_attaches_to_the_flagged_leak_and_stores_its_stacks() {
    require_locate!();
    let Some((tmp, dir, w)) = setup() else {
        return;
    };
    let port = free_port();
    let log = tmp.path().join("stderr.txt");
    let watch = ChildGuard(
        watch_command(&dir, &w, &["--locate", "--locate-for", "3s"])
            .args(["--metrics", &format!("127.0.0.1:{port}")])
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap(),
    );
    // Flagged after ~20 points (4 s at 200 ms), then located for 3 s.
    let deadline = Instant::now() + Duration::from_secs(90);
    let text = loop {
        let text = scrape(port).unwrap_or_default();
        if value(&text, "memleak_located_sessions_stored_total").is_some_and(|v| v >= 1.0) {
            break text;
        }
        assert!(
            Instant::now() < deadline,
            "no --locate session stored after 90 s:\n{text}\n{}",
            std::fs::read_to_string(&log).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(250));
    };
    // One session: the leak, once in this file; never the stable process.
    assert_eq!(value(&text, "memleak_located_sessions_total"), Some(1.0));
    assert_eq!(value(&text, "memleak_located_sessions_active"), Some(0.0));
    // A clean stop (SIGTERM) ends the file.
    drop(watch);
    let stderr = std::fs::read_to_string(&log).unwrap();
    assert_located_the_leak_only(&dir, &w, &stderr);
}

/// Without --metrics, --locate runs the refresh analysis itself; a
/// session still live when watch ends (here, --duration) is stored in the
/// last file. With the procfs sampler the recording knows start times at
/// clock-tick precision only (eBPF: to the ns): the identity check takes
/// both.
#[test]
fn watch_locate_without_metrics_stores_live_sessions_at_the_end() {
    require_locate!();
    // The directory lives as long as `_tmp`.
    let Some((_tmp, dir, w)) = setup() else {
        return;
    };
    // Flagged ~5 s in (20 points at 200 ms); 20 s leave room for a loaded
    // machine, and the session, 10 min long, is still live at the end.
    let out = watch_command(
        &dir,
        &w,
        &[
            "--sampler",
            "procfs",
            "--locate",
            "--locate-for",
            "10m",
            "-d",
            "20s",
        ],
    )
    .stderr(Stdio::piped())
    .output()
    .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "{stderr}");
    assert_located_the_leak_only(&dir, &w, &stderr);
}

/// Without the privileges locate needs, --locate is refused before
/// anything starts, with the reason, rather than a watch that never locates.
#[test]
fn watch_locate_without_privileges_says_why_and_writes_nothing() {
    let sandbox = match memleak_tests::nobody_sandbox() {
        Ok(s) => s,
        Err(why) => {
            eprintln!("SKIPPED: {why}");
            return;
        }
    };
    let dir = sandbox.out.join("w");
    let out = sandbox
        .command(&[])
        .args(["watch", "--sampler", "procfs", "--pid", "1", "-d", "2s"])
        .args(["--locate", "--dir"])
        .arg(&dir)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("--locate") && err.contains("locate needs"),
        "{err}"
    );
    assert!(!dir.exists(), "nothing is written: {err}");
}
