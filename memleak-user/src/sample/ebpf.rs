//! The eBPF sampler: loads `memleak-ebpf`, then reads only what changed.
//!
//! Per snapshot it drains the exit ring buffer (final states of processes
//! that ended) and the dirty set (processes whose counters moved), so its
//! cost follows the machine's activity, not its process count. A slower full
//! pass over the process map catches what a full dirty map or a lost exit
//! record would otherwise hide, and evicts entries of processes that are gone.

use std::collections::HashMap as StdHashMap;
use std::time::{Duration, Instant};

use aya::maps::{HashMap, MapData, PerCpuArray, Queue, RingBuf};
use aya::programs::perf_event::{PerfEventConfig, PerfEventScope, SamplePolicy, SoftwareEvent};
use aya::programs::{Iter, PerfEvent, RawTracePoint, TracePoint};
use aya::{Ebpf, EbpfLoader};
use memleak_common::globals as gl;
use memleak_common::proc::{ProcState, FLAG_SEEDED, RSS_ANON, RSS_FILE, RSS_SHMEM, RSS_SWAP};
use memleak_common::stats::{STAT_COUNT, STAT_DIRTY_FULL, STAT_NAMES, STAT_PROCS_FULL};

use super::btf_offsets::KernelOffsets;
use super::map_batch;
use super::procfs::ProcfsSampler;
use super::scope::CgroupMembers;
use super::{boottime_ns, tracefs, Counters, Exit, Mem, Observation, ProcId, ProcMeta};
use super::{SampleError, Sampler, Scope};

/// The compiled eBPF object; empty when the build had no bpf-linker.
pub(crate) static EBPF_OBJECT: &[u8] =
    aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/memleak"));

/// Whether this binary carries the eBPF program.
pub fn built_in() -> bool {
    !EBPF_OBJECT.is_empty()
}

/// Where the eBPF program learns that a process's memory changed.
///
/// The default is `Snapshot`. Measured (README, Benchmarks): it runs
/// nothing per fault or per context switch, and stayed at the noise floor
/// on every workload class (1.01x on a pipe ping-pong at 400,000 context
/// switches a second, where `Switch` cost 1.39x and `Faults` 1.04x). Its
/// price is in the recorder: the per-snapshot walk of every task costs
/// ~0.2% of a core per 1,000 processes at 1 s (1.2% at 100 ms). A leak
/// trend needs no per-fault precision, and exit figures stay exact.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum EbpfHook {
    /// `kmem/rss_stat`: on every RSS change (about once per page fault),
    /// plus the exits of the mmap-family syscalls for the virtual size.
    /// Exact, and attributes at once changes made by other tasks (reclaim,
    /// process_vm_writev); costs the most on fault-heavy programs.
    Faults,
    /// `sched_switch` plus a 4 Hz per-CPU timer: re-read when a process
    /// leaves the CPU (at most once per millisecond) and at exit. No syscall
    /// tracepoints, so other processes' syscalls stay on the fast path. A
    /// change made while a process sleeps shows when it next runs.
    Switch,
    /// A kernel task iterator that the recorder runs at each snapshot: it
    /// re-reads every tracked process's counters then, running or asleep.
    /// Nothing runs per fault or per context switch; exits are still
    /// caught by the exit tracepoint with their final figures.
    #[default]
    Snapshot,
}

/// Timer frequency of the `switch` hook, per CPU.
const SWITCH_TICK_HZ: u64 = 4;

/// Default capacity of the process map (processes alive at once).
pub const DEFAULT_MAX_PROCS: u32 = 65_536;

/// Smallest `--max-procs`: a map that cannot hold a shell and a few
/// children records nothing useful (and 0 fails to create at all).
pub const MIN_MAX_PROCS: u32 = 16;

/// Largest `--max-procs`: the kernel's pid_max ceiling (2^22); each slot
/// costs two map entries of kernel memory and a 4-byte queue slot.
pub const MAX_MAX_PROCS: u32 = 1 << 22;

/// `--max-procs`, checked while parsing so a bad value is a usage error
/// before anything loads.
pub fn parse_max_procs(s: &str) -> Result<u32, String> {
    let n: u32 = s
        .parse()
        .map_err(|_| format!("expected a number of processes, like {DEFAULT_MAX_PROCS}"))?;
    if !(MIN_MAX_PROCS..=MAX_MAX_PROCS).contains(&n) {
        return Err(format!(
            "must be at least {MIN_MAX_PROCS} and at most {MAX_MAX_PROCS} (processes alive at once; default {DEFAULT_MAX_PROCS})"
        ));
    }
    Ok(n)
}

