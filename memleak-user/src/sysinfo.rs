//! Facts about the machine recorded with each run (host, kernel, memory
//! limits), and what this process may do there (capabilities, and whether a
//! failed call was refused for lack of privilege).
//!
//! Every function that reads the system has a pure parsing half taking `&str`
//! (`parse_*`), so the parsing is tested on sample text.

use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// Where cgroup v2 is mounted when /proc/self/mountinfo says nothing else.
pub const DEFAULT_CGROUP2_MOUNT: &str = "/sys/fs/cgroup";
/// `statfs.f_type` of a cgroup v2 filesystem.
pub const CGROUP2_SUPER_MAGIC: i64 = 0x6367_7270;

/// Capability numbers (linux/capability.h) the eBPF sampler needs or
/// reports missing: reading tracefs (mode 0700) and /proc of other users.
pub const CAP_DAC_READ_SEARCH: u32 = 2;
pub const CAP_SYS_ADMIN: u32 = 21;
pub const CAP_PERFMON: u32 = 38;
pub const CAP_BPF: u32 = 39;

/// A fact about the machine that could not be read or parsed.
#[derive(Debug, thiserror::Error)]
pub enum SysinfoError {
    #[error("reading {path}: {source}")]
    Io {
        path: String,
        #[source]
        source: io::Error,
    },
    #[error("parsing {what}: {detail}")]
    Parse { what: &'static str, detail: String },
}

/// Result of reading a machine fact.
pub type Result<T, E = SysinfoError> = std::result::Result<T, E>;

fn io_err(path: impl AsRef<Path>, source: io::Error) -> SysinfoError {
    SysinfoError::Io {
        path: path.as_ref().display().to_string(),
        source,
    }
}

fn read(path: impl AsRef<Path>) -> Result<String> {
    std::fs::read_to_string(path.as_ref()).map_err(|e| io_err(path, e))
}

fn uname() -> Option<libc::utsname> {
    // SAFETY: utsname is plain old data; uname fills it in.
    let mut u: libc::utsname = unsafe { std::mem::zeroed() };
    // SAFETY: we pass a valid pointer to a utsname we own.
    if unsafe { libc::uname(&mut u) } == 0 {
        Some(u)
    } else {
        None
    }
}

fn c_field(field: &[libc::c_char]) -> String {
    // uname fields are NUL-terminated within their arrays.
    let bytes: Vec<u8> = field
        .iter()
        .take_while(|&&c| c != 0)
        .map(|&c| c as u8)
        .collect();
    String::from_utf8_lossy(&bytes).into_owned()
}

/// The host name (uname nodename), "unknown" if uname fails.
pub fn hostname() -> String {
    uname()
        .map(|u| c_field(&u.nodename))
        .unwrap_or_else(|| "unknown".into())
}

/// The kernel release (uname -r), "unknown" if uname fails.
pub fn kernel_release() -> String {
    uname()
        .map(|u| c_field(&u.release))
        .unwrap_or_else(|| "unknown".into())
}

/// Page size in bytes.
pub fn page_size() -> u64 {
    // SAFETY: sysconf has no memory-safety preconditions.
    let v = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    if v > 0 {
        v as u64
    } else {
        4096
    }
}

/// Clock ticks per second (USER_HZ), the unit of times in /proc/PID/stat.
pub fn clock_ticks() -> u64 {
    // SAFETY: sysconf has no memory-safety preconditions.
    let v = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if v > 0 {
        v as u64
    } else {
        100
    }
}

/// Machine memory, in bytes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MemInfo {
    pub mem_total: u64,
    pub swap_total: u64,
    /// CommitLimit: what strict overcommit lets all processes commit.
    pub commit_limit: Option<u64>,
}

/// Reads /proc/meminfo.
pub fn meminfo() -> Result<MemInfo> {
    parse_meminfo(&read("/proc/meminfo")?)
}

