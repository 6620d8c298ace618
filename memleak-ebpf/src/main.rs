//! memleak's kernel side: keeps per-process memory counters in maps.
//!
//! The programs only update counters; userspace snapshots the maps at its own
//! pace. Nothing is pushed per event except one record per process exit.
//!
//! Kernel struct offsets come from load-time globals that userspace resolves
//! from BTF (rustc emits no CO-RE relocations), so kernel reads go through
//! `bpf_probe_read_kernel` at `base + CONFIG.off_*`; the task iterator,
//! whose pointers the verifier knows by type, loads at those offsets
//! directly (see `load`).
#![no_std]
#![no_main]

mod locate;

use aya_ebpf::{
    helpers::{
        bpf_get_current_cgroup_id, bpf_get_current_comm, bpf_get_current_pid_tgid,
        bpf_get_current_task, bpf_ktime_get_boot_ns, bpf_probe_read_kernel,
    },
    macros::{map, perf_event, raw_tracepoint, tracepoint},
    maps::{HashMap, PerCpuArray, Queue, RingBuf},
    programs::{PerfEventContext, RawTracePointContext, TracePointContext},
};
use memleak_common::{
    globals::{Config, ABSENT, SCOPE_ALL, SCOPE_CGROUP},
    proc::{
        ProcState, COMM_LEN, FLAG_EXECED, FLAG_EXITED, FLAG_FORKED, FLAG_OOM_KILLED, RSS_MEMBERS,
    },
    stats::*,
};

/// Load-time configuration, set by userspace (see
/// memleak_common::globals). Read with read_volatile (`config!`) so the
/// compiler cannot fold the placeholder values.
#[no_mangle]
static CONFIG: Config = Config::PLACEHOLDER;

/// One field of [`CONFIG`].
macro_rules! config {
    ($field:ident) => {
        // SAFETY: reading our own static.
        unsafe { core::ptr::read_volatile(core::ptr::addr_of!(CONFIG.$field)) }
    };
}

/// PF_EXITING in task_struct.flags: set once a task starts exiting. An mm
/// torn down after its owner's exit record must not resurrect the process.
const PF_EXITING: u32 = 0x4;
/// PF_KTHREAD: a kernel thread. It has no memory of its own to leak (a
/// borrowed mm is its owner's), so it is never a tracked process.
const PF_KTHREAD: u32 = 0x0020_0000;
/// The kernel's `enum NR_MM_COUNTERS` bound, checked for the verifier.
const MAX_MEMBER: i32 = RSS_MEMBERS as i32;

/// Process states keyed by tgid. Sized by userspace (`map_max_entries`).
///
/// Concurrency. Programs write a value in place through `get_ptr_mut`,
/// without a lock, from whichever CPU runs them: the hook (`rss_stat` in
/// the faulting or reclaiming context, `switch_out`/`cpu_tick` on the CPU
/// the process runs on, `refresh_tasks` on the recorder's CPU), the
/// mmap-family exits, exec, exit and signal delivery of the process itself,
/// and the OOM killer's mark from whichever task ran out of memory (one
/// `|=` of a flag bit that only exec's and exit's `|=` could race with: a lost bit
/// loses that one fact, never the counters).
/// Why that is safe enough:
/// - each field is one aligned store, so no single field tears;
/// - two writers of one process (two of its threads faulting on two CPUs)
///   both store the kernel's current counter; the later store may carry the
///   older value, which the next event (or the next snapshot's walk) and the
///   exit's full re-read correct; `seq` is a plain increment, and a lost
///   increment still moves it, which is all userspace asks of it;
/// - userspace reads a copy with no lock and may see a half-updated value,
///   but it removes the dirty mark before reading and every writer marks
///   dirty after writing, so such a read is followed by another at the
///   next snapshot;
/// - entries are preallocated: one removed at exit can be reused by a fork
///   while another CPU still writes through an old pointer. That takes the
///   process's exit and an unrelated fork within one program run; the new
///   entry then shows the dead process's counters until its next refresh.
///   Not fixed with `BPF_F_NO_PREALLOC` (RCU-delayed reuse): kernels before
///   6.1 refuse such maps in some tracing programs.
///
/// Whole-value replacement (fork, adoption, userspace seeding) goes
/// through the map's update, which swaps entries under the bucket lock.
#[map]
static PROCS: HashMap<u32, ProcState> = HashMap::with_max_entries(65536, 0);