/// How often the full pass over the process map runs.
const FULL_SCAN_EVERY: Duration = Duration::from_secs(30);

/// mmap-family syscalls whose exit refreshes the virtual size.
const VM_SYSCALLS: [&str; 4] = [
    "sys_exit_mmap",
    "sys_exit_munmap",
    "sys_exit_brk",
    "sys_exit_mremap",
];

/// The programs whose kernel run time the counters report, with the
/// counter's name. Programs run in the context of whatever task triggered
/// them (a page fault, a context switch, an exit) except `refresh_tasks`,
/// which runs inside the recorder's own read: the others are what a
/// watched program pays, which the overhead bench reports.
const PROGRAM_TIME_COUNTERS: [(&str, &str); 10] = [
    ("rss_stat", "bpf_run_ns_rss_stat"),
    ("switch_out", "bpf_run_ns_switch_out"),
    ("cpu_tick", "bpf_run_ns_cpu_tick"),
    ("vm_change", "bpf_run_ns_vm_change"),
    ("process_fork", "bpf_run_ns_process_fork"),
    ("process_exec", "bpf_run_ns_process_exec"),
    ("process_exit", "bpf_run_ns_process_exit"),
    ("signal_deliver", "bpf_run_ns_signal_deliver"),
    ("mark_victim", "bpf_run_ns_mark_victim"),
    ("refresh_tasks", "bpf_run_ns_refresh_tasks"),
];

pub struct EbpfSampler {
    // Keeps programs attached; dropping it detaches them.
    ebpf: Ebpf,
    /// The `snapshot` hook: run the task iterator before each snapshot.
    refresh: bool,
    procs: HashMap<MapData, u32, ProcState>,
    dirty: HashMap<MapData, u32, u8>,
    /// The keys of `dirty`, one entry each: popped instead of listing
    /// `dirty` (a listing walks all its buckets, however few keys).
    dirty_queue: Queue<MapData, u32>,
    exits: RingBuf<MapData>,
    stats: PerCpuArray<MapData, u64>,
    page_size: u64,
    self_pid: u32,
    /// Last seq seen per tgid, to skip unchanged entries in full passes.
    seen: StdHashMap<u32, (u64, u64)>,
    /// Command line per process, with the exec count it was read under:
    /// read again after each exec (a fork copy has its parent's).
    cmdlines: StdHashMap<ProcId, (u32, Option<String>)>,
    last_full_scan: Instant,
    /// `procs_map_full` at the last full pass: when it rises, the map is
    /// full, so dead entries are evicted at once instead of up to 30 s later.
    procs_full_seen: u64,
    /// `dirty_map_full` (with `dirty_lost`) at the last full pass: when it
    /// rises, a change went unmarked and only the full pass finds it.
    dirty_full_seen: u64,
    /// Marks userspace could not queue (seeding, `track`), counted into
    /// `dirty_map_full`.
    dirty_lost: u64,
    /// Run the full pass at the next snapshot and report every entry in
    /// it (see [`Sampler::resync`]).
    resync: bool,
    evicted: u64,
    /// Processes the seeding pass found no room for: added to the
    /// program's `procs_map_full`, the same loss.
    seed_full: u64,
    /// Cgroup scope: who is in the cgroup, and the pids listed there at
    /// this snapshot (read once per snapshot, when first needed).
    cgroup: Option<CgroupMembers>,
    members: Option<std::collections::HashSet<u32>>,
    /// Processes dropped because they moved out of the cgroup.
    left_scope: u64,
    limitations: Vec<String>,
}

/// A refusal for lack of privilege ([`crate::sysinfo::refused_permission`],
/// the rule locate uses too) is [`SampleError::Permission`], which says
/// what to grant; anything else is [`SampleError::Ebpf`].
fn load_error<E: std::error::Error + 'static>(e: E) -> SampleError {
    let msg = e.to_string();
    if crate::sysinfo::refused_permission(&e) {
        SampleError::Permission(msg)
    } else {
        SampleError::Ebpf(msg)
    }
}

impl EbpfSampler {
    /// With the default hook ([`EbpfHook::default`], what the CLI uses
    /// too). [`EbpfSampler::with_hook`] chooses the hook.
    pub fn new(scope: Scope, self_pid: u32, max_procs: u32) -> Result<Self, SampleError> {
        Self::with_hook(scope, self_pid, max_procs, EbpfHook::default())
    }

    pub fn with_hook(
        scope: Scope,
        self_pid: u32,
        max_procs: u32,
        hook: EbpfHook,
    ) -> Result<Self, SampleError> {
        Self::with_dirty_queue(scope, self_pid, max_procs, hook, max_procs)
    }

