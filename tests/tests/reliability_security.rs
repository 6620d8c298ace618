//! Security: recordings are private (0600), a `--pid` scope records only that
//! process tree, memleak never records itself, and nothing from a recording
//! is ever executed or sent raw to the terminal.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use memleak::sample::{Exit, Mem, Observation, ProcId, ProcMeta};
use memleak::store::{Recording, Writer};
use memleak_tests::{memleak_bin, require_ebpf, ChildGuard};

#[test]
fn recordings_are_created_mode_0600() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("private.memleak");
    // A permissive umask must not widen the mode.
    let st = Command::new("sh")
        .arg("-c")
        .arg("umask 000; exec \"$0\" record -q --sampler procfs --interval 50ms -o \"$1\" -- sleep 0.3")
        .arg(memleak_bin())
        .arg(&out)
        .status()
        .unwrap();
    assert!(st.success());
    let mode = std::fs::metadata(&out).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "recording mode is {mode:o}");
    // SQLite's side files (if any are left) follow the main file's mode.
    for side in ["-wal", "-shm"] {
        let p = format!("{}{side}", out.display());
        if let Ok(m) = std::fs::metadata(&p) {
            assert_eq!(m.permissions().mode() & 0o077, 0, "{p} is private");
        }
    }
}

/// A shell looping over short children, tagged in its command line.
fn looper(tag: &str) -> ChildGuard {
    ChildGuard(
        Command::new("sh")
            .args(["-c", "while :; do sleep 0.1; done", tag])
            .stdout(Stdio::null())
            .spawn()
            .unwrap(),
    )
}

fn check_pid_scope(sampler: &str) {
    let dir = tempfile::tempdir().unwrap();
    let inside = looper("memleak-scope-inside");
    let outside = looper("memleak-scope-outside");
    let x = inside.0.id();
    let out = dir.path().join(format!("pid-{sampler}.memleak"));
    let o = Command::new(memleak_bin())
        .args([
            "record",
            "-q",
            "--sampler",
            sampler,
            "--interval",
            "50ms",
            "-d",
            "1500ms",
        ])
        .args(["--pid", &x.to_string(), "-o"])
        .arg(&out)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    drop(inside);
    drop(outside);
    let rec = Recording::open(&out).unwrap();
    assert!(
        rec.processes().unwrap().iter().any(|p| p.id.pid == x),
        "the target is recorded"
    );
    assert!(
        rec.processes().unwrap().len() >= 4,
        "its children are recorded too: {:?}",
        rec.processes().unwrap()
    );
    let ppid_of: std::collections::HashMap<u32, u32> = rec
        .processes()
        .unwrap()
        .iter()
        .map(|p| (p.id.pid, p.ppid))
        .collect();
    for p in &rec.processes().unwrap() {
        let cmd = p.cmdline.clone().unwrap_or_default();
        assert!(
            !cmd.contains("memleak-scope-outside"),
            "{sampler}: a process outside the scope was recorded: {p:?}"
        );
        // Every process descends from the target within the recording.
        let mut cur = p.id.pid;
        let mut hops = 0;
        while cur != x {
            cur = *ppid_of
                .get(&cur)
                .unwrap_or_else(|| panic!("{sampler}: {p:?} does not descend from {x}"));
            hops += 1;
            assert!(hops < 64, "ppid loop at {p:?}");
        }
    }
}

#[test]
fn pid_scope_records_only_that_tree_procfs() {
    check_pid_scope("procfs");
}

#[test]
fn pid_scope_records_only_that_tree_ebpf() {
    require_ebpf!();
    check_pid_scope("ebpf");
}

fn check_never_records_itself(sampler: &str) {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join(format!("all-{sampler}.memleak"));
    let child = Command::new(memleak_bin())
        .args([
            "record",
            "-q",
            "--all",
            "--sampler",
            sampler,
            "--interval",
            "100ms",
            "-d",
            "1500ms",
            "-o",
        ])
        .arg(&out)
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let me = child.id();
    let o = child.wait_with_output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let rec = Recording::open(&out).unwrap();
    assert!(
        rec.processes().unwrap().len() > 3,
        "the machine's processes are recorded: {}",
        rec.processes().unwrap().len()
    );
    assert!(
        rec.processes()
            .unwrap()
            .iter()
            .any(|p| p.id.pid == std::process::id()),
        "{sampler}: this test process is recorded (the scope works)"
    );
    let mine: Vec<_> = rec
        .processes()
        .unwrap()
        .into_iter()
        .filter(|p| p.id.pid == me)
        .collect();
    assert!(
        mine.is_empty(),
        "{sampler}: memleak recorded itself: {mine:?}"
    );
}