/// Parses /proc/meminfo text ("MemTotal:  16303724 kB"). MemTotal is
/// required; a missing SwapTotal means no swap.
pub fn parse_meminfo(text: &str) -> Result<MemInfo> {
    let mut mem_total = None;
    let mut swap_total = None;
    let mut commit_limit = None;
    for line in text.lines() {
        let Some((key, rest)) = line.split_once(':') else {
            continue;
        };
        let slot = match key {
            "MemTotal" => &mut mem_total,
            "SwapTotal" => &mut swap_total,
            "CommitLimit" => &mut commit_limit,
            _ => continue,
        };
        *slot = Some(parse_kb(rest).ok_or_else(|| SysinfoError::Parse {
            what: "/proc/meminfo",
            detail: format!("bad line {line:?}"),
        })?);
    }
    Ok(MemInfo {
        mem_total: mem_total.ok_or_else(|| SysinfoError::Parse {
            what: "/proc/meminfo",
            detail: "no MemTotal line".into(),
        })?,
        swap_total: swap_total.unwrap_or(0),
        commit_limit,
    })
}

/// `vm.overcommit_memory`: 0 heuristic, 1 always, 2 strict (address space
/// is then limited by CommitLimit).
pub fn overcommit_memory() -> Option<u8> {
    std::fs::read_to_string("/proc/sys/vm/overcommit_memory")
        .ok()?
        .trim()
        .parse()
        .ok()
}

/// "  1234 kB" → 1234 * 1024 bytes (a bare number is taken as bytes).
fn parse_kb(s: &str) -> Option<u64> {
    let mut it = s.split_whitespace();
    let n: u64 = it.next()?.parse().ok()?;
    match it.next() {
        None => Some(n),
        Some("kB") => n.checked_mul(1024),
        Some(_) => None,
    }
}

/// Where the cgroup v2 hierarchy is mounted (from /proc/self/mountinfo;
/// `/sys/fs/cgroup` on pure v2 systems, `/sys/fs/cgroup/unified` on hybrid
/// ones). Falls back to [`DEFAULT_CGROUP2_MOUNT`].
pub fn cgroup2_mount() -> PathBuf {
    std::fs::read_to_string("/proc/self/mountinfo")
        .ok()
        .and_then(|t| parse_cgroup2_mount(&t))
        .unwrap_or_else(|| PathBuf::from(DEFAULT_CGROUP2_MOUNT))
}

/// The first cgroup2 mount point in /proc/PID/mountinfo text.
pub fn parse_cgroup2_mount(mountinfo: &str) -> Option<PathBuf> {
    mountinfo.lines().find_map(|line| {
        let (left, right) = line.split_once(" - ")?;
        if right.split_whitespace().next()? != "cgroup2" {
            return None;
        }
        let mount_point = left.split_whitespace().nth(4)?;
        Some(PathBuf::from(unescape_mountinfo(mount_point)))
    })
}