/// tgids changed since userspace last looked: a snapshot reads only these.
/// A set (the value is unused): programs on any CPU insert, userspace
/// removes; any interleaving leaves the key present iff a change may be
/// unread.
///
/// Userspace does not list this map (a listing visits every bucket, so it
/// cost as much empty as full): it pops [`DIRTY_QUEUE`] instead. The key
/// that wins the insert pushes its tgid there, so each key has exactly one
/// queue entry: keys are never removed except by userspace after popping,
/// or by the pusher itself when its push fails.
#[map]
static DIRTY: HashMap<u32, u8> = HashMap::with_max_entries(65536, 0);

/// The keys of [`DIRTY`], one entry each (see there). Sized like it by
/// userspace, so a push fails only if that invariant breaks; a failed push
/// is counted as `dirty_map_full` and userspace's full pass then finds the
/// change through its `seq`.
#[map]
static DIRTY_QUEUE: Queue<u32> = Queue::with_max_entries(65536, 0);

/// `bpf_map_update_elem` flag: insert only if absent.
const BPF_NOEXIST: u64 = 1;
/// The insert lost to another CPU's (negated errno).
const EEXIST: i32 = 17;

/// Final state of each process at exit; low rate, so a ring buffer
/// (multi-producer: the kernel serialises reservations across CPUs).
#[map]
static EXITS: RingBuf = RingBuf::with_byte_size(256 * 1024, 0);

/// Health counters (see memleak_common::stats). Per CPU, so each slot has
/// one writer: the programs that share a CPU do not interrupt one another
/// here (tracepoint and perf-event programs skip when nested, and the hooks
/// that could nest, `rss_stat` and `cpu_tick`, are never attached together).
#[map]
static STATS: PerCpuArray<u64> = PerCpuArray::with_max_entries(STAT_COUNT, 0);

#[inline(always)]
fn count(stat: u32) {
    if let Some(p) = STATS.get_ptr_mut(stat) {
        // SAFETY: per-CPU slot, no concurrent writer on this CPU.
        unsafe { *p += 1 };
    }
}

#[inline(always)]
fn read<T>(base: u64, off: u64) -> Option<T> {
    if base == 0 {
        return None;
    }
    // SAFETY: bpf_probe_read_kernel checks the address.
    match unsafe { bpf_probe_read_kernel((base + off) as *const T) } {
        Ok(v) => Some(v),
        Err(_) => {
            count(STAT_READ_ERRORS);
            None
        }
    }
}

#[inline(always)]
fn current_task() -> u64 {
    // SAFETY: helper without arguments.
    unsafe { bpf_get_current_task() }
}

#[inline(always)]
fn now() -> u64 {
    // SAFETY: helper without arguments.
    unsafe { bpf_ktime_get_boot_ns() }
}

#[inline(always)]
fn mark_dirty(tgid: u32) {
    if DIRTY.get_ptr(tgid).is_some() {
        return;
    }
    match DIRTY.insert(tgid, 1u8, BPF_NOEXIST) {
        Ok(()) => {
            if DIRTY_QUEUE.push(tgid, 0).is_err() {
                // Nothing would ever pop this key: drop it, so a later
                // change tries again. This change waits for the full pass,
                // which the counter triggers.
                let _ = DIRTY.remove(tgid);
                count(STAT_DIRTY_FULL);
            }
        }
        Err(e) if e == -EEXIST => {} // marked on another CPU meanwhile
        Err(_) => count(STAT_DIRTY_FULL),
    }
}

#[inline(always)]
fn read_rss(mm: u64, member: u64) -> i64 {
    let off = config!(off_mm_rss_stat)
        + member * config!(size_rss_counter)
        + config!(off_rss_counter_value);
    read::<i64>(mm, off).unwrap_or(0)
}

/// Fills a state's memory figures from an mm (fork, exec, adoption).
#[inline(always)]
fn fill_from_mm(st: &mut ProcState, mm: u64) {
    st.total_vm = read::<u64>(mm, config!(off_mm_total_vm)).unwrap_or(0);
    let mut i = 0;
    while i < RSS_MEMBERS {
        st.rss[i] = read_rss(mm, i as u64);
        i += 1;
    }
}

