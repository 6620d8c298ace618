//! A process the kernel's OOM killer kills is recorded as such, through the
//! eBPF sampler's `oom/mark_victim` program or the procfs sampler's reading
//! of the cgroup's `oom_kill` count, and reaches the report as
//! `end.kind = "oom_killed"`.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use memleak::record::SamplerChoice;
use memleak_tests::{memleak_bin, named, record_command, require_ebpf, require_feature, workload};

const LIMIT: u64 = 64 * 1024 * 1024;

/// A memory cgroup made for the test, emptied and removed on drop (also when
/// the test fails half-way).
struct MemCgroup {
    dir: PathBuf,
}

impl MemCgroup {
    /// A cgroup v2 child with the memory controller, or, on hosts whose
    /// memory controller is still bound to a v1 hierarchy (hybrid mounts),
    /// a v1 memory cgroup: the OOM killer and its tracepoint are the same.
    /// `Err` says why neither is possible.
    /// `tag` keeps the tests of one process (run in parallel) apart.
    fn create(tag: &str) -> Result<MemCgroup, String> {
        let name = format!("memleak-test-oom-{tag}-{}", std::process::id());
        let v2 = memleak::sysinfo::cgroup2_mount();
        let controllers =
            std::fs::read_to_string(v2.join("cgroup.controllers")).unwrap_or_default();
        if controllers.split_whitespace().any(|c| c == "memory") {
            // Children get the controller only when the parent delegates it.
            let _ = std::fs::write(v2.join("cgroup.subtree_control"), "+memory");
            let cg = MemCgroup::make(v2.join(name))?;
            cg.set("memory.max", LIMIT)?;
            // Without swap the kernel cannot page the leak out and must kill;
            // the file is absent when swap accounting is off (no swap either).
            if cg.dir.join("memory.swap.max").exists() {
                cg.set("memory.swap.max", 0)?;
            }
            return Ok(cg);
        }
        let v1 = v1_memory_mount().ok_or_else(|| {
            format!(
                "cgroup v2 at {} has no memory controller ({controllers:?}) and no v1 memory \
                 hierarchy is mounted",
                v2.display()
            )
        })?;
        let cg = MemCgroup::make(v1.join(name))?;
        cg.set("memory.limit_in_bytes", LIMIT)?;
        if cg.dir.join("memory.memsw.limit_in_bytes").exists() {
            cg.set("memory.memsw.limit_in_bytes", LIMIT)?;
        }
        Ok(cg)
    }

