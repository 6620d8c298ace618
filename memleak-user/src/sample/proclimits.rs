//! The memory limits that apply to one process, read from procfs and the
//! cgroup filesystems while it is alive.
//!
//! A leak is urgent when *this process's* memory reaches *its* limit, and
//! the limits that matter are rarely memleak's own: a test harness sets
//! `ulimit -v` inside the command, a container puts it in a cgroup, a
//! runtime caps its heap with a flag. The recorder reads these for every
//! process it sees (and again after exec and now and then, since they
//! change) and stores them; the analyser projects against the nearest.
//!
//! What is read, and why each counts:
//! - `/proc/PID/limits`: `RLIMIT_AS` (mmap/brk fail past it) and
//!   `RLIMIT_DATA` (private writable mappings fail past it);
//! - cgroup v2 `memory.max` (OOM kill) and `memory.high` (throttling and
//!   reclaim), the smallest up the hierarchy; cgroup v1
//!   `memory.limit_in_bytes`, likewise;
//! - runtime heap caps from the command line and environment: the JVM's
//!   `-Xmx` (also in `JAVA_TOOL_OPTIONS`, `_JAVA_OPTIONS`), V8's
//!   `--max-old-space-size` (also in `NODE_OPTIONS`), Go's `GOMEMLIMIT`.
//!
//! Everything here is best effort: a process that exits between two reads,
//! or whose files we may not read, simply has fewer limits (the analyser then
//! inherits its parent's, which fork copies).

use std::path::{Path, PathBuf};

/// One kind of limit, as stored in recordings (`limits.kind`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum LimitKind {
    RlimitAs,
    RlimitData,
    CgroupMax,
    CgroupHigh,
    CgroupV1,
    JavaXmx,
    NodeMaxOldSpace,
    GoMemLimit,
}

impl LimitKind {
    /// Every kind, in the order reports list them.
    pub const ALL: [LimitKind; 8] = [
        LimitKind::RlimitAs,
        LimitKind::RlimitData,
        LimitKind::CgroupMax,
        LimitKind::CgroupHigh,
        LimitKind::CgroupV1,
        LimitKind::JavaXmx,
        LimitKind::NodeMaxOldSpace,
        LimitKind::GoMemLimit,
    ];

    /// Stable name stored in recordings.
    pub fn name(self) -> &'static str {
        match self {
            LimitKind::RlimitAs => "rlimit_as",
            LimitKind::RlimitData => "rlimit_data",
            LimitKind::CgroupMax => "cgroup_max",
            LimitKind::CgroupHigh => "cgroup_high",
            LimitKind::CgroupV1 => "cgroup_v1_limit",
            LimitKind::JavaXmx => "java_xmx",
            LimitKind::NodeMaxOldSpace => "node_max_old_space",
            LimitKind::GoMemLimit => "gomemlimit",
        }
    }

    /// Short, for "512.0 MiB (cgroup memory.max)". Heap caps are
    /// projected with what the runtime holds besides its heap.
    pub fn describe(self) -> &'static str {
        match self {
            LimitKind::RlimitAs => "RLIMIT_AS",
            LimitKind::RlimitData => "RLIMIT_DATA",
            LimitKind::CgroupMax => "cgroup memory.max",
            LimitKind::CgroupHigh => "cgroup memory.high",
            LimitKind::CgroupV1 => "cgroup v1 memory limit",
            LimitKind::JavaXmx => "-Xmx heap cap + non-heap",
            LimitKind::NodeMaxOldSpace => "--max-old-space-size + non-heap",
            LimitKind::GoMemLimit => "GOMEMLIMIT",
        }
    }

    /// The kind a stored name stands for (see [`LimitKind::name`]).
    pub fn parse(s: &str) -> Option<LimitKind> {
        LimitKind::ALL.into_iter().find(|k| k.name() == s)
    }
}

/// The limits found for a process, each at most once, sorted by kind.
pub type ProcLimits = Vec<(LimitKind, u64)>;

/// A recorded limit: (ns since boot, kind, bytes; `None`: removed).
pub type LimitRow = (u64, LimitKind, Option<u64>);

/// Values at or above this are "unlimited" spelled as a number (cgroup v1
/// writes 2^63 rounded down to a page; RLIM_INFINITY is 2^64 - 1).
const UNLIMITED: u64 = 1 << 62;

/// Where the cgroup hierarchies are mounted: looked up once per recording,
/// not once per process.
#[derive(Clone, Debug)]
pub struct Mounts {
    pub v2: PathBuf,
    pub v1_memory: Option<PathBuf>,
}