/// A fresh state for `task` (a thread-group leader or any thread of it).
#[inline(always)]
fn new_state(task: u64, tgid: u32, flags: u32) -> ProcState {
    let mut st = ProcState {
        tgid,
        flags,
        ..ProcState::default()
    };
    let leader = read::<u64>(task, config!(off_task_group_leader)).unwrap_or(task);
    st.start_ns = read::<u64>(leader, config!(off_task_start_boottime)).unwrap_or(0);
    let parent = read::<u64>(leader, config!(off_task_real_parent)).unwrap_or(0);
    st.ppid = read::<u32>(parent, config!(off_task_tgid)).unwrap_or(0);
    st.comm = read::<[u8; COMM_LEN]>(leader, config!(off_task_comm)).unwrap_or([0; COMM_LEN]);
    if let Some(mm) = read::<u64>(task, config!(off_task_mm)) {
        fill_from_mm(&mut st, mm);
    }
    st.updated_ns = now();
    st
}

/// Whether a process not yet in the map should be adopted now. Only for the
/// current task: whole-system scope takes every process, cgroup scope the
/// ones running in the target cgroup; tree scope only grows through fork.
#[inline(always)]
fn adopt_current() -> bool {
    match config!(scope) {
        SCOPE_ALL => true,
        SCOPE_CGROUP => {
            // SAFETY: helper without arguments.
            let current = unsafe { bpf_get_current_cgroup_id() };
            current == config!(cgroup_id)
        }
        _ => false,
    }
}

/// The state for `tgid`, adopting the process first when the scope says so.
#[inline(always)]
fn state_for(tgid: u32, task: u64, is_current: bool) -> Option<*mut ProcState> {
    // Neither we nor the idle task are ever in the map: adopt() refuses them.
    if let Some(p) = PROCS.get_ptr_mut(tgid) {
        return Some(p);
    }
    if !is_current || !adopt_current() {
        return None;
    }
    adopt(tgid, task)
}

/// Inserts a state for `task`, a process not in the map that the scope
/// takes (the caller checked both).
#[inline(always)]
fn adopt(tgid: u32, task: u64) -> Option<*mut ProcState> {
    if u64::from(tgid) == config!(self_tgid) || tgid == 0 {
        return None;
    }
    let flags = read::<u32>(task, config!(off_task_flags)).unwrap_or(0);
    if flags & (PF_EXITING | PF_KTHREAD) != 0 {
        return None;
    }
    let mut st = new_state(task, tgid, 0);
    st.seq = 1;
    if PROCS.insert(tgid, st, 0).is_err() {
        count(STAT_PROCS_FULL);
        return None;
    }
    // Announced like a fork: a process whose memory never changes again
    // would otherwise never reach userspace (its seeding pass skips entries
    // the program created first).
    mark_dirty(tgid);
    PROCS.get_ptr_mut(tgid)
}

#[inline(always)]
fn touch(st: &mut ProcState) {
    // No timestamp here (a helper call on the page-fault path): userspace
    // stamps each observation with its snapshot time.
    st.seq = st.seq.wrapping_add(1);
    mark_dirty(st.tgid);
}

