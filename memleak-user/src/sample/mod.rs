//! Samplers: where memory figures come from.
//!
//! Two implementations produce the same [`Observation`]s: the eBPF sampler
//! (counters kept in kernel maps, read in one pass per interval, cost grows
//! with activity) and the procfs sampler (reads `/proc/[pid]/status`
//! for every process in scope, works without privileges).

pub mod btf_offsets;
pub mod ebpf;
mod map_batch;
pub mod oom_events;
pub mod procfs;
pub mod proclimits;
pub mod scope;
pub mod tracefs;

use std::time::Duration;

pub use scope::Scope;

/// Identity of a process for the whole tool: PID plus start time, so a reused
/// PID is always a different process.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ProcId {
    pub pid: u32,
    /// Start time in ns since boot (`task_struct.start_boottime`; procfs gives
    /// it in clock ticks, converted to ns).
    pub start_ns: u64,
}

/// Memory figures of one process at one instant, in bytes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Mem {
    /// Virtual size (`mm->total_vm`, VmSize).
    pub vm: u64,
    pub rss_anon: u64,
    pub rss_file: u64,
    pub rss_shmem: u64,
    pub swap: u64,
}

impl Mem {
    /// Resident set size: anon + file + shmem (swap is not resident).
    pub fn rss(&self) -> u64 {
        self.rss_anon + self.rss_file + self.rss_shmem
    }
}

/// Descriptive facts about a process; may change (comm follows exec).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ProcMeta {
    pub ppid: u32,
    pub comm: String,
    /// `/proc/[pid]/cmdline`, NUL separators replaced by spaces; `None` when
    /// it could not be read (process gone, kernel thread).
    pub cmdline: Option<String>,
}

/// How a process ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Exit {
    /// ns since boot.
    pub at_ns: u64,
    /// Raw wait status (`task_struct.exit_code`), when known.
    pub code: Option<i32>,
    /// The last stop request (SIGHUP, SIGINT, SIGQUIT, SIGTERM) delivered
    /// to it, when the sampler can see signals (eBPF).
    pub stop_signal: Option<i32>,
    /// The kernel's OOM killer chose it as a victim. False also when the
    /// sampler cannot tell (procfs, or no `oom/mark_victim` tracepoint).
    pub oom_killed: bool,
}

/// One process as seen by one snapshot.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Observation {
    pub id: ProcId,
    /// ns since boot (CLOCK_BOOTTIME) at which `mem` was true.
    pub at_ns: u64,
    pub mem: Mem,
    pub meta: ProcMeta,
    pub exit: Option<Exit>,
}

/// Health counters of a sampler (missed events, full maps...), by name.
pub type Counters = Vec<(&'static str, u64)>;

/// A source of observations.
pub trait Sampler {
    /// Short name recorded in the run metadata ("ebpf", "procfs").
    fn name(&self) -> &'static str;
    /// Observations since the previous call: every process in scope whose
    /// memory, name or liveness may have changed (a sampler may return
    /// unchanged ones too; the recorder drops those), and one final
    /// observation for each process that exited.
    fn snapshot(&mut self) -> Result<Vec<Observation>, SampleError>;
    /// Makes the next [`Sampler::snapshot`] report every live process in
    /// scope, changed or not. `memleak watch` keeps one sampler across file
    /// rotations (loading the eBPF programs once), and each new file must
    /// hold every process from its first snapshot.
    fn resync(&mut self);
    /// Adds a process (and, from now on, its descendants) to a tree scope.
    fn track(&mut self, pid: u32) -> Result<(), SampleError>;
    /// Health counters, cumulative since start.
    fn counters(&mut self) -> Counters;
    /// What this sampler cannot see that the other could (said to the user).
    fn limitations(&self) -> Vec<String> {
        Vec::new()
    }
    /// Suggested minimum interval.
    fn min_interval(&self) -> Duration {
        Duration::from_millis(10)
    }
}

/// Why a sampler could not start or read.
#[derive(Debug, thiserror::Error)]
pub enum SampleError {
    /// With what the build lacked (the build script's reason).
    #[error("the eBPF sampler is not built into this binary ({0} at build time); run `cargo xtask setup` and rebuild, or use `--sampler procfs`")]
    NotBuiltIn(&'static str),
    #[error("the eBPF sampler needs privileges: {0}; run as root (or grant CAP_BPF, CAP_PERFMON and CAP_DAC_READ_SEARCH), or use `--sampler procfs`")]
    Permission(String),
    #[error(
        "this kernel does not provide what the eBPF sampler needs: {0}; use `--sampler procfs`"
    )]
    Unsupported(String),
    #[error("eBPF error: {0}")]
    Ebpf(String),
    #[error("reading {path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
}

/// CLOCK_BOOTTIME now, in ns: the clock the kernel's `start_boottime` and
/// `bpf_ktime_get_boot_ns()` use.
pub fn boottime_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes into the timespec we own.
    unsafe { libc::clock_gettime(libc::CLOCK_BOOTTIME, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}