    /// [`EbpfSampler::with_hook`] with a dirty queue of `queue_entries`
    /// instead of `max_procs`: tests make it too small to check that a full
    /// queue loses nothing.
    #[doc(hidden)]
    pub fn with_dirty_queue(
        scope: Scope,
        self_pid: u32,
        max_procs: u32,
        hook: EbpfHook,
        queue_entries: u32,
    ) -> Result<Self, SampleError> {
        if !built_in() {
            return Err(SampleError::NotBuiltIn(
                option_env!("MEMLEAK_EBPF_MISSING").unwrap_or("the eBPF object was empty"),
            ));
        }
        if !crate::sysinfo::bpf_capable() {
            return Err(SampleError::Permission(format!(
                "this process lacks {} (or CAP_SYS_ADMIN)",
                crate::sysinfo::missing_bpf_caps().join(" and ")
            )));
        }
        let off = KernelOffsets::from_sysfs()?;
        let tracefs = tracefs::tracefs_root()?;
        for (cat, name) in [("kmem", "rss_stat"), ("sched", "sched_process_exit")] {
            if !tracefs::has_tracepoint(&tracefs, cat, name) {
                return Err(SampleError::Unsupported(format!(
                    "tracepoint {cat}/{name} is missing"
                )));
            }
        }
        let exit_fmt = tracefs::read_format(&tracefs, "sched", "sched_process_exit")?;
        let group_dead = tracefs::field_offset(&exit_fmt, "group_dead").unwrap_or(gl::ABSENT);
        let signal_sig = if tracefs::has_tracepoint(&tracefs, "signal", "signal_deliver") {
            tracefs::read_format(&tracefs, "signal", "signal_deliver")
                .ok()
                .and_then(|f| tracefs::field_offset(&f, "sig"))
                .unwrap_or(gl::ABSENT)
        } else {
            gl::ABSENT
        };
        let victim_pid = if tracefs::has_tracepoint(&tracefs, "oom", "mark_victim") {
            tracefs::read_format(&tracefs, "oom", "mark_victim")
                .ok()
                .and_then(|f| tracefs::field_offset(&f, "pid"))
                .unwrap_or(gl::ABSENT)
        } else {
            gl::ABSENT
        };
        let page_size = crate::sysinfo::page_size();
        let (scope_mode, cgroup_id) = match &scope {
            Scope::All => (gl::SCOPE_ALL, 0),
            Scope::Tree(_) => (gl::SCOPE_TREE, 0),
            Scope::Cgroup(path) => (
                gl::SCOPE_CGROUP,
                crate::sysinfo::cgroup_id(path).map_err(|e| SampleError::Io {
                    path: path.display().to_string(),
                    source: std::io::Error::other(e.to_string()),
                })?,
            ),
        };
        let chain = off.cgroup_id_chain.unwrap_or([gl::ABSENT; 4]);
        let config = gl::Config {
            off_task_mm: off.task_mm,
            off_task_pid: off.task_pid,
            off_task_flags: off.task_flags,
            off_task_tgid: off.task_tgid,
            off_task_start_boottime: off.task_start_boottime,
            off_task_real_parent: off.task_real_parent,
            off_task_group_leader: off.task_group_leader,
            off_task_exit_code: off.task_exit_code,
            off_task_comm: off.task_comm,
            off_mm_total_vm: off.mm_total_vm,
            off_mm_rss_stat: off.mm_rss_stat,
            off_mm_owner: off.mm_owner.unwrap_or(gl::ABSENT),
            off_rss_counter_value: off.rss_counter_value,
            size_rss_counter: off.rss_counter_size,
            off_task_cgroups: chain[0],
            off_css_set_dfl_cgrp: chain[1],
            off_cgroup_kn: chain[2],
            off_kernfs_node_id: chain[3],
            tp_exit_group_dead: group_dead,
            tp_signal_deliver_sig: signal_sig,
            tp_mark_victim_pid: victim_pid,
            scope: scope_mode,
            cgroup_id,
            self_tgid: u64::from(self_pid),
        };
        let mut loader = EbpfLoader::new();
        loader.override_global(gl::CONFIG, &config, true);
        loader.map_max_entries("PROCS", max_procs);
        loader.map_max_entries("DIRTY", max_procs);
        loader.map_max_entries("DIRTY_QUEUE", queue_entries.max(1));
        let mut ebpf = loader.load(EBPF_OBJECT).map_err(load_error)?;

        let mut limitations = Vec::new();
        let mut hook = hook;
        if hook == EbpfHook::Snapshot {
            if let Err(e) = load_iter(&mut ebpf) {
                // Task iterators need Linux 5.8 and BTF: the next cheapest.
                limitations.push(format!(
                    "eBPF hook `snapshot` is unavailable ({e}); using `switch`"
                ));
                hook = EbpfHook::Switch;
            } else if matches!(scope, Scope::Cgroup(_)) && off.cgroup_id_chain.is_none() {
                limitations.push(
                    "kernel BTF lacks the task-to-cgroup fields: a process moved into the \
                     cgroup during the recording is not followed (its children forked \
                     inside are)"
                        .to_string(),
                );
            }
        }
        match hook {
            EbpfHook::Snapshot => {}
            EbpfHook::Faults => attach_raw(&mut ebpf, "rss_stat", "rss_stat")?,
            EbpfHook::Switch => {
                attach_raw(&mut ebpf, "switch_out", "sched_switch")?;
                let prog: &mut PerfEvent = program(&mut ebpf, "cpu_tick")?;
                prog.load().map_err(load_error)?;
                let cpus = aya::util::online_cpus()
                    .map_err(|(what, e)| SampleError::Ebpf(format!("{what}: {e}")))?;
                for cpu in cpus {
                    prog.attach(
                        PerfEventConfig::Software(SoftwareEvent::CpuClock),
                        PerfEventScope::AllProcessesOneCpu { cpu },
                        SamplePolicy::Frequency(SWITCH_TICK_HZ),
                        false,
                    )
                    .map_err(load_error)?;
                }
                limitations.push(
                    "eBPF hook `switch`: memory is re-read when a process leaves the CPU and \
                     at 4 Hz while it runs, not on every page fault; changes made to a \
                     process's memory while it sleeps (reclaim, another process writing into \
                     it) show when it next runs"
                        .to_string(),
                );
            }
        }
        attach_raw(&mut ebpf, "process_fork", "sched_process_fork")?;
        // The switch hook re-reads the virtual size at every refresh, and a
        // syscall tracepoint would slow every syscall on the machine.
        if hook == EbpfHook::Faults {
            let prog: &mut TracePoint = program(&mut ebpf, "vm_change")?;
            prog.load().map_err(load_error)?;
            let mut missing = Vec::new();
            for sc in VM_SYSCALLS {
                if prog.attach("syscalls", sc).is_err() {
                    missing.push(sc);
                }
            }
            if !missing.is_empty() {
                limitations.push(format!(
                    "virtual size is refreshed only on page faults: syscall tracepoints {} are unavailable",
                    missing.join(", ")
                ));
            }
        }
        for (prog, tp) in [
            ("process_exec", "sched_process_exec"),
            ("process_exit", "sched_process_exit"),
        ] {
            let p: &mut TracePoint = program(&mut ebpf, prog)?;
            p.load().map_err(load_error)?;
            p.attach("sched", tp).map_err(load_error)?;
        }
        // Stop requests tell a graceful shutdown from a finished batch; a
        // kernel without the tracepoint loses only that.
        let signals = (signal_sig != gl::ABSENT)
            .then(|| {
                let p: &mut TracePoint = program(&mut ebpf, "signal_deliver").ok()?;
                p.load().ok()?;
                p.attach("signal", "signal_deliver").ok()
            })
            .flatten()
            .is_some();
        if !signals {
            limitations.push(
                "tracepoint signal/signal_deliver is unavailable: a process that exits with \
                 status 0 after SIGTERM or SIGINT looks like one that finished on its own"
                    .to_string(),
            );
        }
        // OOM kills are evidence of a leak; without the tracepoint they are
        // still recorded, as a kill by SIGKILL.
        let oom = (victim_pid != gl::ABSENT)
            .then(|| {
                let p: &mut TracePoint = program(&mut ebpf, "mark_victim").ok()?;
                p.load().ok()?;
                p.attach("oom", "mark_victim").ok()
            })
            .flatten()
            .is_some();
        if !oom {
            limitations.push(
                "tracepoint oom/mark_victim is unavailable: a process killed by the kernel's \
                 OOM killer looks like one killed by any SIGKILL"
                    .to_string(),
            );
        }

        let take = |ebpf: &mut Ebpf, name: &str| {
            ebpf.take_map(name).ok_or_else(|| {
                SampleError::Ebpf(format!("map {name} missing from the eBPF object"))
            })
        };
        let procs = HashMap::try_from(take(&mut ebpf, "PROCS")?).map_err(load_error)?;
        let dirty = HashMap::try_from(take(&mut ebpf, "DIRTY")?).map_err(load_error)?;
        let dirty_queue = Queue::try_from(take(&mut ebpf, "DIRTY_QUEUE")?).map_err(load_error)?;
        let exits = RingBuf::try_from(take(&mut ebpf, "EXITS")?).map_err(load_error)?;
        let stats = PerCpuArray::try_from(take(&mut ebpf, "STATS")?).map_err(load_error)?;

        let mut sampler = EbpfSampler {
            ebpf,
            refresh: hook == EbpfHook::Snapshot,
            procs,
            dirty,
            dirty_queue,
            exits,
            stats,
            page_size,
            self_pid,
            seen: StdHashMap::new(),
            cmdlines: StdHashMap::new(),
            last_full_scan: Instant::now(),
            procs_full_seen: 0,
            dirty_full_seen: 0,
            dirty_lost: 0,
            resync: false,
            evicted: 0,
            seed_full: 0,
            cgroup: match &scope {
                Scope::Cgroup(dir) => Some(CgroupMembers::new(dir)),
                _ => None,
            },
            members: None,
            left_scope: 0,
            limitations,
        };
        // Processes that exist already never fork in front of us: seed them
        // from procfs so they are tracked from the first snapshot. For a
        // tree that includes the roots' existing descendants: a child
        // started before the recording is in scope but forked unseen.
        // An empty tree waits for `track` (the command `record` starts).
        if !matches!(&scope, Scope::Tree(roots) if roots.is_empty()) {
            sampler.seed(scope)?;
        }
        Ok(sampler)
    }

