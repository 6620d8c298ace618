//! Helpers for memleak's end-to-end tests: locate the binaries, record a
//! workload with a chosen sampler, and skip (loudly) when eBPF cannot load.

use std::path::{Path, PathBuf};
use std::time::Duration;

use memleak::record::{record, RecordOptions, SamplerChoice};
use memleak::sample::ebpf::EbpfHook;
use memleak::sample::Scope;
use memleak::store::{ProcessInfo, Recording};

pub const MIB: u64 = 1024 * 1024;

/// `target/<profile>/` of the running test binary.
pub fn target_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("current_exe");
    // target/<profile>/deps/<test-binary>
    exe.parent()
        .and_then(Path::parent)
        .expect("test binary lives in target/<profile>/deps")
        .to_path_buf()
}

/// The `memleak` binary built by the same cargo invocation
/// (`cargo xtask test` builds the workspace before testing).
pub fn memleak_bin() -> PathBuf {
    let p = target_dir().join("memleak");
    assert!(
        p.exists(),
        "{} is missing: build it first with `cargo build -p memleak-user` (cargo xtask test does)",
        p.display()
    );
    p
}

/// Why the eBPF sampler cannot run here, or `None` when it can. A feature
/// probe (load it), not a privilege guess.
pub fn ebpf_unavailable() -> Option<String> {
    if !memleak::sample::ebpf::built_in() {
        return Some("this build has no eBPF object (run `cargo xtask setup`)".into());
    }
    match memleak::sample::ebpf::EbpfSampler::new(Scope::Tree(Vec::new()), std::process::id(), 1024)
    {
        Ok(_) => None,
        Err(e) => Some(e.to_string()),
    }
}

/// Skips the calling test with a printed reason when eBPF is unavailable,
/// unless MEMLEAK_REQUIRE_EBPF=1 (set by `cargo xtask test` when running as
/// root), where a skip would hide a broken sampler and fails instead.
#[macro_export]
macro_rules! require_ebpf {
    () => {
        $crate::require_feature!("eBPF sampler", $crate::ebpf_unavailable())
    };
}

/// The rule of [`require_ebpf!`] and [`require_locate!`]: when `probe`
/// gives a reason, skip the calling test with it, or fail under
/// MEMLEAK_REQUIRE_EBPF=1.
#[doc(hidden)]
#[macro_export]
macro_rules! require_feature {
    ($what:literal, $probe:expr) => {
        if let Some(why) = $probe {
            if std::env::var_os("MEMLEAK_REQUIRE_EBPF").is_some_and(|v| v == "1") {
                panic!(
                    concat!(
                        $what,
                        " required (MEMLEAK_REQUIRE_EBPF=1) but unavailable: {}"
                    ),
                    why
                );
            }
            eprintln!(concat!("SKIPPED: ", $what, " unavailable: {}"), why);
            return;
        }
    };
}

/// Records `argv` (its process tree) with `sampler` at `interval` and opens
/// the recording.
pub fn record_command(
    dir: &Path,
    sampler: SamplerChoice,
    interval: Duration,
    argv: &[&str],
) -> Recording {
    record_command_with(dir, sampler, EbpfHook::default(), interval, argv)
}

/// [`record_command`] with a chosen eBPF hook.
pub fn record_command_with(
    dir: &Path,
    sampler: SamplerChoice,
    hook: EbpfHook,
    interval: Duration,
    argv: &[&str],
) -> Recording {
    let output = dir.join(format!("rec-{sampler:?}-{hook:?}.memleak"));
    let opts = RecordOptions {
        output: output.clone(),
        interval,
        duration: None,
        sampler,
        scope: Scope::Tree(Vec::new()),
        command: Some(argv.iter().map(|s| s.to_string()).collect()),
        max_procs: 4096,
        ebpf_hook: hook,
        progress: false,
        origin: "record",
        thin_to: None,
        locate: None,
        kill_after: memleak::record::KILL_AFTER,
    };
    let outcome = record(&opts).expect("recording");
    assert_eq!(
        outcome.sampler,
        match sampler {
            SamplerChoice::Procfs => "procfs",
            _ => "ebpf",
        }
    );
    Recording::open(&output).expect("open recording")
}