/// mountinfo escapes space, tab, newline and backslash as `\ooo` octal.
fn unescape_mountinfo(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' && i + 4 <= b.len() {
            let oct = &b[i + 1..i + 4];
            if oct.iter().all(|d| (b'0'..=b'7').contains(d)) {
                let v = oct
                    .iter()
                    .fold(0u32, |acc, d| acc * 8 + u32::from(d - b'0'));
                if let Ok(v) = u8::try_from(v) {
                    out.push(v);
                    i += 4;
                    continue;
                }
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The cgroup v2 directory of a process (e.g.
/// `/sys/fs/cgroup/user.slice/session-1.scope`), from the `0::/path` line of
/// /proc/PID/cgroup. `None` if the process is gone, the system has no cgroup
/// v2 hierarchy, or the cgroup was deleted.
pub fn cgroup_of(pid: u32) -> Option<PathBuf> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).ok()?;
    let rel = parse_cgroup_v2_path(&text)?;
    Some(cgroup2_mount().join(rel.trim_start_matches('/')))
}

/// The path of the `0::/path` line of /proc/PID/cgroup text.
pub fn parse_cgroup_v2_path(text: &str) -> Option<&str> {
    let path = text.lines().find_map(|l| l.strip_prefix("0::"))?;
    if !path.starts_with('/') || path.ends_with(" (deleted)") {
        return None;
    }
    Some(path)
}

/// Whether `path` is a directory on a cgroup v2 filesystem.
pub fn is_cgroup2_dir(path: &Path) -> bool {
    use std::os::unix::ffi::OsStrExt;
    let Ok(c) = std::ffi::CString::new(path.as_os_str().as_bytes()) else {
        return false;
    };
    // SAFETY: statfs is plain old data, filled in by statfs().
    let mut st: libc::statfs = unsafe { std::mem::zeroed() };
    // SAFETY: valid NUL-terminated path and a statfs we own.
    if unsafe { libc::statfs(c.as_ptr(), &mut st) } != 0 {
        return false;
    }
    st.f_type as i64 == CGROUP2_SUPER_MAGIC && path.is_dir()
}

/// The memory limit that applies to a cgroup v2 directory: the smallest
/// `memory.max` of the cgroup and its ancestors (`None` when none is set, or
/// the memory controller is not enabled there).
pub fn cgroup_memory_max(path: &Path) -> Option<u64> {
    cgroup_memory_max_with(path, is_cgroup2_dir)
}

/// [`cgroup_memory_max`], walking up while `is_cgroup(dir)` holds.
fn cgroup_memory_max_with(path: &Path, is_cgroup: impl Fn(&Path) -> bool) -> Option<u64> {
    path.ancestors()
        .take_while(|dir| is_cgroup(dir))
        .filter_map(|dir| std::fs::read_to_string(dir.join("memory.max")).ok())
        .filter_map(|t| parse_memory_max(&t))
        .min()
}

/// memory.max text: a byte count, or "max" (no limit → `None`).
pub fn parse_memory_max(text: &str) -> Option<u64> {
    match text.trim() {
        "max" => None,
        t => t.parse().ok(),
    }
}

/// The address-space limit of this process (RLIMIT_AS soft limit), `None`
/// when unlimited.
pub fn rlimit_as() -> Option<u64> {
    let mut r = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes into the rlimit we own.
    if unsafe { libc::getrlimit(libc::RLIMIT_AS, &mut r) } != 0 || r.rlim_cur == libc::RLIM_INFINITY
    {
        return None;
    }
    Some(r.rlim_cur)
}

/// The cgroup v2 id of a cgroup directory (what `bpf_get_current_cgroup_id()`
/// returns): the inode number of the directory.
pub fn cgroup_id(path: &Path) -> Result<u64> {
    std::fs::metadata(path)
        .map(|m| m.ino())
        .map_err(|e| io_err(path, e))
}

/// Whether the effective user is root.
pub fn is_root() -> bool {
    // SAFETY: geteuid cannot fail.
    unsafe { libc::geteuid() == 0 }
}

/// Whether this process may load and attach the eBPF sampler: CAP_BPF and
/// CAP_PERFMON, or CAP_SYS_ADMIN, in its effective set.
pub fn bpf_capable() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|t| parse_cap_eff(&t))
        .is_some_and(caps_allow_bpf)
}

/// The CapEff bitmask of /proc/PID/status text.
pub fn parse_cap_eff(status: &str) -> Option<u64> {
    let hex = status.lines().find_map(|l| l.strip_prefix("CapEff:"))?;
    u64::from_str_radix(hex.trim(), 16).ok()
}

/// The capabilities of CAP_BPF and CAP_PERFMON this process lacks (none
/// with CAP_SYS_ADMIN, which covers both), so an error can name exactly
/// what to grant.
pub fn missing_bpf_caps() -> Vec<&'static str> {
    let eff = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|t| parse_cap_eff(&t))
        .unwrap_or(0);
    missing_in(eff)
}