    /// Inserts processes found by a one-off procfs pass into the map. A
    /// full map is counted like the program counts it (`procs_map_full`),
    /// not an error: the recording goes on with what fits.
    fn seed(&mut self, scope: Scope) -> Result<(), SampleError> {
        let mut procfs = ProcfsSampler::new(scope, self.self_pid)?;
        for o in procfs.snapshot()? {
            if o.exit.is_some() {
                continue;
            }
            let state = self.state_from(&o);
            // An entry the program created meanwhile is fresher: keep it.
            if self.procs.get(&o.id.pid, 0).is_err() {
                if self.procs.insert(o.id.pid, state, 0).is_err() {
                    self.seed_full += 1;
                    continue;
                }
                self.mark_dirty(o.id.pid);
            }
        }
        Ok(())
    }

    fn state_from(&self, o: &Observation) -> ProcState {
        let pages = |b: u64| (b / self.page_size) as i64;
        let mut comm = [0u8; 16];
        let n = o.meta.comm.len().min(15);
        comm[..n].copy_from_slice(&o.meta.comm.as_bytes()[..n]);
        let mut st = ProcState {
            start_ns: o.id.start_ns,
            updated_ns: o.at_ns,
            total_vm: o.mem.vm / self.page_size,
            tgid: o.id.pid,
            ppid: o.meta.ppid,
            flags: FLAG_SEEDED,
            comm,
            seq: 1,
            ..ProcState::default()
        };
        st.rss[RSS_ANON] = pages(o.mem.rss_anon);
        st.rss[RSS_FILE] = pages(o.mem.rss_file);
        st.rss[RSS_SHMEM] = pages(o.mem.rss_shmem);
        st.rss[RSS_SWAP] = pages(o.mem.swap);
        st
    }