#[test]
fn all_scope_never_records_memleak_itself_procfs() {
    check_never_records_itself("procfs");
}

#[test]
fn all_scope_never_records_memleak_itself_ebpf() {
    require_ebpf!();
    check_never_records_itself("ebpf");
}

/// A recording whose text fields carry shell syntax and terminal escapes,
/// with one process leaking so every report lists it.
fn hostile_recording(path: &Path, evil: &str) {
    let mut w = Writer::create(path).unwrap();
    for (k, v) in [
        ("host", evil),
        ("kernel", evil),
        // The sampler field too: the table report prints it in its header.
        ("sampler", evil),
        ("sampler_reason", evil),
        ("interval_ns", "500000000"),
        ("start_ns", "1000000000"),
        ("mem_total", "8589934592"),
        ("scope", evil),
        ("command", evil),
        ("exit_code", "0"),
    ] {
        w.set_meta(k, v).unwrap();
    }
    w.note(1_000_000_000, evil).unwrap();
    w.add_markers(&[(1_000_000_000, "begin", evil)]).unwrap();
    for i in 0..80u64 {
        let t = 1_000_000_000 + i * 500_000_000;
        let obs: Vec<Observation> = (0..2u32)
            .map(|p| Observation {
                id: ProcId {
                    pid: 4242 + p,
                    start_ns: 900_000_000,
                },
                at_ns: t,
                mem: Mem {
                    vm: (100 << 20) + ((i * 10) << 20) * u64::from(p == 0),
                    rss_anon: (50 << 20) + ((i * 10) << 20) * u64::from(p == 0),
                    ..Mem::default()
                },
                meta: ProcMeta {
                    ppid: 1,
                    comm: evil.chars().take(15).collect(),
                    cmdline: Some(evil.to_string()),
                },
                exit: (i == 79).then_some(Exit {
                    at_ns: t,
                    code: Some(0),
                    stop_signal: None,
                    oom_killed: false,
                }),
            })
            .collect();
        w.write_snapshot(t, &obs).unwrap();
    }
    w.set_counters(&vec![("procs_map_full", 0)]).unwrap();
    w.finish(41_000_000_000).unwrap();
}

#[test]
fn recorded_text_is_never_executed_nor_sent_raw_to_the_terminal() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().display().to_string();
    let evil = format!(
        "$(touch {d}/pwned1)`touch {d}/pwned2`;touch {d}/pwned3|touch {d}/pwned4&&touch {d}/pwned5 \
         \u{1b}[2J\u{1b}]0;owned\u{7}\r\n::error::forged annotation\n"
    );
    let rec = dir.path().join("hostile.memleak");
    hostile_recording(&rec, &evil);
    let html = dir.path().join("html");
    let runs: Vec<Vec<String>> = vec![
        vec!["info".into(), "-p".into()],
        vec!["analyze".into()],
        vec!["analyze".into(), "--format".into(), "json".into()],
        vec!["analyze".into(), "--format".into(), "junit".into()],
        vec!["analyze".into(), "--format".into(), "github".into()],
        vec![
            "analyze".into(),
            "--format".into(),
            "html".into(),
            "--report".into(),
            html.display().to_string(),
        ],
    ];
    let mut saw_leak_listed = false;
    for args in &runs {
        let o = Command::new(memleak_bin())
            .args(args)
            .arg(&rec)
            .current_dir(dir.path())
            .output()
            .unwrap();
        let what = format!("memleak {}", args.join(" "));
        assert!(
            o.status.success(),
            "{what}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        for (stream, bytes) in [("stdout", &o.stdout), ("stderr", &o.stderr)] {
            let text = String::from_utf8_lossy(bytes);
            assert!(
                !text.contains('\u{1b}'),
                "{what}: raw ESC on {stream}: {text:?}"
            );
            assert!(!text.contains('\u{7}'), "{what}: raw BEL on {stream}");
            assert!(
                !text.lines().any(|l| l.starts_with("::error::forged")),
                "{what}: a recorded newline forged a line on {stream}: {text}"
            );
        }
        saw_leak_listed |= String::from_utf8_lossy(&o.stdout).contains("pwned1");
    }
    assert!(
        saw_leak_listed,
        "the hostile text was displayed (escaped) somewhere"
    );
    for entry in walk(dir.path()) {
        if entry.ends_with(".html") || entry.ends_with(".svg") {
            let text = std::fs::read_to_string(&entry).unwrap();
            assert!(!text.contains('\u{1b}'), "{entry}: raw ESC");
            assert!(
                !text.contains("<touch") && !text.contains("\";touch"),
                "{entry}"
            );
        }
    }
    for i in 1..=5 {
        assert!(
            !dir.path().join(format!("pwned{i}")).exists(),
            "something from the recording was executed (pwned{i})"
        );
    }
    // Nothing was run: no process named after the payload lingers either.
    std::thread::sleep(Duration::from_millis(100));
    assert!(!dir.path().join("pwned1").exists());
}