    fn make(dir: PathBuf) -> Result<MemCgroup, String> {
        std::fs::create_dir(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        Ok(MemCgroup { dir })
    }

    fn set(&self, file: &str, value: u64) -> Result<(), String> {
        let path = self.dir.join(file);
        std::fs::write(&path, value.to_string())
            .map_err(|e| format!("cannot write {value} to {}: {e}", path.display()))
    }

    fn pids(&self) -> Vec<i32> {
        std::fs::read_to_string(self.dir.join("cgroup.procs"))
            .unwrap_or_default()
            .lines()
            .filter_map(|l| l.trim().parse().ok())
            .collect()
    }
}

impl Drop for MemCgroup {
    fn drop(&mut self) {
        // A cgroup with members cannot be removed: kill them, and wait for
        // the exits (bounded: a leftover directory is better than a hang).
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let pids = self.pids();
            if pids.is_empty() || Instant::now() > deadline {
                break;
            }
            for pid in pids {
                // SAFETY: plain syscall on pids read from the cgroup.
                unsafe { libc::kill(pid, libc::SIGKILL) };
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        while std::fs::remove_dir(&self.dir).is_err() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// The v1 hierarchy that has the memory controller, from /proc/self/mounts.
fn v1_memory_mount() -> Option<PathBuf> {
    let mounts = std::fs::read_to_string("/proc/self/mounts").ok()?;
    mounts.lines().find_map(|l| {
        let f: Vec<&str> = l.split_whitespace().collect();
        (f.len() >= 4 && f[2] == "cgroup" && f[3].split(',').any(|o| o == "memory"))
            .then(|| PathBuf::from(f[1]))
    })
}

fn analyse_json(file: &Path) -> serde_json::Value {
    let out = std::process::Command::new(memleak_bin())
        .args(["analyze", file.to_str().unwrap(), "--format", "json"])
        .output()
        .expect("memleak analyze");
    assert!(
        out.status.code().is_some_and(|c| c == 0 || c == 1),
        "analyze failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON report");
    // The new end kind is one the published schema allows.
    let schema: serde_json::Value = serde_json::from_str(include_str!(
        "../../memleak-user/src/report/schema/report.schema.json"
    ))
    .unwrap();
    let validator = jsonschema::validator_for(&schema).expect("schema compiles");
    let errors: Vec<String> = validator
        .iter_errors(&report)
        .map(|e| format!("{e} at {}", e.instance_path()))
        .collect();
    assert!(errors.is_empty(), "report violates its schema: {errors:#?}");
    report
}

#[test]
fn a_process_killed_by_the_oom_killer_is_recorded_as_such_ebpf() {
    require_ebpf!();
    oom_killed_is_recorded(SamplerChoice::Ebpf);
}

/// procfs infers the kill from the cgroup's `oom_kill` count: the victim is
/// the only process that vanished from its cgroup.
#[test]
fn a_process_killed_by_the_oom_killer_is_recorded_as_such_procfs() {
    oom_killed_is_recorded(SamplerChoice::Procfs);
}

fn oom_killed_is_recorded(sampler: SamplerChoice) {
    let cgroup = MemCgroup::create(&format!("{sampler:?}").to_lowercase());
    require_feature!("a memory cgroup", cgroup.as_ref().err());
    let cgroup = cgroup.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let wl = workload();
    // The shell joins the cgroup and becomes the leaker: 16 MiB/s for far
    // longer than the 64 MiB limit allows, so only the OOM killer ends it
    // (within about 4 s), with enough points for the analysis to judge.
    let script = format!(
        "echo $$ > {}/cgroup.procs || exit 97; exec {wl} leak --rate-mib 16 --seconds 600",
        cgroup.dir.display()
    );
    let rec = record_command(
        dir.path(),
        sampler,
        Duration::from_millis(100),
        &["sh", "-c", &script],
    );
    let procs = named(&rec, "memleak-workloa");
    assert_eq!(procs.len(), 1, "{:?}", rec.processes().unwrap());
    let p = &procs[0];
    if sampler == SamplerChoice::Ebpf {
        assert_eq!(p.exit_code, Some(libc::SIGKILL), "{p:?}");
    }
    assert!(p.oom_killed, "the OOM killer's victim is marked: {p:?}");
    // The mark is the victim's alone (the program runs in whichever task
    // allocated, so it must not mark the current one).
    let marked = rec
        .processes()
        .unwrap()
        .into_iter()
        .filter(|q| q.oom_killed)
        .count();
    assert_eq!(marked, 1, "{:?}", rec.processes().unwrap());

    let info = std::process::Command::new(memleak_bin())
        .args(["info", rec.path().to_str().unwrap()])
        .output()
        .expect("memleak info");
    let info = String::from_utf8_lossy(&info.stdout);
    assert!(
        info.contains(&format!(
            "1 killed by the kernel's OOM killer: {} (memleak-workloa)",
            p.id.pid
        )),
        "{info}"
    );

    let report = analyse_json(rec.path());
    let listed = report["processes"]
        .as_array()
        .unwrap()
        .iter()
        .chain(report["skipped"].as_array().unwrap())
        .any(|q| q["pid"] == p.id.pid);
    assert!(listed, "pid {} in the report: {report:#}", p.id.pid);
    let analysed = report["processes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|q| q["pid"] == p.id.pid)
        .unwrap_or_else(|| panic!("pid {} analysed: {report:#}", p.id.pid));
    assert_eq!(analysed["end"]["kind"], "oom_killed", "{analysed:#}");
    // Dying of memory is evidence: a leak, saying so, and exit 3 with
    // --fail-on-leak.
    assert_eq!(analysed["verdict"], "leak", "{analysed:#}");
    assert_eq!(
        analysed["findings"][0]["evidence"], "oom_killed",
        "{analysed:#}"
    );
    let gate = std::process::Command::new(memleak_bin())
        .args(["analyze", rec.path().to_str().unwrap(), "--fail-on-leak"])
        .output()
        .expect("memleak analyze --fail-on-leak");
    let table = String::from_utf8_lossy(&gate.stdout);
    assert_eq!(gate.status.code(), Some(3), "{table}");
    assert!(
        table.contains("evidence: died of memory: OOM-killed"),
        "{table}"
    );
}