impl Mounts {
    /// Reads where cgroup v2 is mounted (from /proc/self/mountinfo).
    pub fn detect() -> Mounts {
        Mounts {
            v2: crate::sysinfo::cgroup2_mount(),
            v1_memory: cgroup_v1_memory_mount(),
        }
    }
}

/// Reads every limit that applies to `pid`; empty when the process is gone.
pub fn read(pid: u32, mounts: &Mounts) -> ProcLimits {
    let proc_dir = PathBuf::from(format!("/proc/{pid}"));
    let mut out = ProcLimits::new();
    if let Ok(text) = std::fs::read_to_string(proc_dir.join("limits")) {
        out.extend(parse_rlimits(&text));
    }
    if let Ok(text) = std::fs::read_to_string(proc_dir.join("cgroup")) {
        out.extend(cgroup_limits(&text, mounts));
    }
    let cmdline = std::fs::read(proc_dir.join("cmdline")).unwrap_or_default();
    // environ needs ptrace access; without it the runtime caps set through
    // the environment are not seen (the command line's still are).
    let environ = std::fs::read(proc_dir.join("environ")).unwrap_or_default();
    out.extend(runtime_caps(&split_nul(&cmdline), &split_nul(&environ)));
    out.sort();
    out.dedup_by_key(|(k, _)| *k);
    out
}

fn split_nul(bytes: &[u8]) -> Vec<String> {
    bytes
        .split(|b| *b == 0)
        .filter(|s| !s.is_empty())
        .map(|s| String::from_utf8_lossy(s).into_owned())
        .collect()
}

/// Soft `Max address space` and `Max data size` of /proc/PID/limits text.
pub fn parse_rlimits(text: &str) -> ProcLimits {
    let mut out = ProcLimits::new();
    for line in text.lines() {
        let (kind, rest) = if let Some(r) = line.strip_prefix("Max address space") {
            (LimitKind::RlimitAs, r)
        } else if let Some(r) = line.strip_prefix("Max data size") {
            (LimitKind::RlimitData, r)
        } else {
            continue;
        };
        // Columns: soft, hard, units; "unlimited" or a number of bytes.
        if let Some(Ok(v)) = rest.split_whitespace().next().map(str::parse::<u64>) {
            if v > 0 && v < UNLIMITED {
                out.push((kind, v));
            }
        }
    }
    out
}

/// cgroup limits of a process from its /proc/PID/cgroup text.
fn cgroup_limits(text: &str, mounts: &Mounts) -> ProcLimits {
    let mut out = ProcLimits::new();
    if let Some(rel) = crate::sysinfo::parse_cgroup_v2_path(text) {
        let root = &mounts.v2;
        let dir = root.join(rel.trim_start_matches('/'));
        for (kind, file) in [
            (LimitKind::CgroupMax, "memory.max"),
            (LimitKind::CgroupHigh, "memory.high"),
        ] {
            if let Some(v) = smallest_up(&dir, root, file) {
                out.push((kind, v));
            }
        }
    }
    if let Some(rel) = parse_cgroup_v1_memory_path(text) {
        if let Some(mount) = &mounts.v1_memory {
            let dir = mount.join(rel.trim_start_matches('/'));
            if let Some(v) = smallest_up(&dir, mount, "memory.limit_in_bytes") {
                out.push((LimitKind::CgroupV1, v));
            }
        }
    }
    out
}

/// The smallest limit in `file` from `dir` up to and including `root`.
fn smallest_up(dir: &Path, root: &Path, file: &str) -> Option<u64> {
    dir.ancestors()
        .take_while(|d| d.starts_with(root))
        .filter_map(|d| std::fs::read_to_string(d.join(file)).ok())
        .filter_map(|t| parse_limit_value(&t))
        .min()
}

/// A cgroup limit file's value: bytes, or `max` / a huge number (none).
pub fn parse_limit_value(text: &str) -> Option<u64> {
    match text.trim() {
        "max" => None,
        t => t.parse::<u64>().ok().filter(|v| *v > 0 && *v < UNLIMITED),
    }
}

/// The path of the v1 `memory` controller line (`N:memory:/path`, possibly
/// `N:cpu,memory:/path`) of /proc/PID/cgroup text.
pub fn parse_cgroup_v1_memory_path(text: &str) -> Option<&str> {
    text.lines().find_map(|l| {
        let mut parts = l.splitn(3, ':');
        let (_, ctrls, path) = (parts.next()?, parts.next()?, parts.next()?);
        ctrls
            .split(',')
            .any(|c| c == "memory")
            .then_some(path)
            .filter(|p| p.starts_with('/'))
    })
}