    fn observation(&mut self, st: &ProcState, exit: Option<Exit>) -> Observation {
        let ps = self.page_size;
        let pages = |p: i64| p.max(0) as u64 * ps;
        let id = ProcId {
            pid: st.tgid,
            start_ns: st.start_ns,
        };
        let comm = st.comm_str().to_string();
        let cmdline = match self.cmdlines.get(&id) {
            // An empty read right after exec (arguments not in place yet)
            // is retried at the next observation.
            Some((execs, line)) if *execs == st.execs && line.is_some() => line.clone(),
            _ => {
                let line = if exit.is_none() {
                    read_cmdline(st.tgid)
                } else {
                    None
                };
                self.cmdlines.insert(id, (st.execs, line.clone()));
                line
            }
        };
        if exit.is_some() {
            self.cmdlines.remove(&id);
            self.seen.remove(&st.tgid);
        } else {
            self.seen.insert(st.tgid, (st.start_ns, st.seq));
        }
        Observation {
            id,
            // The figures are as of now (the program keeps no per-event
            // timestamp: it would cost a helper call per page fault).
            at_ns: if exit.is_some() {
                st.exit_ns
            } else {
                boottime_ns()
            },
            mem: Mem {
                vm: st.total_vm * ps,
                rss_anon: pages(st.rss[RSS_ANON]),
                rss_file: pages(st.rss[RSS_FILE]),
                rss_shmem: pages(st.rss[RSS_SHMEM]),
                swap: pages(st.rss[RSS_SWAP]),
            },
            meta: ProcMeta {
                ppid: st.ppid,
                comm,
                cmdline,
            },
            exit,
        }
    }