fn walk(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                out.extend(walk(&p));
            } else {
                out.push(p.display().to_string());
            }
        }
    }
    out
}

/// Waits for `child` with a deadline (killing it when it runs out) and
/// returns its exit code and peak resident memory in bytes (`wait4`).
fn wait_with_deadline(child: Child, deadline: Duration) -> (Option<i32>, u64) {
    let pid = child.id() as i32;
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let watchdog = {
        let done = std::sync::Arc::clone(&done);
        std::thread::spawn(move || {
            let end = std::time::Instant::now() + deadline;
            while std::time::Instant::now() < end {
                if done.load(std::sync::atomic::Ordering::Relaxed) {
                    return false;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            // Its command too: a hung writer would otherwise outlive the test.
            let mut tree = vec![pid as u32];
            let mut i = 0;
            while i < tree.len() {
                tree.extend(memleak_tests::children(tree[i]));
                i += 1;
            }
            for p in tree.into_iter().rev() {
                // SAFETY: our own child (not yet reaped: we are blocked in
                // wait4) and its descendants.
                unsafe { libc::kill(p as i32, libc::SIGKILL) };
            }
            true
        })
    };
    let mut status = 0;
    // SAFETY: rusage is plain data; wait4 fills it.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: waiting for our own child.
    let r = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    assert_eq!(r, pid, "wait4: {}", std::io::Error::last_os_error());
    done.store(true, std::sync::atomic::Ordering::Relaxed);
    let killed = watchdog.join().unwrap();
    assert!(
        !killed,
        "memleak did not finish within {deadline:?}: it hung"
    );
    std::mem::forget(child);
    let code = libc::WIFEXITED(status).then(|| libc::WEXITSTATUS(status));
    (code, usage.ru_maxrss as u64 * 1024)
}

#[test]
fn hostile_marker_lines_neither_stop_the_markers_nor_hang_writers_nor_grow_memory() {
    let dir = tempfile::tempdir().unwrap();
    let rec = dir.path().join("markers.memleak");
    let seen = dir.path().join("seen");
    // Blocking opens (`>`), as the documented shell recipe does: if the
    // reader stopped, they would wait forever.
    let script = r#"
        M="$MEMLEAK_MARKERS"
        printf '%s\n' "$M" > "$1"
        stat -c %a "$(dirname "$M")" >> "$1"
        head -c 134217728 /dev/zero | tr '\0' x > "$M"
        printf '\nbegin first\n' > "$M"
        printf 'begin \377\376 not utf-8\n' > "$M"
        printf 'end first\n' > "$M"
        head -c 1048576 /dev/zero | tr '\0' '\n' > "$M"
        printf 'mark last\n' > "$M"
        sleep 0.3
    "#;
    let child = Command::new(memleak_bin())
        .args(["record", "-q", "--sampler", "procfs", "-i", "50ms", "-o"])
        .arg(&rec)
        .args(["--", "sh", "-c", script, "sh"])
        .arg(&seen)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let (code, peak) = wait_with_deadline(child, Duration::from_secs(60));
    assert_eq!(code, Some(0));
    assert!(
        peak < 96 << 20,
        "a 128 MiB marker line without a newline grew memleak to {} MiB",
        peak >> 20
    );
    let markers: Vec<(String, String)> = Recording::open(&rec)
        .unwrap()
        .markers()
        .unwrap()
        .into_iter()
        .map(|(_, k, n)| (k, n))
        .collect();
    let expect: Vec<(String, String)> = [("begin", "first"), ("end", "first"), ("mark", "last")]
        .iter()
        .map(|(k, n)| (k.to_string(), n.to_string()))
        .collect();
    assert_eq!(markers, expect);

    // The FIFO lives in a fresh private directory, removed at the end.
    let seen = std::fs::read_to_string(&seen).unwrap();
    let mut lines = seen.lines();
    let fifo = Path::new(lines.next().unwrap());
    assert_eq!(lines.next(), Some("700"), "FIFO directory mode");
    let parent = fifo.parent().unwrap();
    assert_ne!(
        parent,
        std::env::temp_dir(),
        "FIFO directly in the temp dir"
    );
    assert!(!parent.exists(), "{} left behind", parent.display());
}

/// Polls `f` every 20 ms until it returns `Some`, failing after 20 s.
fn wait_until<T>(what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(std::time::Instant::now() < deadline, "timed out: {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// `--pid` of a shell whose children were started before the recording:
/// they exist already, so no fork is ever seen, yet they are in scope and
/// a leaking one must be recorded with its growth.
fn check_pid_scope_takes_existing_children(sampler: &str) {
    let wl = memleak_tests::workload();
    let script =
        format!("{wl} leak --rate-mib 8 --seconds 8 & {wl} stable --mib 8 --seconds 8 & wait");
    let parent = ChildGuard(Command::new("sh").args(["-c", &script]).spawn().unwrap());
    let sh = parent.0.id();
    let kids = wait_until("the shell's two workload children", || {
        let k: Vec<u32> = memleak_tests::children(sh)
            .into_iter()
            .filter(|&c| memleak_tests::comm(c) == "memleak-workloa")
            .collect();
        (k.len() == 2).then_some(k)
    });
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join(format!("pid-kids-{sampler}.memleak"));
    let o = Command::new(memleak_bin())
        .args(["record", "-q", "--sampler", sampler])
        .args([
            "--interval",
            "100ms",
            "-d",
            "2s",
            "--pid",
            &sh.to_string(),
            "-o",
        ])
        .arg(&out)
        .output()
        .unwrap();
    drop(parent);
    for k in &kids {
        // SAFETY: killing the workload children this test started.
        unsafe { libc::kill(*k as i32, libc::SIGKILL) };
    }
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let rec = Recording::open(&out).unwrap();
    for k in &kids {
        let p = rec
            .processes()
            .unwrap()
            .into_iter()
            .find(|p| p.id.pid == *k)
            .unwrap_or_else(|| {
                panic!(
                    "{sampler}: child {k} that existed at the start is recorded: {:?}",
                    rec.processes().unwrap()
                )
            });
        let raw = rec.raw_samples(&p).unwrap();
        assert!(!raw.is_empty(), "{sampler}: with samples");
    }
    let grew = kids
        .iter()
        .filter_map(|k| {
            rec.processes()
                .unwrap()
                .into_iter()
                .find(|p| p.id.pid == *k)
        })
        .map(|p| {
            let raw = rec.raw_samples(&p).unwrap();
            let first = raw.first().unwrap().1.rss_anon;
            let last = raw.last().unwrap().1.rss_anon;
            last.saturating_sub(first)
        })
        .max()
        .unwrap_or(0);
    assert!(
        grew >= 8 * 1024 * 1024,
        "{sampler}: the leaking child's growth is recorded ({grew} bytes)"
    );
}

#[test]
fn pid_scope_records_children_that_existed_before_recording_ebpf() {
    require_ebpf!();
    check_pid_scope_takes_existing_children("ebpf");
}

#[test]
fn pid_scope_records_children_that_existed_before_recording_procfs() {
    check_pid_scope_takes_existing_children("procfs");
}

/// Removes a test cgroup on drop (once its processes are gone).
struct CgroupDir(std::path::PathBuf);
impl Drop for CgroupDir {
    fn drop(&mut self) {
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while std::fs::remove_dir(&self.0).is_err() && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// `--cgroup`: a process that leaves the cgroup is out of scope from then
/// on, and so are the children it starts afterwards. The shell joins the
/// cgroup, is seen, leaves it, then starts a leaking child and execs a
/// leaking program itself: neither the child nor the shell's new program
/// may appear in the recording.
fn check_cgroup_leaver_stops_being_recorded(sampler: &str) {
    let root = memleak::sysinfo::cgroup2_mount();
    let cg = root.join(format!(
        "memleak-test-leave-{sampler}-{}",
        std::process::id()
    ));
    if let Err(e) = std::fs::create_dir(&cg) {
        eprintln!(
            "SKIPPED: cannot create a cgroup under {}: {e}",
            root.display()
        );
        return;
    }
    let cg = CgroupDir(cg);
    let wl = memleak_tests::workload();
    let dir = tempfile::tempdir().unwrap();
    let go = dir.path().join("go");
    // Our own cgroup is where the shell goes back to.
    let home = std::fs::read_to_string("/proc/self/cgroup")
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("0::").map(str::to_string))
        .expect("a cgroup v2 line");
    let home = root.join(home.trim_start_matches('/'));
    let script = format!(
        "echo $$ > {cg}/cgroup.procs || exit 9
         while [ ! -e {go} ]; do sleep 0.05; done
         echo $$ > {home}/cgroup.procs || exit 10
         {wl} leak --rate-mib 10 --seconds 2 &
         exec {wl} leak --rate-mib 10 --seconds 2",
        cg = cg.0.display(),
        go = go.display(),
        home = home.display(),
    );
    let out = dir.path().join(format!("cg-leave-{sampler}.memleak"));
    let mut recorder = Command::new(memleak_bin())
        .args(["record", "-q", "--sampler", sampler, "--interval", "100ms"])
        .args(["-d", "6s", "--cgroup"])
        .arg(&cg.0)
        .arg("-o")
        .arg(&out)
        .spawn()
        .unwrap();
    let mut shell = ChildGuard(Command::new("sh").args(["-c", &script]).spawn().unwrap());
    let sh = shell.0.id();
    // The shell leaves only once the recording holds it (committed rows
    // are readable while the recorder writes: WAL mode).
    wait_until("the recorder stores the shell while it is inside", || {
        let db =
            rusqlite::Connection::open_with_flags(&out, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
                .ok()?;
        db.query_row("SELECT 1 FROM processes WHERE pid = ?1", [sh], |_| Ok(()))
            .ok()
    });
    std::fs::write(&go, "").unwrap();
    let st = shell.0.wait().unwrap();
    assert!(st.success(), "the shell moved itself out: {st:?}");
    assert!(recorder.wait().unwrap().success());
    let rec = Recording::open(&out).unwrap();
    let p = rec
        .processes()
        .unwrap()
        .into_iter()
        .find(|p| p.id.pid == sh)
        .unwrap_or_else(|| panic!("{sampler}: the shell was recorded while inside"));
    let leakers: Vec<_> = rec
        .processes()
        .unwrap()
        .into_iter()
        .filter(|p| p.comm.starts_with("memleak-work"))
        .collect();
    assert!(
        leakers.is_empty(),
        "{sampler}: processes outside the cgroup were recorded: {leakers:?}"
    );
    let peak = rec
        .raw_samples(&p)
        .unwrap()
        .iter()
        .map(|(_, m)| m.rss_anon)
        .max()
        .unwrap_or(0);
    assert!(
        peak < 4 * 1024 * 1024,
        "{sampler}: the shell's program after it left was recorded (peak anon {peak})"
    );
}

#[test]
fn cgroup_scope_stops_recording_a_process_that_left_ebpf() {
    require_ebpf!();
    check_cgroup_leaver_stops_being_recorded("ebpf");
}

#[test]
fn cgroup_scope_stops_recording_a_process_that_left_procfs() {
    check_cgroup_leaver_stops_being_recorded("procfs");
}