/// Where the cgroup v1 memory controller is mounted, if it is.
fn cgroup_v1_memory_mount() -> Option<PathBuf> {
    let text = std::fs::read_to_string("/proc/self/mountinfo").ok()?;
    parse_cgroup_v1_memory_mount(&text)
}

/// The mount point of a `cgroup` (v1) filesystem with the `memory` option.
pub fn parse_cgroup_v1_memory_mount(mountinfo: &str) -> Option<PathBuf> {
    mountinfo.lines().find_map(|line| {
        let (left, right) = line.split_once(" - ")?;
        let mut r = right.split_whitespace();
        if r.next()? != "cgroup" {
            return None;
        }
        let super_opts = r.nth(1)?;
        if !super_opts.split(',').any(|o| o == "memory") {
            return None;
        }
        Some(PathBuf::from(left.split_whitespace().nth(4)?))
    })
}

/// Heap caps a managed runtime enforces on itself, from its argv and
/// environment (`KEY=VALUE` strings). The last occurrence wins, as in the
/// runtimes themselves.
pub fn runtime_caps(argv: &[String], env: &[String]) -> ProcLimits {
    let mut out = ProcLimits::new();
    let env_var = |key: &str| {
        env.iter()
            .rev()
            .find_map(|kv| kv.strip_prefix(key)?.strip_prefix('='))
    };
    let exe = argv
        .first()
        .map(|a| a.rsplit('/').next().unwrap_or(a))
        .unwrap_or("");
    // The JVM reads the option files first, then its command line.
    if exe == "java" || argv.iter().any(|a| a.starts_with("-Xmx")) {
        let from_env = ["JAVA_TOOL_OPTIONS", "_JAVA_OPTIONS"]
            .into_iter()
            .filter_map(env_var)
            .flat_map(|v| v.split_whitespace().map(str::to_string).collect::<Vec<_>>());
        let xmx = from_env
            .chain(argv.iter().cloned())
            .filter_map(|a| a.strip_prefix("-Xmx").and_then(parse_java_size))
            .next_back();
        if let Some(v) = xmx {
            out.push((LimitKind::JavaXmx, v));
        }
    }
    let node_opt = |a: &str| {
        a.strip_prefix("--max-old-space-size=")
            .or_else(|| a.strip_prefix("--max_old_space_size="))
            .and_then(|v| v.parse::<f64>().ok())
            .filter(|v| v.is_finite() && *v > 0.0)
            .map(|mib| (mib * 1048576.0) as u64)
    };
    if exe.starts_with("node") || argv.iter().any(|a| node_opt(a).is_some()) {
        let from_env = env_var("NODE_OPTIONS")
            .map(|v| v.split_whitespace().map(str::to_string).collect::<Vec<_>>())
            .unwrap_or_default();
        if let Some(v) = from_env
            .iter()
            .chain(argv)
            .filter_map(|a| node_opt(a))
            .next_back()
        {
            out.push((LimitKind::NodeMaxOldSpace, v));
        }
    }
    if let Some(v) = env_var("GOMEMLIMIT").and_then(parse_go_size) {
        out.push((LimitKind::GoMemLimit, v));
    }
    out
}

/// `-Xmx` values: `1g`, `512m`, `65536k`, `1073741824` (bytes).
pub fn parse_java_size(s: &str) -> Option<u64> {
    let s = s.trim();
    let (num, mult) = match s.chars().last()? {
        'k' | 'K' => (&s[..s.len() - 1], 1u64 << 10),
        'm' | 'M' => (&s[..s.len() - 1], 1 << 20),
        'g' | 'G' => (&s[..s.len() - 1], 1 << 30),
        't' | 'T' => (&s[..s.len() - 1], 1 << 40),
        _ => (s, 1),
    };
    num.parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(mult))
        .filter(|v| *v > 0)
}