    fn drain_exits(&mut self, out: &mut Vec<Observation>) {
        let mut finals = Vec::new();
        while let Some(item) = self.exits.next() {
            if item.len() >= std::mem::size_of::<ProcState>() {
                // SAFETY: the program writes whole ProcState records; the
                // read is unaligned-safe.
                let st: ProcState = unsafe { std::ptr::read_unaligned(item.as_ptr().cast()) };
                finals.push(st);
            }
        }
        for st in finals {
            let exit = Exit {
                at_ns: st.exit_ns,
                code: Some(st.exit_code),
                stop_signal: (st.stop_signal != 0).then_some(st.stop_signal as i32),
                oom_killed: st.oom_killed(),
            };
            let o = self.observation(&st, Some(exit));
            out.push(o);
        }
    }

    /// Marks a process dirty like the program does (see `mark_dirty`
    /// there): the insert that wins queues the tgid.
    fn mark_dirty(&mut self, tgid: u32) {
        const BPF_NOEXIST: u64 = 1;
        if self.dirty.insert(tgid, 1, BPF_NOEXIST).is_ok()
            && self.dirty_queue.push(tgid, 0).is_err()
        {
            let _ = self.dirty.remove(&tgid);
            self.dirty_lost += 1;
        }
    }

    fn drain_dirty(&mut self, out: &mut Vec<Observation>, exits: &mut Vec<Observation>) {
        // Pop first, then read: a program marking a process again after
        // its key is removed pushes it again, for the next snapshot. The
        // queue is bounded by the keys, so this ends.
        let mut keys = Vec::new();
        while let Ok(tgid) = self.dirty_queue.pop(0) {
            keys.push(tgid);
        }
        for tgid in keys {
            // Remove first: a change after this point marks it dirty again.
            let _ = self.dirty.remove(&tgid);
            let Ok(st) = self.procs.get(&tgid, 0) else {
                continue;
            };
            self.emit(st, out, exits);
        }
    }

    /// Cgroup scope: whether a live process has moved out of the cgroup.
    /// The program keeps tracking a process (and adopting its children at
    /// fork) once it is in the map, so the move is noticed here. The
    /// member list is the fast path; a pid missing from it is confirmed
    /// through its own cgroup file, which an exiting process keeps.
    fn left_cgroup(&mut self, tgid: u32) -> bool {
        let Some(cg) = &self.cgroup else {
            return false;
        };
        let members = self.members.get_or_insert_with(|| cg.pids().0);
        !members.contains(&tgid) && cg.holds(tgid) == Some(false)
    }

    /// Stops tracking a process that left the scope: no exit is recorded
    /// (it did not exit), its series just ends.
    fn drop_out_of_scope(&mut self, st: &ProcState) {
        // Its dirty mark (if any) stays: the queue entry removes it.
        let _ = self.procs.remove(&st.tgid);
        self.seen.remove(&st.tgid);
        self.cmdlines.remove(&ProcId {
            pid: st.tgid,
            start_ns: st.start_ns,
        });
        self.left_scope += 1;
    }

    fn emit(&mut self, st: ProcState, out: &mut Vec<Observation>, exits: &mut Vec<Observation>) {
        if !st.exited() && self.left_cgroup(st.tgid) {
            self.drop_out_of_scope(&st);
            return;
        }
        if st.exited() {
            // The exit ring buffer was full: the program left the final
            // state in the map for us.
            let _ = self.procs.remove(&st.tgid);
            let exit = Exit {
                at_ns: st.exit_ns,
                code: Some(st.exit_code),
                stop_signal: (st.stop_signal != 0).then_some(st.stop_signal as i32),
                oom_killed: st.oom_killed(),
            };
            let o = self.observation(&st, Some(exit));
            exits.push(o);
        } else {
            let o = self.observation(&st, None);
            out.push(o);
        }
    }