/// [`missing_bpf_caps`] of an effective capability mask.
pub fn missing_in(cap_eff: u64) -> Vec<&'static str> {
    if caps_allow_bpf(cap_eff) {
        return Vec::new();
    }
    [(CAP_BPF, "CAP_BPF"), (CAP_PERFMON, "CAP_PERFMON")]
        .into_iter()
        .filter(|(cap, _)| cap_eff & (1u64 << cap) == 0)
        .map(|(_, name)| name)
        .collect()
}

/// Whether an effective capability mask allows loading tracing eBPF.
pub fn caps_allow_bpf(cap_eff: u64) -> bool {
    let has = |cap: u32| cap_eff & (1u64 << cap) != 0;
    (has(CAP_BPF) && has(CAP_PERFMON)) || has(CAP_SYS_ADMIN)
}

/// The OS error code nearest the top of `e`'s chain of sources: aya and
/// perf errors wrap the `io::Error` of the refused system call.
pub fn errno_in(e: &(dyn std::error::Error + 'static)) -> Option<i32> {
    let mut cur = Some(e);
    while let Some(err) = cur {
        if let Some(code) = err
            .downcast_ref::<io::Error>()
            .and_then(io::Error::raw_os_error)
        {
            return Some(code);
        }
        cur = err.source();
    }
    None
}

/// Whether the kernel refused a call of `e`'s chain for lack of privilege
/// (EPERM or EACCES): the one rule by which the eBPF sampler and locate
/// tell "grant privileges" from "this kernel cannot".
pub fn refused_permission(e: &(dyn std::error::Error + 'static)) -> bool {
    matches!(errno_in(e), Some(libc::EPERM | libc::EACCES))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("loading the program")]
    struct Wrapped(#[source] io::Error);

    #[test]
    fn a_refusal_deep_in_the_chain_is_a_permission_error() {
        let refused = Wrapped(io::Error::from_raw_os_error(libc::EACCES));
        assert_eq!(errno_in(&refused), Some(libc::EACCES));
        assert!(refused_permission(&refused));
        assert!(refused_permission(&io::Error::from_raw_os_error(
            libc::EPERM
        )));
        let unsupported = Wrapped(io::Error::from_raw_os_error(libc::EINVAL));
        assert!(!refused_permission(&unsupported));
        assert_eq!(errno_in(&Wrapped(io::Error::other("no code"))), None);
    }

    #[test]
    fn meminfo_parses_kb_lines() {
        let text = "MemTotal:       16303724 kB\nMemFree:         1234 kB\n\
                    SwapCached:            0 kB\nSwapTotal:       2097148 kB\n\
                    HugePages_Total:       0\n";
        let m = parse_meminfo(text).unwrap();
        assert_eq!(m.mem_total, 16303724 * 1024);
        assert_eq!(m.swap_total, 2097148 * 1024);
    }

    #[test]
    fn meminfo_without_swap_and_errors() {
        let m = parse_meminfo("MemTotal: 1000 kB\n").unwrap();
        assert_eq!(m.swap_total, 0);
        assert!(parse_meminfo("MemFree: 1 kB\n").is_err());
        assert!(parse_meminfo("MemTotal: lots kB\n").is_err());
    }

    #[test]
    fn meminfo_of_this_machine() {
        let m = meminfo().unwrap();
        assert!(m.mem_total > 16 << 20);
    }

    #[test]
    fn cgroup_v2_line() {
        let text = "12:memory:/user.slice\n1:name=systemd:/x\n0::/user.slice/session-2.scope\n";
        assert_eq!(
            parse_cgroup_v2_path(text),
            Some("/user.slice/session-2.scope")
        );
        assert_eq!(parse_cgroup_v2_path("0::/\n"), Some("/"));
        assert_eq!(parse_cgroup_v2_path("4:memory:/a\n"), None);
        assert_eq!(parse_cgroup_v2_path("0::/gone (deleted)\n"), None);
    }

    #[test]
    fn cgroup2_mount_from_mountinfo() {
        let hybrid = "31 23 0:26 / /sys/fs/cgroup ro,nosuid - tmpfs tmpfs ro,mode=755\n\
                      41 31 0:38 / /sys/fs/cgroup/unified rw,relatime shared:9 - cgroup2 cgroup2 rw\n";
        assert_eq!(
            parse_cgroup2_mount(hybrid),
            Some(PathBuf::from("/sys/fs/cgroup/unified"))
        );
        let escaped = "41 31 0:38 / /mnt/my\\040cg rw - cgroup2 none rw\n";
        assert_eq!(
            parse_cgroup2_mount(escaped),
            Some(PathBuf::from("/mnt/my cg"))
        );
        assert_eq!(
            parse_cgroup2_mount("1 2 0:3 / /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory\n"),
            None
        );
    }

    #[test]
    fn cgroup_of_self_is_under_the_mount() {
        if let Some(p) = cgroup_of(std::process::id()) {
            assert!(p.starts_with(cgroup2_mount()));
            assert!(cgroup_id(&p).unwrap() > 0);
        }
        assert!(cgroup_of(u32::MAX).is_none());
    }

    #[test]
    fn memory_max_values() {
        assert_eq!(parse_memory_max("max\n"), None);
        assert_eq!(parse_memory_max("1073741824\n"), Some(1 << 30));
        assert_eq!(parse_memory_max("garbage"), None);
    }

    #[test]
    fn memory_max_takes_smallest_ancestor_limit() {
        let root = tempfile::tempdir().unwrap();
        let a = root.path().join("a");
        let b = a.join("b");
        let c = b.join("c");
        std::fs::create_dir_all(&c).unwrap();
        std::fs::write(a.join("memory.max"), "1000\n").unwrap();
        std::fs::write(b.join("memory.max"), "max\n").unwrap();
        std::fs::write(c.join("memory.max"), "5000\n").unwrap();
        // Outside the "cgroup fs": a limit that must not be seen.
        std::fs::write(root.path().join("memory.max"), "10\n").unwrap();
        let inside = |d: &Path| d.starts_with(&a);
        assert_eq!(cgroup_memory_max_with(&c, inside), Some(1000));
        assert_eq!(cgroup_memory_max_with(&b, |d: &Path| d == b), None);
        assert_eq!(cgroup_memory_max_with(&c, |d: &Path| d == c), Some(5000));
    }

    #[test]
    fn cap_eff_parsing() {
        let status = "Name:\tx\nCapInh:\t0000000000000000\nCapPrm:\t000001ffffffffff\n\
                      CapEff:\t000001ffffffffff\nCapBnd:\t000001ffffffffff\n";
        let caps = parse_cap_eff(status).unwrap();
        assert_eq!(caps, 0x1ff_ffff_ffff);
        assert!(caps_allow_bpf(caps));
        assert!(caps_allow_bpf(1 << CAP_SYS_ADMIN));
        assert!(caps_allow_bpf((1 << CAP_BPF) | (1 << CAP_PERFMON)));
        assert_eq!(missing_in(1 << CAP_BPF), ["CAP_PERFMON"]);
        assert_eq!(missing_in(1 << CAP_PERFMON), ["CAP_BPF"]);
        assert_eq!(missing_in(0), ["CAP_BPF", "CAP_PERFMON"]);
        assert!(missing_in(1 << CAP_SYS_ADMIN).is_empty());
        assert!(!caps_allow_bpf(1 << CAP_BPF));
        assert!(!caps_allow_bpf(0));
        assert_eq!(parse_cap_eff("Name: x\n"), None);
    }

    #[test]
    fn machine_facts_are_plausible() {
        assert!(!hostname().is_empty());
        assert!(kernel_release().chars().next().unwrap().is_ascii_digit());
        assert!(page_size().is_power_of_two());
        assert!(clock_ticks() > 0);
        if is_root() {
            assert!(bpf_capable());
        }
        let _ = rlimit_as();
    }

    #[test]
    fn cgroup_id_of_missing_dir_is_an_error() {
        let e = cgroup_id(Path::new("/nonexistent/cgroup")).unwrap_err();
        assert!(e.to_string().contains("/nonexistent/cgroup"));
    }
}