/// `kmem/rss_stat` (raw: `struct mm_struct *mm, int member`). Fires about
/// once per page-fault batch, for whichever task changed the mm: the owner
/// is found through `mm->owner`, so reclaim or another process touching this
/// memory (curr = 0 in the classic tracepoint) is attributed, not dropped.
#[raw_tracepoint(tracepoint = "rss_stat")]
pub fn rss_stat(ctx: RawTracePointContext) -> i32 {
    let mm: u64 = ctx.arg::<u64>(0);
    let member: i32 = ctx.arg::<i32>(1);
    if !(0..MAX_MEMBER).contains(&member) || mm == 0 {
        return 0;
    }
    // This runs on every page-fault batch of every tracked process: keep
    // kernel reads to the minimum (owner, its tgid, the one counter).
    let cur_tgid = (bpf_get_current_pid_tgid() >> 32) as u32;
    let (owner, tgid, is_current) = if config!(off_mm_owner) != ABSENT {
        let owner = read::<u64>(mm, config!(off_mm_owner)).unwrap_or(0);
        if owner == 0 {
            // The kernel clears mm->owner when the last task leaves an mm
            // (exit, or the old image after exec); what follows is its
            // teardown, for a process whose final record went out already.
            count(STAT_TEARDOWN);
            return 0;
        }
        let Some(tgid) = read::<u32>(owner, config!(off_task_tgid)) else {
            return 0;
        };
        // Threads share the mm, so same thread group = the current mm.
        (owner, tgid, tgid == cur_tgid)
    } else {
        let current = current_task();
        if read::<u64>(current, config!(off_task_mm)).unwrap_or(0) != mm {
            // Without CONFIG_MEMCG there is no mm->owner: a change made by
            // another task cannot be attributed. Counted and reported.
            count(STAT_UNATTRIBUTED);
            return 0;
        }
        (current, cur_tgid, true)
    };
    let Some(st) = state_for(tgid, owner, is_current) else {
        return 0;
    };
    // SAFETY: pointer into our own map's value, valid for this program run.
    let st = unsafe { &mut *st };
    if !is_current {
        count(STAT_FOREIGN_MM);
    }
    count(STAT_RSS_EVENTS);
    // total_vm is not re-read here: faults do not change it (the mmap
    // family, exec and fork refresh it).
    let m = member as usize;
    if m < RSS_MEMBERS {
        st.rss[m] = read_rss(mm, member as u64);
    }
    touch(st);
    0
}

/// Re-reads the current task's mm counters when its process is tracked.
/// The "switch" hook mode uses this instead of `rss_stat`: it runs when a
/// task leaves the CPU and from a slow per-CPU timer, not on every fault,
/// so a fault-heavy program pays almost nothing. Changes made to a
/// process's memory while it does not run (reclaim, another process
/// writing into it) are seen when it next runs.
#[inline(always)]
fn refresh_current(min_gap_ns: u64) {
    let tgid = (bpf_get_current_pid_tgid() >> 32) as u32;
    let st = match PROCS.get_ptr_mut(tgid) {
        Some(p) => p,
        None => match adopt_running(tgid) {
            Some(p) => p,
            None => return,
        },
    };
    // SAFETY: pointer into our own map's value.
    let st = unsafe { &mut *st };
    if min_gap_ns != 0 {
        // A process that blocks 100,000 times a second would otherwise pay
        // six kernel reads at every switch. What the gap can hide is what the process itself did in under 1 ms
        // since its last re-read, and only until it next runs or exits.
        let t = now();
        if t.wrapping_sub(st.updated_ns) < min_gap_ns {
            return;
        }
        st.updated_ns = t;
    }
    let Some(mm) = read::<u64>(current_task(), config!(off_task_mm)) else {
        return;
    };
    refresh_from_mm(st, mm);
}

/// Copies an mm's counters into a state, marking it dirty when any moved.
#[inline(always)]
fn refresh_from_mm(st: &mut ProcState, mm: u64) {
    if mm == 0 {
        return; // exiting: the exit record has the final figures
    }
    let mut changed = false;
    let mut i = 0;
    while i < RSS_MEMBERS {
        let v = read_rss(mm, i as u64);
        if v != st.rss[i] {
            st.rss[i] = v;
            changed = true;
        }
        i += 1;
    }
    if let Some(vm) = read::<u64>(mm, config!(off_mm_total_vm)) {
        if vm != st.total_vm {
            st.total_vm = vm;
            changed = true;
        }
    }
    if changed {
        count(STAT_RSS_EVENTS);
        touch(st);
    }
}

/// The `snapshot` hook: userspace runs this task iterator right before it
/// reads the dirty set, so every tracked process's figures are re-read at
/// each snapshot, running or asleep, and the monitored programs pay
/// nothing per fault or per context switch (the walk runs in the
/// recorder's own read(), on its CPU time).
///
/// The context is the kernel's `struct bpf_iter__task { meta; task; }`;
/// `task` is NULL on the final call.
#[no_mangle]
#[link_section = "iter/task"]
pub fn refresh_tasks(ctx: *mut core::ffi::c_void) -> u32 {
    // SAFETY: the verifier allows this load from an iterator's context.
    let task = unsafe { *(ctx as *const u64).add(1) };
    if task != 0 {
        refresh_task(task);
    }
    0
}