    /// Walks the whole process map: reports entries changed but not marked
    /// dirty (dirty map was full) and evicts processes that are gone without
    /// an exit record, so the map never fills with the dead.
    ///
    /// At 10,000 processes this must stay cheap: the map is read in
    /// batches, and liveness comes from one listing of /proc rather than a
    /// read of /proc/PID/stat per entry.
    fn full_scan(&mut self, out: &mut Vec<Observation>, exits: &mut Vec<Observation>) {
        let entries: Vec<(u32, ProcState)> = match map_batch::lookup_all(&self.procs) {
            Ok(v) => v,
            Err(_) => self.procs.iter().filter_map(Result::ok).collect(),
        };
        let listed = live_pids();
        let now = boottime_ns();
        for (tgid, st) in entries {
            if st.exited() {
                self.emit(st, out, exits);
                continue;
            }
            let gone = match &listed {
                // A listed pid is taken as the same process: a reused pid
                // in scope was overwritten at its fork, and one out of
                // scope only delays this eviction until it exits too.
                Some(pids) => !pids.contains(&tgid),
                None => !alive(tgid, st.start_ns),
            };
            if gone {
                let _ = self.procs.remove(&tgid);
                self.evicted += 1;
                let mut st = st;
                st.exit_ns = now;
                let o = self.observation(
                    &st,
                    Some(Exit {
                        at_ns: now,
                        code: None,
                        stop_signal: (st.stop_signal != 0).then_some(st.stop_signal as i32),
                        oom_killed: st.oom_killed(),
                    }),
                );
                exits.push(o);
                continue;
            }
            // One that left the cgroup without changing since is dropped
            // here, not only when it next changes.
            if self.left_cgroup(tgid) {
                self.drop_out_of_scope(&st);
                continue;
            }
            if self.seen.get(&tgid) != Some(&(st.start_ns, st.seq)) {
                self.emit(st, out, exits);
            }
        }
    }
}

/// The pids in /proc now (processes, not threads), or None when /proc
/// cannot be listed.
fn live_pids() -> Option<std::collections::HashSet<u32>> {
    let dir = std::fs::read_dir("/proc").ok()?;
    Some(
        dir.filter_map(Result::ok)
            .filter_map(|e| e.file_name().to_str()?.parse().ok())
            .collect(),
    )
}

impl EbpfSampler {
    /// Runs the `snapshot` hook's task iterator once: every tracked
    /// process's counters are re-read and the changed ones marked dirty.
    /// An iterator instance runs once, so each snapshot attaches a fresh
    /// link (two syscalls) and reads it to the end; the program writes
    /// nothing, so that is one read().
    fn refresh_all(&mut self) -> Result<(), SampleError> {
        let prog: &mut Iter = program(&mut self.ebpf, "refresh_tasks")?;
        let id = prog.attach().map_err(load_error)?;
        let link = prog.take_link(id).map_err(load_error)?;
        let mut file = link.into_file().map_err(load_error)?;
        std::io::copy(&mut file, &mut std::io::sink()).map_err(|e| SampleError::Io {
            path: "eBPF task iterator".to_string(),
            source: e,
        })?;
        Ok(())
    }

    /// One health counter, summed over the CPUs.
    fn stat(&self, i: u32) -> u64 {
        self.stats
            .get(&i, 0)
            .map(|v| v.iter().sum::<u64>())
            .unwrap_or(0)
    }
}

/// Whether the process `tgid` that started at `start_ns` still exists.
fn alive(tgid: u32, start_ns: u64) -> bool {
    match start_ns_of(tgid) {
        Some(s) => {
            // procfs start time is in clock ticks: compare at that precision.
            let tick = 1_000_000_000 / crate::sysinfo::clock_ticks().max(1);
            s.abs_diff(start_ns) <= tick
        }
        None => false,
    }
}

/// Start time (ns since boot) of `pid` from /proc/PID/stat field 22.
pub(crate) fn start_ns_of(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the last ')' (comm may contain anything); starttime is the
    // 22nd field overall, the 20th after comm.
    let rest = &stat[stat.rfind(')')? + 1..];
    let ticks: u64 = rest.split_whitespace().nth(19)?.parse().ok()?;
    Some(ticks * (1_000_000_000 / crate::sysinfo::clock_ticks().max(1)))
}

fn read_cmdline(pid: u32) -> Option<String> {
    let raw = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
    let s: String = String::from_utf8_lossy(&raw)
        .split('\0')
        .filter(|a| !a.is_empty())
        .collect::<Vec<_>>()
        .join(" ");
    (!s.is_empty()).then_some(s)
}

fn program<'a, T>(ebpf: &'a mut Ebpf, name: &str) -> Result<&'a mut T, SampleError>
where
    &'a mut T: TryFrom<&'a mut aya::programs::Program>,
{
    let p = ebpf
        .program_mut(name)
        .ok_or_else(|| SampleError::Ebpf(format!("program {name} missing from the eBPF object")))?;
    p.try_into()
        .map_err(|_| SampleError::Ebpf(format!("program {name} has an unexpected type")))
}

