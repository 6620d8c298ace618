//! Counters the eBPF program keeps about its own health, in a per-CPU array
//! indexed by these constants. Userspace sums the CPUs and reports every
//! non-zero counter: a full map or a lost event is never silent.

/// `rss_stat` events seen for tracked processes.
pub const STAT_RSS_EVENTS: u32 = 0;
/// mmap/munmap/brk/mremap exits seen for tracked processes.
pub const STAT_VM_EVENTS: u32 = 1;
/// A new process could not be inserted: the process map is full.
pub const STAT_PROCS_FULL: u32 = 2;
/// A change could not be marked dirty: the dirty map or its queue is
/// full. Userspace runs its full pass when this rises, so the change is
/// read late, not lost.
pub const STAT_DIRTY_FULL: u32 = 3;
/// An exit record could not be queued: the exit ring buffer is full.
pub const STAT_EXITS_LOST: u32 = 4;
/// A kernel read (`bpf_probe_read_kernel`) failed.
pub const STAT_READ_ERRORS: u32 = 5;
/// `rss_stat` for another task's mm on a kernel without `mm->owner`
/// (no CONFIG_MEMCG): the change cannot be attributed.
pub const STAT_UNATTRIBUTED: u32 = 6;
/// `rss_stat` events where the changed mm was not the current task's
/// (reclaim, another process touching this one's memory) and was attributed
/// to the mm's owner.
pub const STAT_FOREIGN_MM: u32 = 7;
pub const STAT_FORKS: u32 = 8;
pub const STAT_EXITS: u32 = 9;
pub const STAT_EXECS: u32 = 10;
/// `rss_stat` during the teardown of an mm that no task uses any more
/// (after exit or exec): expected, not a loss.
pub const STAT_TEARDOWN: u32 = 11;

pub const STAT_COUNT: u32 = 12;

/// Human names for the counters, indexed like the constants.
pub const STAT_NAMES: [&str; STAT_COUNT as usize] = [
    "rss_events",
    "vm_events",
    "procs_map_full",
    "dirty_map_full",
    "exits_lost",
    "kernel_read_errors",
    "unattributed_rss_events",
    "foreign_mm_rss_events",
    "forks",
    "exits",
    "execs",
    "teardown_rss_events",
];
