//! The eBPF program's load-time configuration: one `#[repr(C)]` struct, the
//! program's read-only global `CONFIG`, which userspace fills before loading
//! with one `EbpfLoader::override_global("CONFIG", ..)` (aya 0.14 deprecates
//! `set_global`).
//!
//! Rust cannot emit CO-RE relocations, so every kernel struct offset the
//! program needs is resolved by userspace from `/sys/kernel/btf/vmlinux` and
//! handed over here. An offset of [`ABSENT`] means "field not present".
//! One struct keeps both sides in step: a field added here is a compile
//! error on whichever side forgets it, where parallel lists of names went
//! out of step silently.

#[cfg(feature = "user")]
mod user;

/// The name of the global the program reads [`Config`] from.
pub const CONFIG: &str = "CONFIG";

pub const ABSENT: u64 = u64::MAX;

/// Scope: `SCOPE_ALL` tracks every process; `SCOPE_TREE` only processes
/// userspace inserted and their descendants; `SCOPE_CGROUP` additionally
/// adopts processes whose cgroup id is `cgroup_id`.
pub const SCOPE_ALL: u64 = 0;
pub const SCOPE_TREE: u64 = 1;
pub const SCOPE_CGROUP: u64 = 2;

/// Every field is a u64, so the layout has no padding on either side.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Config {
    pub off_task_mm: u64,
    /// `task_struct.pid`: the `snapshot` hook's task walk tells threads
    /// (pid != tgid) from their leader with it.
    pub off_task_pid: u64,
    pub off_task_flags: u64,
    pub off_task_tgid: u64,
    pub off_task_start_boottime: u64,
    pub off_task_real_parent: u64,
    pub off_task_group_leader: u64,
    pub off_task_exit_code: u64,
    pub off_task_comm: u64,
    pub off_mm_total_vm: u64,
    pub off_mm_rss_stat: u64,
    /// `mm_struct.owner`, only with CONFIG_MEMCG; `ABSENT` otherwise.
    pub off_mm_owner: u64,
    /// Offset of the counter value inside one `rss_stat` element
    /// (`percpu_counter.count` on 6.2+, `atomic_long_t` before).
    pub off_rss_counter_value: u64,
    /// Size of one `rss_stat` element.
    pub size_rss_counter: u64,
    /// The chain `task_struct.cgroups -> css_set.dfl_cgrp -> cgroup.kn ->
    /// kernfs_node.id` gives another task's cgroup v2 id (the `snapshot` hook
    /// adopts processes moved into the cgroup by it); `ABSENT` when missing.
    pub off_task_cgroups: u64,
    pub off_css_set_dfl_cgrp: u64,
    pub off_cgroup_kn: u64,
    pub off_kernfs_node_id: u64,
    /// Tracepoint record offsets, from tracefs `format` files.
    /// `sched_process_exit.group_dead` (6.16+); `ABSENT` on older kernels,
    /// where the exit of the thread-group leader stands for the process exit.
    pub tp_exit_group_dead: u64,
    /// `signal_deliver.sig`; `ABSENT` when the tracepoint is missing (stop
    /// requests are then not seen).
    pub tp_signal_deliver_sig: u64,
    /// `mark_victim.pid` (the OOM victim's pid); `ABSENT` when the
    /// tracepoint is missing (OOM kills then look like any SIGKILL).
    pub tp_mark_victim_pid: u64,
    /// One of the `SCOPE_*` values.
    pub scope: u64,
    /// The cgroup v2 id of a cgroup scope.
    pub cgroup_id: u64,
    /// The recorder's own tgid: never tracked, so memleak never reports itself.
    pub self_tgid: u64,
}

impl Config {
    /// The program's placeholder, until userspace overrides it. Optional
    /// fields start `ABSENT`, so a forgotten one disables its feature
    /// rather than reading at offset 0.
    pub const PLACEHOLDER: Config = Config {
        off_task_mm: 0,
        off_task_pid: 0,
        off_task_flags: 0,
        off_task_tgid: 0,
        off_task_start_boottime: 0,
        off_task_real_parent: 0,
        off_task_group_leader: 0,
        off_task_exit_code: 0,
        off_task_comm: 0,
        off_mm_total_vm: 0,
        off_mm_rss_stat: 0,
        off_mm_owner: ABSENT,
        off_rss_counter_value: 0,
        size_rss_counter: 8,
        off_task_cgroups: ABSENT,
        off_css_set_dfl_cgrp: ABSENT,
        off_cgroup_kn: ABSENT,
        off_kernfs_node_id: ABSENT,
        tp_exit_group_dead: ABSENT,
        tp_signal_deliver_sig: ABSENT,
        tp_mark_victim_pid: ABSENT,
        scope: SCOPE_ALL,
        cgroup_id: 0,
        self_tgid: 0,
    };
}