fn load_iter(ebpf: &mut Ebpf) -> Result<(), SampleError> {
    let btf = aya::Btf::from_sys_fs().map_err(load_error)?;
    let p: &mut Iter = program(ebpf, "refresh_tasks")?;
    p.load("task", &btf).map_err(load_error)
}

fn attach_raw(ebpf: &mut Ebpf, prog: &str, tp: &str) -> Result<(), SampleError> {
    let p: &mut RawTracePoint = program(ebpf, prog)?;
    p.load().map_err(load_error)?;
    p.attach(tp).map_err(load_error)?;
    Ok(())
}

impl Sampler for EbpfSampler {
    fn name(&self) -> &'static str {
        "ebpf"
    }

    fn snapshot(&mut self) -> Result<Vec<Observation>, SampleError> {
        self.members = None;
        if self.refresh {
            self.refresh_all()?;
        }
        if self.resync {
            // The full pass below skips entries whose seq is in `seen`:
            // forgetting it reports every entry, and the dirty ones drained
            // first are remembered again so none is reported twice.
            self.seen.clear();
        }
        let mut out = Vec::new();
        let mut exits = Vec::new();
        self.drain_dirty(&mut out, &mut exits);
        // A full map: evict the dead now (at most once a second) rather
        // than at the next periodic pass.
        let procs_full = self.stat(STAT_PROCS_FULL);
        // An unmarked change (full dirty map or queue) is found only here.
        let dirty_full = self.stat(STAT_DIRTY_FULL) + self.dirty_lost;
        let since = self.last_full_scan.elapsed();
        if self.resync
            || since >= FULL_SCAN_EVERY
            || ((procs_full > self.procs_full_seen || dirty_full > self.dirty_full_seen)
                && since >= Duration::from_secs(1))
        {
            self.procs_full_seen = procs_full;
            self.dirty_full_seen = dirty_full;
            self.last_full_scan = Instant::now();
            self.resync = false;
            self.full_scan(&mut out, &mut exits);
        }
        // Exits last: a process's final record follows its other samples.
        self.drain_exits(&mut exits);
        out.append(&mut exits);
        Ok(out)
    }

    fn resync(&mut self) {
        self.resync = true;
    }

    fn track(&mut self, pid: u32) -> Result<(), SampleError> {
        let mut procfs = ProcfsSampler::new(Scope::Tree(vec![pid]), self.self_pid)?;
        let obs = procfs.snapshot()?;
        let Some(o) = obs.iter().find(|o| o.id.pid == pid && o.exit.is_none()) else {
            return Err(SampleError::Io {
                path: format!("/proc/{pid}"),
                source: std::io::Error::from(std::io::ErrorKind::NotFound),
            });
        };
        let st = self.state_from(o);
        self.procs
            .insert(pid, st, 0)
            .map_err(|e| SampleError::Ebpf(format!("tracking pid {pid}: {e}")))?;
        self.mark_dirty(pid);
        Ok(())
    }

    fn counters(&mut self) -> Counters {
        let mut c: Counters = Vec::new();
        for i in 0..STAT_COUNT {
            let sum = self
                .stats
                .get(&i, 0)
                .map(|v| v.iter().sum::<u64>())
                .unwrap_or(0);
            let sum = match i {
                STAT_PROCS_FULL => sum + self.seed_full,
                STAT_DIRTY_FULL => sum + self.dirty_lost,
                _ => sum,
            };
            c.push((STAT_NAMES[i as usize], sum));
        }
        c.push(("evicted_without_exit_record", self.evicted));
        if self.cgroup.is_some() {
            c.push(("left_cgroup_scope", self.left_scope));
        }
        // Entries in the process map right now: near the number of live
        // processes in scope, or entries are leaking.
        let entries = match map_batch::lookup_all(&self.procs) {
            Ok(v) => v.len(),
            Err(_) => self.procs.keys().filter(Result::is_ok).count(),
        } as u64;
        c.push(("procs_map_entries", entries));
        // The kernel times programs only while statistics are on (sysctl
        // kernel.bpf_stats_enabled=1, or BPF_ENABLE_STATS held): otherwise
        // every figure is 0 and none is written.
        for (prog, counter) in PROGRAM_TIME_COUNTERS {
            let ns = self
                .ebpf
                .program(prog)
                .and_then(|p| p.info().ok())
                .map_or(0, |i| i.run_time().as_nanos() as u64);
            if ns > 0 {
                c.push((counter, ns));
            }
        }
        c
    }

    fn limitations(&self) -> Vec<String> {
        self.limitations.clone()
    }
}
