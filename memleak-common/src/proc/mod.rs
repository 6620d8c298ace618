//! Per-process memory state kept by the eBPF program, keyed by tgid.

#[cfg(feature = "user")]
mod user;

/// RSS members in the kernel's `enum NR_MM_COUNTERS` order (`MM_FILEPAGES`,
/// `MM_ANONPAGES`, `MM_SWAPENTS`, `MM_SHMEMPAGES`); `kmem/rss_stat` reports the
/// member by this index.
pub const RSS_FILE: usize = 0;
pub const RSS_ANON: usize = 1;
pub const RSS_SWAP: usize = 2;
pub const RSS_SHMEM: usize = 3;
pub const RSS_MEMBERS: usize = 4;

/// Length of the kernel's `task_struct.comm`.
pub const COMM_LEN: usize = 16;

/// The process has exited (all its threads); this is its final state.
pub const FLAG_EXITED: u32 = 1 << 0;
/// The process was created by a fork the program saw (not discovered later).
pub const FLAG_FORKED: u32 = 1 << 1;
/// The process called exec at least once since it was tracked.
pub const FLAG_EXECED: u32 = 1 << 2;
/// The RSS figures were seeded by userspace from procfs, not yet confirmed by
/// an `rss_stat` event.
pub const FLAG_SEEDED: u32 = 1 << 3;
/// The kernel's OOM killer chose the process as its victim
/// (`oom/mark_victim`): dying of memory is evidence of a leak, whatever
/// the exit status says (it is SIGKILL, like any other kill).
pub const FLAG_OOM_KILLED: u32 = 1 << 4;

/// One process's memory state.
///
/// Sizes are in pages as the kernel keeps them; userspace converts with the
/// page size. `start_ns` is `task_struct.start_boottime` (ns since boot,
/// including suspend): together with `tgid` it is the process identity, so a
/// reused PID never merges with the process that had it before.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ProcState {
    pub start_ns: u64,
    /// `bpf_ktime_get_boot_ns()` at exit of the last thread, 0 while alive.
    pub exit_ns: u64,
    /// `bpf_ktime_get_boot_ns()` when the entry was created (fork,
    /// adoption) and, with the `switch` hook, when a context switch last
    /// re-read its counters. The fault path leaves it alone, to stay cheap.
    pub updated_ns: u64,
    /// `mm_struct.total_vm`, in pages.
    pub total_vm: u64,
    /// RSS per member, in pages (see `RSS_*`).
    pub rss: [i64; RSS_MEMBERS],
    /// Bumped on every change; lets userspace tell a changed entry from a
    /// stale one without comparing every field.
    pub seq: u64,
    pub tgid: u32,
    pub ppid: u32,
    /// `task_struct.exit_code` of the group leader at exit (wait status).
    pub exit_code: i32,
    pub flags: u32,
    pub comm: [u8; COMM_LEN],
    /// Number of execs seen: the command line changes with each, even when
    /// the name does not (a script exec'ing its interpreter).
    pub execs: u32,
    /// The last stop request delivered to the process (SIGHUP, SIGINT,
    /// SIGQUIT or SIGTERM), 0 if none: a process that exits with status 0
    /// after one was stopped, it did not finish on its own.
    pub stop_signal: u32,
}

impl ProcState {
    pub fn comm_str(&self) -> &str {
        let end = self.comm.iter().position(|&b| b == 0).unwrap_or(COMM_LEN);
        core::str::from_utf8(&self.comm[..end]).unwrap_or("?")
    }

    pub fn exited(&self) -> bool {
        self.flags & FLAG_EXITED != 0
    }

    pub fn oom_killed(&self) -> bool {
        self.flags & FLAG_OOM_KILLED != 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Both sides read the exit ring buffer's bytes as this struct: its
    /// size is the sum of its fields (no implicit padding), and flags are
    /// bits of `flags`, so adding one never moves a field.
    #[test]
    fn proc_state_layout_has_no_padding() {
        assert_eq!(core::mem::size_of::<ProcState>(), 112);
        assert_eq!(core::mem::align_of::<ProcState>(), 8);
        assert_eq!(core::mem::offset_of!(ProcState, flags), 84);
        let all = [
            FLAG_EXITED,
            FLAG_FORKED,
            FLAG_EXECED,
            FLAG_SEEDED,
            FLAG_OOM_KILLED,
        ];
        let or = all.iter().fold(0, |a, f| a | f);
        assert_eq!(or.count_ones() as usize, all.len(), "flag bits overlap");
    }
}