/// A field of a kernel object the verifier knows by its BTF type: a plain
/// load, which it turns into a fault-safe one (a bad pointer reads 0)
/// without the cost of a `bpf_probe_read_kernel` call. The offset must be
/// a constant to the verifier: `CONFIG` is frozen read-only data, so its
/// fields are.
///
/// Only for the task iterator, whose task pointer is BTF-typed, and the
/// pointers loaded from it; the other programs get untyped pointers.
#[inline(always)]
fn load<T: Copy>(base: u64, off: u64) -> T {
    // SAFETY: the verifier checks the access against the kernel's BTF.
    unsafe { core::ptr::read_volatile((base + off) as *const T) }
}

/// One RSS counter of a BTF-typed mm (see [`load`]).
#[inline(always)]
fn load_rss(mm: u64, member: u64) -> i64 {
    load::<i64>(
        mm,
        config!(off_mm_rss_stat)
            + member * config!(size_rss_counter)
            + config!(off_rss_counter_value),
    )
}

#[inline(always)]
fn refresh_task(task: u64) {
    // Plain loads (see `load`): the walk visits every task on the
    // machine at every snapshot, threads and untracked ones included.
    let mm: u64 = load(task, config!(off_task_mm));
    if mm == 0 {
        return; // a kernel thread, or exiting (its exit record follows)
    }
    let tgid: u32 = load(task, config!(off_task_tgid));
    if load::<u32>(task, config!(off_task_pid)) != tgid {
        // Threads share their leader's mm, and the leader is visited too;
        // unless it has exited alone, which clears its mm.
        let leader: u64 = load(task, config!(off_task_group_leader));
        if load::<u64>(leader, config!(off_task_mm)) != 0 {
            return;
        }
    }
    match PROCS.get_ptr_mut(tgid) {
        Some(st) => {
            // SAFETY: pointer into our own map's value.
            let st = unsafe { &mut *st };
            // Unrolled by hand: each offset must be a constant.
            let rss = [
                load_rss(mm, 0),
                load_rss(mm, 1),
                load_rss(mm, 2),
                load_rss(mm, 3),
            ];
            let vm: u64 = load(mm, config!(off_mm_total_vm));
            // Not `rss != st.rss`: that is a call to a memcmp subprogram.
            let moved = (rss[0] ^ st.rss[0])
                | (rss[1] ^ st.rss[1])
                | (rss[2] ^ st.rss[2])
                | (rss[3] ^ st.rss[3])
                | (vm ^ st.total_vm) as i64;
            if moved != 0 {
                st.rss = rss;
                st.total_vm = vm;
                count(STAT_RSS_EVENTS);
                touch(st);
            }
        }
        None => {
            // A process in scope that no fork or exec announced (moved into
            // the cgroup, or missed while the map was full).
            if in_scope(task) {
                let _ = adopt(tgid, task);
            }
        }
    }
}

/// Whether `task` (not the current task) belongs to the recording's scope.
#[inline(always)]
fn in_scope(task: u64) -> bool {
    match config!(scope) {
        SCOPE_ALL => true,
        SCOPE_CGROUP => {
            // task->cgroups->dfl_cgrp->kn->id, what bpf_get_current_cgroup_id
            // returns for the current task. Without the offsets a moved
            // process is not adopted (fork and exec inside still are).
            if config!(off_kernfs_node_id) == ABSENT {
                return false;
            }
            let css_set = read::<u64>(task, config!(off_task_cgroups)).unwrap_or(0);
            let cgrp = read::<u64>(css_set, config!(off_css_set_dfl_cgrp)).unwrap_or(0);
            let kn = read::<u64>(cgrp, config!(off_cgroup_kn)).unwrap_or(0);
            read::<u64>(kn, config!(off_kernfs_node_id)) == Some(config!(cgroup_id))
        }
        _ => false,
    }
}

/// The `switch` hook attaches no syscall tracepoints (any attached one
/// sends every syscall of every task on the machine through the slow path,
/// about 5% of a syscall-heavy program), so a process that entered the
/// scope without a fork or exec we saw (moved into the cgroup, or missed
/// while the map was full) is adopted here. Kernel threads have no mm and
/// are never adopted; in tree scope nothing is.
///
/// This runs at every switch of every task the map does not hold, so the
/// cheap scope test comes first and the map is not searched again.
#[inline(always)]
fn adopt_running(tgid: u32) -> Option<*mut ProcState> {
    if !adopt_current() {
        return None;
    }
    let task = current_task();
    if read::<u64>(task, config!(off_task_mm)).unwrap_or(0) == 0 {
        return None;
    }
    adopt(tgid, task)
}