/// `GOMEMLIMIT` values: bytes with an optional `B`, `KiB`, `MiB`, `GiB`,
/// `TiB` suffix; `off` means none.
pub fn parse_go_size(s: &str) -> Option<u64> {
    let s = s.trim();
    let units = [
        ("TiB", 1u64 << 40),
        ("GiB", 1 << 30),
        ("MiB", 1 << 20),
        ("KiB", 1 << 10),
        ("B", 1),
    ];
    let (num, mult) = units
        .iter()
        .find_map(|(u, m)| s.strip_suffix(u).map(|n| (n, *m)))
        .unwrap_or((s, 1));
    num.trim()
        .parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(mult))
        .filter(|v| *v > 0 && *v < UNLIMITED)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn rlimits_from_proc_limits() {
        let text = "Limit                     Soft Limit           Hard Limit           Units     \n\
                    Max cpu time              unlimited            unlimited            seconds   \n\
                    Max data size             unlimited            unlimited            bytes     \n\
                    Max address space         805306368            unlimited            bytes     \n";
        assert_eq!(parse_rlimits(text), vec![(LimitKind::RlimitAs, 805306368)]);
    }

    #[test]
    fn cgroup_values_and_paths() {
        assert_eq!(parse_limit_value("max\n"), None);
        assert_eq!(parse_limit_value("536870912\n"), Some(512 << 20));
        assert_eq!(parse_limit_value("9223372036854771712\n"), None);
        let text = "12:cpu,cpuacct:/a\n9:memory:/ci/job1\n0::/x\n";
        assert_eq!(parse_cgroup_v1_memory_path(text), Some("/ci/job1"));
        assert_eq!(parse_cgroup_v1_memory_path("0::/x\n"), None);
        let mi =
            "30 25 0:26 / /sys/fs/cgroup/memory rw,nosuid shared:12 - cgroup cgroup rw,memory\n";
        assert_eq!(
            parse_cgroup_v1_memory_mount(mi),
            Some(PathBuf::from("/sys/fs/cgroup/memory"))
        );
        let mi2 = "30 25 0:26 / /sys/fs/cgroup/cpu rw shared:12 - cgroup cgroup rw,cpu\n";
        assert_eq!(parse_cgroup_v1_memory_mount(mi2), None);
    }

    #[test]
    fn runtime_heap_caps() {
        assert_eq!(
            runtime_caps(&s(&["/usr/bin/java", "-Xmx1g", "-Xmx256m", "Main"]), &[]),
            vec![(LimitKind::JavaXmx, 256 << 20)]
        );
        assert_eq!(
            runtime_caps(
                &s(&["java", "Main"]),
                &s(&["JAVA_TOOL_OPTIONS=-Xms1m -Xmx2g"])
            ),
            vec![(LimitKind::JavaXmx, 2 << 30)]
        );
        assert_eq!(
            runtime_caps(&s(&["node", "--max-old-space-size=256", "a.js"]), &[]),
            vec![(LimitKind::NodeMaxOldSpace, 256 << 20)]
        );
        assert_eq!(
            runtime_caps(
                &s(&["node", "a.js"]),
                &s(&["NODE_OPTIONS=--max-old-space-size=64"])
            ),
            vec![(LimitKind::NodeMaxOldSpace, 64 << 20)]
        );
        assert_eq!(
            runtime_caps(&s(&["./server"]), &s(&["GOMEMLIMIT=512MiB"])),
            vec![(LimitKind::GoMemLimit, 512 << 20)]
        );
        assert!(runtime_caps(&s(&["./server"]), &s(&["GOMEMLIMIT=off"])).is_empty());
        assert!(runtime_caps(&s(&["python3", "-Xmxfoo"]), &[]).is_empty());
        assert_eq!(parse_java_size("65536k"), Some(64 << 20));
        assert_eq!(parse_java_size("0"), None);
    }

    #[test]
    fn reads_this_process() {
        // Our own limits file always parses; whatever it says, the kinds are
        // unique and sorted.
        let l = read(std::process::id(), &Mounts::detect());
        let mut kinds: Vec<_> = l.iter().map(|(k, _)| *k).collect();
        kinds.dedup();
        assert_eq!(kinds.len(), l.len());
        for k in LimitKind::ALL {
            assert_eq!(LimitKind::parse(k.name()), Some(k));
        }
    }

    #[test]
    fn sees_a_child_rlimit_as() {
        use std::process::{Command, Stdio};
        let mut child = Command::new("sh")
            .args(["-c", "ulimit -v 786432 && exec sleep 5"])
            .stdout(Stdio::null())
            .spawn()
            .unwrap();
        let mut found = None;
        for _ in 0..100 {
            std::thread::sleep(std::time::Duration::from_millis(20));
            let l = read(child.id(), &Mounts::detect());
            if let Some((_, v)) = l.iter().find(|(k, _)| *k == LimitKind::RlimitAs) {
                found = Some(*v);
                break;
            }
        }
        let _ = child.kill();
        let _ = child.wait();
        assert_eq!(found, Some(786432 * 1024));
    }
}
