//! Names of the load-time globals that userspace sets with
//! `EbpfLoader::override_global` before loading the program.
//!
//! Rust cannot emit CO-RE relocations, so every kernel struct offset the
//! program needs is resolved by userspace from `/sys/kernel/btf/vmlinux` and
//! handed over here. An offset of `u64::MAX` means "field not present".

pub const OFF_TASK_MM: &str = "OFF_TASK_MM";
pub const OFF_TASK_PID: &str = "OFF_TASK_PID";
pub const OFF_TASK_FLAGS: &str = "OFF_TASK_FLAGS";
pub const OFF_TASK_TGID: &str = "OFF_TASK_TGID";
pub const OFF_TASK_START_BOOTTIME: &str = "OFF_TASK_START_BOOTTIME";
pub const OFF_TASK_REAL_PARENT: &str = "OFF_TASK_REAL_PARENT";
pub const OFF_TASK_GROUP_LEADER: &str = "OFF_TASK_GROUP_LEADER";
pub const OFF_TASK_EXIT_CODE: &str = "OFF_TASK_EXIT_CODE";
pub const OFF_TASK_COMM: &str = "OFF_TASK_COMM";
pub const OFF_MM_TOTAL_VM: &str = "OFF_MM_TOTAL_VM";
pub const OFF_MM_RSS_STAT: &str = "OFF_MM_RSS_STAT";
pub const OFF_MM_OWNER: &str = "OFF_MM_OWNER";
/// Offset of the counter value inside one `rss_stat` element
/// (`percpu_counter.count` on 6.2+, `atomic_long_t` before).
pub const OFF_RSS_COUNTER_VALUE: &str = "OFF_RSS_COUNTER_VALUE";
/// Size of one `rss_stat` element.
pub const SIZE_RSS_COUNTER: &str = "SIZE_RSS_COUNTER";
/// The chain `task_struct.cgroups -> css_set.dfl_cgrp -> cgroup.kn ->
/// kernfs_node.id` gives another task's cgroup v2 id (the `snapshot` hook
/// adopts processes moved into the cgroup by it); `ABSENT` when missing.
pub const OFF_TASK_CGROUPS: &str = "OFF_TASK_CGROUPS";
pub const OFF_CSS_SET_DFL_CGRP: &str = "OFF_CSS_SET_DFL_CGRP";
pub const OFF_CGROUP_KN: &str = "OFF_CGROUP_KN";
pub const OFF_KERNFS_NODE_ID: &str = "OFF_KERNFS_NODE_ID";

/// Tracepoint record offsets, from tracefs `format` files.
/// `sched_process_exit.group_dead` (6.16+); `ABSENT` on older kernels, where
/// the exit of the thread-group leader stands for the process exit.
pub const TP_EXIT_GROUP_DEAD: &str = "TP_EXIT_GROUP_DEAD";
/// `signal_deliver.sig`, from its format file; `ABSENT` when the
/// tracepoint is missing (stop requests are then not seen).
pub const TP_SIGNAL_DELIVER_SIG: &str = "TP_SIGNAL_DELIVER_SIG";
/// Page size in bytes (the kernel counts RSS in pages).
pub const PAGE_SIZE: &str = "PAGE_SIZE";

/// Scope: `SCOPE_ALL` tracks every process; `SCOPE_TREE` only processes
/// userspace inserted and their descendants; `SCOPE_CGROUP` additionally
/// adopts processes whose cgroup id is `CGROUP_ID`.
pub const SCOPE: &str = "SCOPE";
pub const SCOPE_ALL: u64 = 0;
pub const SCOPE_TREE: u64 = 1;
pub const SCOPE_CGROUP: u64 = 2;
pub const CGROUP_ID: &str = "CGROUP_ID";
/// The recorder's own tgid: never tracked, so memleak never reports itself.
pub const SELF_TGID: &str = "SELF_TGID";

pub const ABSENT: u64 = u64::MAX;