/// Shortest time between two re-reads of one process's counters at
/// context switches (the 4 Hz timer is not limited).
const SWITCH_MIN_GAP_NS: u64 = 1_000_000;

/// `sched/sched_switch` (raw): the current task is the one leaving the CPU.
#[raw_tracepoint(tracepoint = "sched_switch")]
pub fn switch_out(_ctx: RawTracePointContext) -> i32 {
    refresh_current(SWITCH_MIN_GAP_NS);
    0
}

/// A per-CPU timer: catches a task that runs for long without switching.
#[perf_event]
pub fn cpu_tick(_ctx: PerfEventContext) -> u32 {
    refresh_current(0);
    0
}

/// `syscalls/sys_exit_{mmap,munmap,brk,mremap}`: the mapping changed, so
/// re-read `mm->total_vm` (the virtual size) of the calling process.
#[tracepoint]
pub fn vm_change(_ctx: TracePointContext) -> i32 {
    let tgid = (bpf_get_current_pid_tgid() >> 32) as u32;
    let task = current_task();
    let Some(st) = state_for(tgid, task, true) else {
        return 0;
    };
    // SAFETY: pointer into our own map's value.
    let st = unsafe { &mut *st };
    let Some(mm) = read::<u64>(task, config!(off_task_mm)) else {
        return 0;
    };
    count(STAT_VM_EVENTS);
    if let Some(vm) = read::<u64>(mm, config!(off_mm_total_vm)) {
        if vm != st.total_vm {
            st.total_vm = vm;
            touch(st);
        }
    }
    0
}

/// `sched/sched_process_fork` (raw: `parent, child`). A new process (not a
/// thread) whose parent is tracked is tracked too, with the figures of its
/// freshly copied mm: the rss_stat events of the copy fired before this.
#[raw_tracepoint(tracepoint = "sched_process_fork")]
pub fn process_fork(ctx: RawTracePointContext) -> i32 {
    let parent: u64 = ctx.arg::<u64>(0);
    let child: u64 = ctx.arg::<u64>(1);
    let Some(ptgid) = read::<u32>(parent, config!(off_task_tgid)) else {
        return 0;
    };
    let Some(ctgid) = read::<u32>(child, config!(off_task_tgid)) else {
        return 0;
    };
    if ctgid == ptgid || u64::from(ctgid) == config!(self_tgid) {
        return 0; // a thread, or ourselves
    }
    // kthreadd forks every kernel thread; whole-system scope would
    // otherwise take each one started during the recording.
    if read::<u32>(child, config!(off_task_flags)).unwrap_or(0) & PF_KTHREAD != 0 {
        return 0;
    }
    let tracked = PROCS.get_ptr(ptgid).is_some() || config!(scope) == SCOPE_ALL || {
        config!(scope) == SCOPE_CGROUP && adopt_current()
    };
    if !tracked {
        return 0;
    }
    count(STAT_FORKS);
    let mut st = new_state(child, ctgid, FLAG_FORKED);
    st.ppid = ptgid;
    st.seq = 1;
    // Overwrites a stale entry of an earlier process with this PID (its exit
    // record went out through EXITS already, or was counted as lost).
    if PROCS.insert(ctgid, st, 0).is_err() {
        count(STAT_PROCS_FULL);
        return 0;
    }
    mark_dirty(ctgid);
    0
}

/// `sched/sched_process_exec`: a new program image, so a new name and a new
/// mm; the current task is the one that exec'd.
#[tracepoint]
pub fn process_exec(_ctx: TracePointContext) -> i32 {
    let tgid = (bpf_get_current_pid_tgid() >> 32) as u32;
    let task = current_task();
    let Some(st) = state_for(tgid, task, true) else {
        return 0;
    };
    // SAFETY: pointer into our own map's value.
    let st = unsafe { &mut *st };
    count(STAT_EXECS);
    if let Ok(comm) = bpf_get_current_comm() {
        st.comm = comm;
    }
    if let Some(mm) = read::<u64>(task, config!(off_task_mm)) {
        fill_from_mm(st, mm);
    }
    st.flags |= FLAG_EXECED;
    st.execs = st.execs.wrapping_add(1);
    touch(st);
    0
}