/// Options for an eBPF recording of a whole scope (no command) for
/// `duration`, with the default map size and the default hook.
pub fn ebpf_scope_options(
    output: PathBuf,
    scope: Scope,
    interval: Duration,
    duration: Duration,
) -> RecordOptions {
    RecordOptions {
        output,
        interval,
        duration: Some(duration),
        sampler: SamplerChoice::Ebpf,
        scope,
        command: None,
        max_procs: memleak::sample::ebpf::DEFAULT_MAX_PROCS,
        ebpf_hook: EbpfHook::default(),
        progress: false,
        origin: "record",
        thin_to: None,
        locate: None,
        kill_after: memleak::record::KILL_AFTER,
    }
}

/// Waits until the recorder writing `output` has committed its first
/// snapshot (the sampler is loaded and looking), failing after 60 s. Tests
/// start the processes they watch after this rather than after a fixed
/// sleep: loading the eBPF programs takes from 0.3 s to several seconds on
/// a loaded machine.
pub fn wait_until_recording(output: &Path) {
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        if Recording::open(output).is_ok_and(|r| !r.ticks.is_empty()) {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{} never got a first snapshot",
            output.display()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

pub fn workload() -> String {
    target_dir().join("memleak-workload").display().to_string()
}

/// Children of `pid` (from /proc/PID/task/*/children).
pub fn children(pid: u32) -> Vec<u32> {
    let mut out = Vec::new();
    if let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) {
        for t in tasks.flatten() {
            if let Ok(s) = std::fs::read_to_string(t.path().join("children")) {
                out.extend(s.split_whitespace().filter_map(|p| p.parse::<u32>().ok()));
            }
        }
    }
    out
}

/// The current name of `pid` ("" when it is gone).
pub fn comm(pid: u32) -> String {
    std::fs::read_to_string(format!("/proc/{pid}/comm"))
        .unwrap_or_default()
        .trim()
        .to_string()
}

/// Waits (up to 20 s) until `pid` has a child named `name`: the recorder
/// has loaded its sampler and started the command. Returns the child.
pub fn wait_for_child_named(pid: u32, name: &str) -> u32 {
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(c) = children(pid).into_iter().find(|&c| comm(c) == name) {
            return c;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the command `{name}` never started"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Processes of the recording whose last name is `comm`.
pub fn named(rec: &Recording, comm: &str) -> Vec<ProcessInfo> {
    let all = rec.processes().expect("processes");
    all.into_iter().filter(|p| p.comm == comm).collect()
}

/// Growth of a metric of one process after its exec: peak minus the value
/// right after exec, in bytes.
pub fn growth_after_exec(
    rec: &Recording,
    p: &ProcessInfo,
    metric: fn(&memleak::sample::Mem) -> u64,
) -> u64 {
    let names = rec.names(p).expect("names");
    let exec_ns = names.last().map(|(t, _)| *t).unwrap_or(0);
    let raw = rec.raw_samples(p).expect("samples");
    let after: Vec<u64> = raw
        .iter()
        .filter(|(t, _)| *t >= exec_ns)
        .map(|(_, m)| metric(m))
        .collect();
    assert!(!after.is_empty(), "no samples after exec for {}", p.comm);
    let base = after[0];
    let peak = after.iter().copied().max().unwrap_or(base);
    peak.saturating_sub(base)
}

/// Whether the tests run in CI (`CI=true`), where a missing tool is a
/// failure rather than a skip.
pub fn on_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true")
}

/// A child process that is stopped and reaped when dropped, also when an
/// assertion fails first: SIGTERM (so a `memleak watch` or `record` ends
/// its file cleanly), then SIGKILL after 5 s.
pub struct ChildGuard(pub std::process::Child);

impl ChildGuard {
    pub fn id(&self) -> u32 {
        self.0.id()
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        // SAFETY: signalling our own child, not yet reaped.
        unsafe { libc::kill(self.0.id() as i32, libc::SIGTERM) };
        let end = std::time::Instant::now() + Duration::from_secs(5);
        while std::time::Instant::now() < end {
            if let Ok(Some(_)) = self.0.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A copy of the memleak binary that any user can run, in a fresh 0755
/// directory under /tmp, for tests that drop to another user: the build's
/// own `target/` may sit under a directory only its owner can enter (a
/// private checkout). Keep the directory alive while the copy is used.
pub fn memleak_bin_for_anyone() -> (tempfile::TempDir, PathBuf) {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::Builder::new()
        .prefix("memleak-bin")
        .tempdir_in("/tmp")
        .expect("temporary directory in /tmp");
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let bin = dir.path().join("memleak");
    std::fs::copy(memleak_bin(), &bin).expect("copy the memleak binary");
    std::fs::set_permissions(&bin, std::fs::Permissions::from_mode(0o755)).unwrap();
    (dir, bin)
}

/// A place to run memleak as nobody: a copy of the binary any user can
/// reach ([`memleak_bin_for_anyone`]) and an output directory anyone can
/// write, removed on drop.
pub struct NobodySandbox {
    _dir: tempfile::TempDir,
    pub bin: PathBuf,
    pub out: PathBuf,
}

impl NobodySandbox {
    /// `setpriv` running the sandbox's memleak as nobody (uid and gid
    /// 65534, no groups) from `/`, with `options` for setpriv itself
    /// (capability sets); add memleak's arguments.
    pub fn command(&self, options: &[String]) -> std::process::Command {
        let mut cmd = std::process::Command::new("setpriv");
        cmd.args(["--reuid", "65534", "--regid", "65534", "--clear-groups"])
            .args(options)
            .arg("--")
            .arg(&self.bin)
            .current_dir("/");
        cmd
    }
}

/// A [`NobodySandbox`], or why one cannot be made here (not root, so no
/// switching user; no `setpriv`).
pub fn nobody_sandbox() -> Result<NobodySandbox, String> {
    use std::os::unix::fs::PermissionsExt;
    // SAFETY: getuid has no preconditions.
    if unsafe { libc::getuid() } != 0 {
        return Err("not root: cannot switch to another user".into());
    }
    if std::process::Command::new("setpriv")
        .arg("--version")
        .output()
        .is_err()
    {
        return Err("setpriv is not installed".into());
    }
    let (dir, bin) = memleak_bin_for_anyone();
    let out = dir.path().join("out");
    std::fs::create_dir(&out).unwrap();
    std::fs::set_permissions(&out, std::fs::Permissions::from_mode(0o777)).unwrap();
    Ok(NobodySandbox {
        _dir: dir,
        bin,
        out,
    })
}

/// Runs `cmd` to the end and returns its output, failing the test with the
/// command's stderr when it did not succeed.
pub fn output_ok(cmd: &mut std::process::Command) -> std::process::Output {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} exited with {}:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// Why `memleak locate` cannot run here (a feature probe: load its
/// program), or None.
pub fn locate_unavailable() -> Option<String> {
    match memleak::locate::Locator::new(memleak::locate::DEFAULT_PERIOD) {
        Ok(_) => None,
        Err(e) => Some(e.to_string()),
    }
}

/// Skips the calling test with a printed reason when locate is
/// unavailable; MEMLEAK_REQUIRE_EBPF=1 (root under `cargo xtask test`)
/// turns the skip into a failure, like [`require_ebpf!`].
#[macro_export]
macro_rules! require_locate {
    () => {
        $crate::require_feature!("locate", $crate::locate_unavailable())
    };
}

/// Builds tests/data/`source` with the compiler command `compiler` and
/// `flags` into `dir`, or None (with the reason printed) when that compiler
/// is missing; on CI that is a failure.
pub fn build_test_program(
    dir: &Path,
    compiler: &str,
    flags: &[&str],
    source: &str,
) -> Option<PathBuf> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("data")
        .join(source);
    let exe = dir.join(source.replace('.', "-"));
    let out = std::process::Command::new(compiler)
        .args(flags)
        .arg("-o")
        .arg(&exe)
        .arg(&src)
        .output();
    match out {
        Ok(o) if o.status.success() => Some(exe),
        Ok(o) => panic!(
            "{compiler} failed on {}: {}",
            src.display(),
            String::from_utf8_lossy(&o.stderr)
        ),
        Err(e) => {
            assert!(!on_ci(), "no {compiler} on CI: {e}");
            eprintln!("SKIPPED: no {compiler}: {e}");
            None
        }
    }
}

/// tests/data/leaky.c (three allocation sites, `leak_site` keeps its
/// memory, 25 MiB/s), built with frame pointers so every frame unwinds.
pub fn build_leaky(dir: &Path) -> Option<PathBuf> {
    build_test_program(
        dir,
        "cc",
        &["-O0", "-g", "-fno-omit-frame-pointer"],
        "leaky.c",
    )
}

/// A TCP port on 127.0.0.1 that was free a moment ago, for a server the
/// test starts (`--metrics`, a fake Prometheus).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}