/// `sched/sched_process_exit`: when the last thread goes, send the final
/// state to userspace and forget the process, so a process that lived a few
/// milliseconds is still recorded.
#[tracepoint]
pub fn process_exit(ctx: TracePointContext) -> i32 {
    let pid_tgid = bpf_get_current_pid_tgid();
    let tgid = (pid_tgid >> 32) as u32;
    let pid = pid_tgid as u32;
    let off = config!(tp_exit_group_dead);
    let group_dead = if off != ABSENT {
        // SAFETY: offset from the tracepoint's own format file.
        unsafe { ctx.read_at::<u8>(off as usize) }.unwrap_or(0) != 0
    } else {
        pid == tgid
    };
    if !group_dead {
        return 0;
    }
    let Some(st) = PROCS.get_ptr_mut(tgid) else {
        return 0;
    };
    // SAFETY: pointer into our own map's value.
    let st = unsafe { &mut *st };
    count(STAT_EXITS);
    let task = current_task();
    // Kernels that fire this tracepoint before exit_mm() still have the
    // mm: its counters are the true final figures, which the `switch` hook
    // would otherwise know only as of the last switch or tick.
    if let Some(mm) = read::<u64>(task, config!(off_task_mm)) {
        if mm != 0 {
            fill_from_mm(st, mm);
        }
    }
    st.exit_ns = now();
    st.exit_code = read::<i32>(task, config!(off_task_exit_code)).unwrap_or(0);
    st.flags |= FLAG_EXITED;
    st.seq = st.seq.wrapping_add(1);
    if EXITS.output::<ProcState>(&*st, 0).is_ok() {
        // A dirty mark stays: its queue entry is popped and finds no
        // state (or a new process with this pid, which is then read).
        let _ = PROCS.remove(tgid);
    } else {
        // Userspace finds the exited entry through the dirty set instead.
        count(STAT_EXITS_LOST);
        mark_dirty(tgid);
    }
    0
}

/// `signal/signal_deliver`, in the receiving task: remembers a stop request
/// (SIGHUP, SIGINT, SIGQUIT, SIGTERM) so that a process that then exits with
/// status 0 (a graceful shutdown) is known to have been stopped, not to have
/// finished its work.
#[tracepoint]
pub fn signal_deliver(ctx: TracePointContext) -> i32 {
    let off = config!(tp_signal_deliver_sig);
    if off == ABSENT {
        return 0;
    }
    // SAFETY: offset from the tracepoint's own format file.
    let sig = unsafe { ctx.read_at::<i32>(off as usize) }.unwrap_or(0);
    if !matches!(sig, 1 | 2 | 3 | 15) {
        return 0;
    }
    let tgid = (bpf_get_current_pid_tgid() >> 32) as u32;
    if let Some(st) = PROCS.get_ptr_mut(tgid) {
        // SAFETY: pointer into our own map's value.
        unsafe { (*st).stop_signal = sig as u32 };
    }
    0
}

/// `oom/mark_victim`: the OOM killer chose a victim and is about to send
/// it SIGKILL. This runs in the allocating task (often another process),
/// so the victim comes from the record's `pid`, not from the current task.
/// The flag rides on the state to the exit record, which tells an OOM kill
/// from any other SIGKILL.
///
/// The kernel reports the thread it found holding the mm: the group
/// leader, unless the leader already exited alone (then a thread id that
/// no tgid key matches, and the kill looks like any SIGKILL).
#[tracepoint]
pub fn mark_victim(ctx: TracePointContext) -> i32 {
    let off = config!(tp_mark_victim_pid);
    if off == ABSENT {
        return 0;
    }
    // SAFETY: offset from the tracepoint's own format file.
    let Ok(pid) = (unsafe { ctx.read_at::<i32>(off as usize) }) else {
        return 0;
    };
    if pid <= 0 {
        return 0;
    }
    if let Some(st) = PROCS.get_ptr_mut(pid as u32) {
        // SAFETY: pointer into our own map's value.
        let st = unsafe { &mut *st };
        st.flags |= FLAG_OOM_KILLED;
        touch(st);
    }
    0
}

#[cfg(not(test))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    loop {}
}

#[link_section = "license"]
#[no_mangle]
static LICENSE: [u8; 4] = *b"GPL\0";
