//! `locate`: from a suspect process to the code paths that grow it.
//!
//! The rest of memleak says *which* process grows; this says *where*. A
//! perf-event eBPF program samples one page fault in every `period` of the
//! target process (see [`probe`]), with the faulting thread's user stack.
//! An anonymous page fault is memory touched for the first time, so a
//! stack's share of the samples is its share of the newly touched memory:
//! `samples × period × page size` estimates its bytes.
//!
//! What it measures, and does not: where new memory is *first touched*,
//! not what is *kept*. A path that allocates and frees the same memory
//! again faults once, then reuses the pages; one that frees to the kernel
//! (large blocks are their own mmap) faults again at every allocation and
//! looks as hungry as a leak. Retention needs the frees too: the planned
//! allocator-uprobe mode (malloc/free) is a later step.
//!
//! Stacks are unwound by the kernel with frame pointers: code built
//! without them (most distribution libraries, `-O2` C without
//! `-fno-omit-frame-pointer`, Rust without `-C force-frame-pointers`)
//! skips or truncates frames; a fault inside libc's `memset` is charged to
//! the caller's caller.

pub mod maps;

pub mod probe;

pub mod symbols;

use std::collections::{HashMap, HashSet};
use std::sync::mpsc::{channel, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use serde::Serialize;

use crate::sample::ProcId;
use probe::{Count, FaultProbe, ProbeTap};
use symbols::Symbols;

/// Default page faults per sample. A prime, so a loop that touches a fixed
/// number of pages per turn cannot alias with the sampling (a period of 16
/// would always sample the same one of 16 sites). At ~100 faults per
/// sample a program faulting 600,000 times a second (2.4 GB/s of new
/// memory) runs the program 6,000 times a second, a few ms of CPU, while a
/// 10 MB/s leak still gets ~25 samples a second.
pub const DEFAULT_PERIOD: u64 = 97;

#[derive(Debug, thiserror::Error)]
pub enum LocateError {
    #[error("locate needs the eBPF programs, which are not built into this binary ({0} at build time); run `cargo xtask setup` and rebuild")]
    NotBuiltIn(&'static str),
    #[error("locate needs privileges: {0}; run as root, or grant CAP_BPF and CAP_PERFMON (and lower kernel.perf_event_paranoid if your kernel asks for it)")]
    Permission(String),
    #[error("the sample period must be at least 1 page fault")]
    Period,
    #[error("process {0} does not exist (it may have exited); check the PID with `ps`")]
    Gone(u32),
    #[error("eBPF error: {0}")]
    Ebpf(String),
    #[error("cannot start the stack-naming thread: {0}")]
    Thread(#[source] std::io::Error),
    #[error("reading {path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
}

/// One frame of a sampled stack.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize)]
pub struct Frame {
    /// The address as sampled (a return address for all but the innermost).
    pub addr: u64,
    /// Function name, demangled; None when it could not be named.
    pub function: Option<String>,
    /// `file.c:12` (debug info) or the module's file name (`libc.so.6`).
    pub location: Option<String>,
}

impl Frame {
    /// `function (location)`, or the address in hex.
    pub fn label(&self) -> String {
        match (&self.function, &self.location) {
            (Some(f), Some(l)) => format!("{f} ({l})"),
            (Some(f), None) => f.clone(),
            (None, Some(l)) => format!("{:#x} ({l})", self.addr),
            (None, None) => format!("{:#x}", self.addr),
        }
    }
}

/// A code path and the memory it touched first.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LocatedStack {
    pub id: ProcId,
    /// The process's name when the stack was resolved.
    pub comm: String,
    pub samples: u64,
    /// `samples × period × page size`.
    pub bytes: u64,
    /// Innermost first.
    pub frames: Vec<Frame>,
}

impl LocatedStack {
    /// The innermost frame with a name: where the memory was touched.
    pub fn top_function(&self) -> Option<&str> {
        self.frames.iter().find_map(|f| f.function.as_deref())
    }
}

/// Which phase (test) each sample was taken in.
///
/// The kernel counts samples per (process, stack) from the start. The
/// recorder cuts at each phase marker: the samples counted since the
/// previous cut were taken while the phases open before this marker were,
/// and are charged to the phase open on the sampling process (or to none).
#[derive(Debug, Default)]
pub struct Charges {
    /// Samples per (process, stack) at the previous cut.
    charged: HashMap<(u32, u32), u64>,
    /// Samples per phase name and (process, stack).
    by_phase: HashMap<String, HashMap<(u32, u32), u64>>,
}

impl Charges {
    /// Charges what `counts` (cumulative) added since the previous cut to
    /// `phase_of(process)`; samples outside every phase (`None`) are only
    /// marked as seen.
    pub fn cut(&mut self, counts: &[Count], phase_of: &dyn Fn(u32) -> Option<String>) {
        for c in counts {
            let key = (c.tgid, c.stack);
            let before = self.charged.entry(key).or_insert(0);
            // Counts only grow; a read older than the last cut adds nothing.
            let new = c.samples.saturating_sub(*before);
            if new == 0 {
                continue;
            }
            *before = c.samples;
            if let Some(phase) = phase_of(c.tgid) {
                *self
                    .by_phase
                    .entry(phase)
                    .or_default()
                    .entry(key)
                    .or_insert(0) += new;
            }
        }
    }

    /// Samples per (process, stack) charged to each phase so far.
    pub fn phases(&self) -> impl Iterator<Item = (&str, &HashMap<(u32, u32), u64>)> {
        self.by_phase.iter().map(|(k, v)| (k.as_str(), v))
    }
}

/// A sampled (process, stack) as captured while the process lived: enough
/// to name its frames at any time later.
struct Captured {
    id: ProcId,
    comm: String,
    /// Innermost first.
    stack: Vec<u64>,
    /// Where each address was (same order).
    places: Vec<maps::Place>,
}

/// A (process, stack) named.
struct Resolved {
    id: ProcId,
    comm: String,
    frames: Vec<Frame>,
}

/// The stacks captured and named so far, shared with the two threads.
#[derive(Default)]
struct Names {
    captured: HashMap<(u32, u32), Arc<Captured>>,
    resolved: HashMap<(u32, u32), Resolved>,
    /// (process, stack) sampled but whose stack could not be read.
    failed: HashSet<(u32, u32)>,
}

/// What the capture thread knows of each process it has seen.
struct Seen {
    id: ProcId,
    comm: String,
    /// The program's file (device, inode): an exec replaces every mapping
    /// (`run` attaches before its command's exec, so its first samples
    /// are memleak's own).
    exe: Option<(u64, u64)>,
    /// None: the process was gone before its maps could be read.
    maps: Option<maps::Snapshot>,
}

/// A live process as it is now: start time, name, program.
type Observed = (u64, String, Option<(u64, u64)>);

/// The live process `tgid` as it is now.
fn observe(tgid: u32) -> Option<Observed> {
    use std::os::unix::fs::MetadataExt;
    let start_ns = crate::sample::ebpf::start_ns_of(tgid)?;
    let comm = std::fs::read_to_string(format!("/proc/{tgid}/comm"))
        .map(|s| s.trim_end().to_string())
        .unwrap_or_default();
    let exe = std::fs::metadata(format!("/proc/{tgid}/exe"))
        .ok()
        .map(|m| (m.dev(), m.ino()));
    Some((start_ns, comm, exe))
}

/// The capture side: reads new (process, stack) pairs soon after they are
/// first sampled, while their processes live (see [`maps`]).
struct Capture {
    tap: ProbeTap,
    maps: maps::Maps,
    procs: HashMap<u32, Seen>,
}

impl Capture {
    /// Captures the (process, stack) pairs sampled since the last pass.
    fn pass(&mut self, names: &Mutex<Names>) {
        let lock = || names.lock().unwrap_or_else(|e| e.into_inner());
        let new: Vec<(u32, u32)> = {
            let n = lock();
            self.tap
                .keys()
                .into_iter()
                .filter(|k| !n.captured.contains_key(k) && !n.failed.contains(k))
                .collect()
        };
        for key in new {
            let (tgid, stack_id) = key;
            let Some(stack) = self.tap.stack(stack_id) else {
                lock().failed.insert(key);
                continue;
            };
            let now = observe(tgid);
            // A process first seen has its maps read at once: they are
            // what vanishes at exit.
            let fresh = match (self.procs.get(&tgid), &now) {
                (None, _) => true,
                // The pid was reused by another process.
                (Some(seen), Some((start_ns, ..))) => seen.id.start_ns != *start_ns,
                (Some(_), None) => false,
            };
            if fresh {
                let snap = self.maps.snapshot(tgid);
                let (start_ns, comm, exe) = now.clone().unwrap_or_default();
                self.procs.insert(
                    tgid,
                    Seen {
                        id: ProcId {
                            pid: tgid,
                            start_ns,
                        },
                        comm,
                        exe,
                        maps: snap,
                    },
                );
            }
            let Some(seen) = self.procs.get_mut(&tgid) else {
                continue;
            };
            let place_all = |snap: &maps::Snapshot| -> Vec<Option<maps::Place>> {
                stack.iter().map(|&a| snap.place(a)).collect()
            };
            let mut places = seen.maps.as_ref().map(place_all).unwrap_or_default();
            if let Some((_, comm, exe)) = now.filter(|_| !fresh) {
                // Read again after an exec, or when an address is outside
                // the maps read (a library loaded since).
                let exec = exe != seen.exe;
                if exec || places.len() < stack.len() || places.iter().any(Option::is_none) {
                    if let Some(snap) = self.maps.snapshot(tgid) {
                        places = place_all(&snap);
                        seen.maps = Some(snap);
                    }
                }
                (seen.comm, seen.exe) = (comm, exe);
            }
            places.resize(stack.len(), None);
            let captured = Captured {
                id: seen.id,
                comm: seen.comm.clone(),
                places: places
                    .into_iter()
                    .map(|p| p.unwrap_or(maps::Place::Other))
                    .collect(),
                stack,
            };
            lock().captured.insert(key, Arc::new(captured));
        }
    }
}

/// How often new (process, stack) pairs are captured: a process that
/// exits sooner than this after its first sample loses its names. A
/// pass with nothing new reads the count map's keys only.
const CAPTURE_EVERY: Duration = Duration::from_millis(20);
/// The capture thread waits at least this many times as long as its last
/// pass took.
const CAPTURE_SHARE: u32 = 20;

/// How often the naming thread names the stacks captured since.
const RESOLVE_EVERY: Duration = Duration::from_secs(1);

/// Samples one process (and what it starts) and keeps its stacks named.
///
/// Two threads: one captures each new (process, stack) within
/// milliseconds of its first sample, while the process lives (its maps,
/// see [`maps`]); the other names what was captured (blazesym: ELF,
/// DWARF, perf maps), which can take a second for the first stacks of a
/// program (parsing its debug info), long after a short process is gone.
/// The recorder that owns the locator must keep sampling on time
/// meanwhile (a test's kept memory is read from the ticks around its
/// markers).
pub struct Locator {
    probe: FaultProbe,
    page_size: u64,
    names: Arc<Mutex<Names>>,
    capture: Arc<Mutex<Capture>>,
    /// Asks the naming thread for a pass now; `Some` to be told when it
    /// is done. Dropped with the locator, which ends both threads.
    resolver: Sender<Option<Sender<()>>>,
    /// Samples charged to phases (see [`Locator::cut`]).
    charges: Charges,
}

impl Locator {
    /// Loads the program; [`Locator::attach`] starts the sampling.
    pub fn new(period: u64) -> Result<Self, LocateError> {
        let probe = FaultProbe::load(period)?;
        let tap = probe
            .tap()
            .ok_or_else(|| LocateError::Ebpf("cannot share the locate maps".into()))?;
        let names = Arc::new(Mutex::new(Names::default()));
        let capture = Arc::new(Mutex::new(Capture {
            tap,
            maps: maps::Maps::default(),
            procs: HashMap::new(),
        }));
        let (resolver, asks) = channel::<Option<Sender<()>>>();
        let (stop_capture, capture_stopped) = channel::<()>();
        {
            let (names, capture) = (Arc::clone(&names), Arc::clone(&capture));
            std::thread::Builder::new()
                .name("memleak-capture".into())
                .spawn(move || {
                    let mut wait = CAPTURE_EVERY;
                    loop {
                        match capture_stopped.recv_timeout(wait) {
                            Err(RecvTimeoutError::Timeout) => {}
                            _ => return,
                        }
                        let started = std::time::Instant::now();
                        capture
                            .lock()
                            .unwrap_or_else(|e| e.into_inner())
                            .pass(&names);
                        // A pass reads every key: with tens of thousands of
                        // stacks it is slow, so wait longer after it to stay
                        // under ~5% of a core.
                        wait = CAPTURE_EVERY.max(started.elapsed() * CAPTURE_SHARE);
                    }
                })
                .map_err(LocateError::Thread)?;
        }
        let shared = Arc::clone(&names);
        std::thread::Builder::new()
            .name("memleak-locate".into())
            .spawn(move || {
                // Ends the capture thread when the locator is dropped.
                let _stop_capture = stop_capture;
                let symbols = Symbols::new();
                loop {
                    let done = match asks.recv_timeout(RESOLVE_EVERY) {
                        Ok(done) => done,
                        Err(RecvTimeoutError::Timeout) => None,
                        Err(RecvTimeoutError::Disconnected) => return,
                    };
                    resolve_new(&symbols, &shared);
                    if let Some(done) = done {
                        let _ = done.send(());
                    }
                }
            })
            .map_err(LocateError::Thread)?;
        Ok(Locator {
            probe,
            page_size: crate::sysinfo::page_size(),
            names,
            capture,
            resolver,
            charges: Charges::default(),
        })
    }

    fn names(&self) -> MutexGuard<'_, Names> {
        self.names.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Captures and names the stacks sampled so far, and returns once done.
    fn resolve_now(&self) {
        self.capture
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .pass(&self.names);
        let (done, wait) = channel();
        if self.resolver.send(Some(done)).is_ok() {
            let _ = wait.recv();
        }
    }

    /// A reader of the sample counts for another thread (see
    /// [`ProbeTap`]); None when the maps could not be shared.
    pub fn tap(&self) -> Option<ProbeTap> {
        self.probe.tap()
    }

    /// Charges the samples counted since the previous cut to the phase
    /// (test) `phase_of` names for the sampling process (see [`Charges`]).
    pub fn cut(&mut self, counts: &[Count], phase_of: &dyn Fn(u32) -> Option<String>) {
        self.charges.cut(counts, phase_of);
    }

    /// [`Locator::cut`] with the counts as they are now.
    pub fn cut_now(&mut self, phase_of: &dyn Fn(u32) -> Option<String>) {
        let counts = self.probe.counts();
        self.cut(&counts, phase_of);
    }

    /// Samples every thread of `pid`, and what they start from now on.
    pub fn attach(&mut self, pid: u32) -> Result<usize, LocateError> {
        self.probe.attach_process(pid)
    }

    pub fn period(&self) -> u64 {
        self.probe.period()
    }

    /// Samples lost in the kernel (see [`FaultProbe::lost`]).
    pub fn lost(&self) -> probe::Lost {
        self.probe.lost()
    }

    /// Samples counted under a stack whose frames could not be read back.
    fn unreadable(&self) -> u64 {
        let names = self.names();
        self.probe
            .counts()
            .iter()
            .filter(|c| names.failed.contains(&(c.tgid, c.stack)))
            .map(|c| c.samples)
            .sum()
    }

    /// Why samples are missing from the stacks, cause by cause ("208
    /// lost to stack-table collisions"); None when none are.
    pub fn lost_detail(&self) -> Option<String> {
        let lost = self.probe.lost();
        let causes = [
            (
                lost.no_stack,
                "had no user stack (a kernel worker thread, or no memory for it)",
            ),
            (
                lost.collision,
                "lost to stack-table collisions (their bucket held other stacks)",
            ),
            (lost.table_full, "found the (process, stack) table full"),
            (self.unreadable(), "had a stack that could not be read back"),
        ];
        let parts: Vec<String> = causes
            .iter()
            .filter(|(n, _)| *n > 0)
            .map(|(n, why)| format!("{n} {why}"))
            .collect();
        (!parts.is_empty()).then(|| parts.join(", "))
    }

    /// Asks for the stacks captured since the last pass to be named now,
    /// without waiting (the naming thread also names them every second by
    /// itself). What a process's names need is captured as it is
    /// sampled, so they can be named after it exits.
    pub fn poll(&mut self) {
        let _ = self.resolver.send(None);
    }

    /// Every stack sampled so far, most bytes first. Polls once more.
    pub fn stacks(&mut self) -> Vec<LocatedStack> {
        self.resolve_now();
        let unit = self.probe.period() * self.page_size;
        let names = self.names();
        let mut out: Vec<LocatedStack> = self
            .probe
            .counts()
            .into_iter()
            .filter_map(|c| {
                let r = names.resolved.get(&(c.tgid, c.stack))?;
                Some(LocatedStack {
                    id: r.id,
                    comm: r.comm.clone(),
                    samples: c.samples,
                    bytes: c.samples.saturating_mul(unit),
                    frames: r.frames.clone(),
                })
            })
            .collect();
        rank(&mut out);
        out
    }
}

/// One pass of the naming thread: names the captured (process, stack)
/// pairs not named yet.
fn resolve_new(symbols: &Symbols, names: &Mutex<Names>) {
    let lock = || names.lock().unwrap_or_else(|e| e.into_inner());
    let todo: Vec<((u32, u32), Arc<Captured>)> = {
        let n = lock();
        n.captured
            .iter()
            .filter(|(k, _)| !n.resolved.contains_key(k))
            .map(|(k, c)| (*k, Arc::clone(c)))
            .collect()
    };
    for (key, c) in todo {
        // Named without the lock held: this is the slow part.
        let frames = symbols.frames(c.id.pid, &c.stack, &c.places);
        lock().resolved.insert(
            key,
            Resolved {
                id: c.id,
                comm: c.comm.clone(),
                frames,
            },
        );
    }
}

/// Most bytes first; ties in a fixed order so reports are stable.
pub fn rank(stacks: &mut [LocatedStack]) {
    stacks.sort_by(|a, b| {
        b.bytes.cmp(&a.bytes).then(a.id.cmp(&b.id)).then_with(|| {
            a.frames
                .iter()
                .map(|f| f.addr)
                .cmp(b.frames.iter().map(|f| f.addr))
        })
    });
}

/// What a locate run found, for reports and the recording.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Located {
    /// Page faults per sample.
    pub period: u64,
    pub page_size: u64,
    /// Samples the kernel side could not record.
    pub lost: u64,
    /// Over the whole run, most bytes first.
    pub stacks: Vec<LocatedStack>,
    /// The part of `stacks` sampled while each marked phase (test) was
    /// open, most bytes first; empty without phase markers. What was
    /// sampled outside every phase is in `stacks` only.
    pub phases: Vec<PhaseStacks>,
}

impl Located {
    /// The stacks of phase `name`, if anything was sampled during it.
    pub fn phase(&self, name: &str) -> Option<&PhaseStacks> {
        self.phases.iter().find(|p| p.name == name)
    }

    /// Adds what another recording located (the next file of a `watch`
    /// directory): the same code path of the same process adds up, so a
    /// session that ran across a rotation counts once.
    pub fn absorb(&mut self, other: Located) {
        if other.stacks.is_empty() && other.phases.is_empty() && other.lost == 0 {
            // A file without --locate says nothing, not "period 0".
            return;
        }
        if self.period == 0 {
            (self.period, self.page_size) = (other.period, other.page_size);
        }
        self.lost += other.lost;
        merge_stacks(&mut self.stacks, other.stacks);
        for p in other.phases {
            match self.phases.iter_mut().find(|q| q.name == p.name) {
                Some(q) => merge_stacks(&mut q.stacks, p.stacks),
                None => self.phases.push(p),
            }
        }
        self.phases.sort_by_key(|p| std::cmp::Reverse(p.bytes()));
    }
}

/// Adds `more` to `into` by (process, frames); most bytes first after.
fn merge_stacks(into: &mut Vec<LocatedStack>, more: Vec<LocatedStack>) {
    let mut at: HashMap<(ProcId, Vec<Frame>), usize> = into
        .iter()
        .enumerate()
        .map(|(i, s)| ((s.id, s.frames.clone()), i))
        .collect();
    for s in more {
        match at.entry((s.id, s.frames.clone())) {
            std::collections::hash_map::Entry::Occupied(i) => {
                let t = &mut into[*i.get()];
                t.samples += s.samples;
                t.bytes += s.bytes;
                // The later name: exec may have renamed the process.
                t.comm = s.comm;
            }
            std::collections::hash_map::Entry::Vacant(v) => {
                v.insert(into.len());
                into.push(s);
            }
        }
    }
    into.sort_by_key(|s| std::cmp::Reverse(s.bytes));
}

/// The stacks sampled while one phase (test) was open.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PhaseStacks {
    /// The phase's name, as the test's verdict names it (without the
    /// marker's `pid=N` prefix).
    pub name: String,
    /// Most bytes first.
    pub stacks: Vec<LocatedStack>,
}

impl PhaseStacks {
    pub fn bytes(&self) -> u64 {
        self.stacks.iter().map(|s| s.bytes).sum()
    }

    pub fn samples(&self) -> u64 {
        self.stacks.iter().map(|s| s.samples).sum()
    }
}

/// Phases most bytes first, ties by name.
pub fn rank_phases(phases: &mut [PhaseStacks]) {
    for p in phases.iter_mut() {
        rank(&mut p.stacks);
    }
    phases.sort_by(|a, b| b.bytes().cmp(&a.bytes()).then_with(|| a.name.cmp(&b.name)));
}

impl Locator {
    /// Everything found so far (see [`Locator::stacks`]).
    pub fn located(&mut self) -> Located {
        let stacks = self.stacks();
        // Samples, not stacks: the note says how much is unattributed.
        let unreadable = self.unreadable();
        let unit = self.probe.period() * self.page_size;
        let names = self.names();
        let mut phases: Vec<PhaseStacks> = self
            .charges
            .phases()
            .map(|(name, counts)| PhaseStacks {
                name: name.to_string(),
                stacks: counts
                    .iter()
                    .filter_map(|(key, &samples)| {
                        let r = names.resolved.get(key)?;
                        Some(LocatedStack {
                            id: r.id,
                            comm: r.comm.clone(),
                            samples,
                            bytes: samples.saturating_mul(unit),
                            frames: r.frames.clone(),
                        })
                    })
                    .collect(),
            })
            .filter(|p| !p.stacks.is_empty())
            .collect();
        rank_phases(&mut phases);
        Located {
            period: self.probe.period(),
            page_size: self.page_size,
            lost: self.probe.lost().total() + unreadable,
            stacks,
            phases,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn count(tgid: u32, stack: u32, samples: u64) -> Count {
        Count {
            tgid,
            stack,
            samples,
        }
    }

    fn stack(pid: u32, bytes: u64, top: &str) -> LocatedStack {
        LocatedStack {
            id: ProcId { pid, start_ns: 5 },
            comm: "p".into(),
            samples: bytes / 10,
            bytes,
            frames: vec![Frame {
                addr: 1,
                function: Some(top.into()),
                location: None,
            }],
        }
    }

    /// Two files of one watch: the same path of the same process adds up
    /// (a session across a rotation), others stay apart, most bytes first.
    #[test]
    fn absorbing_a_later_file_adds_the_same_paths() {
        let mut a = Located {
            period: 97,
            page_size: 4096,
            lost: 1,
            stacks: vec![stack(7, 100, "leak_site"), stack(8, 60, "churn")],
            phases: vec![PhaseStacks {
                name: "t1".into(),
                stacks: vec![stack(7, 10, "leak_site")],
            }],
        };
        a.absorb(Located {
            period: 97,
            page_size: 4096,
            lost: 2,
            stacks: vec![stack(8, 50, "churn"), stack(7, 30, "other")],
            phases: vec![PhaseStacks {
                name: "t2".into(),
                stacks: vec![stack(7, 40, "leak_site")],
            }],
        });
        let got: Vec<(u32, u64, Option<&str>)> = a
            .stacks
            .iter()
            .map(|s| (s.id.pid, s.bytes, s.top_function()))
            .collect();
        assert_eq!(
            got,
            vec![
                (8, 110, Some("churn")),
                (7, 100, Some("leak_site")),
                (7, 30, Some("other")),
            ]
        );
        assert_eq!(a.stacks[0].samples, 11);
        assert_eq!(a.lost, 3);
        let names: Vec<&str> = a.phases.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(names, ["t2", "t1"]);
        // Into nothing: the other file's period is taken.
        let mut empty = Located::default();
        empty.absorb(a.clone());
        assert_eq!(empty, a);
    }

    #[test]
    fn samples_go_to_the_phase_open_on_their_process() {
        let mut c = Charges::default();
        // Before any phase: seen, charged to nothing.
        c.cut(&[count(1, 7, 3)], &|_| None);
        // Process 1 runs test a, process 2 test b (xdist workers).
        let open = |tgid: u32| Some(if tgid == 1 { "a" } else { "b" }.to_string());
        c.cut(&[count(1, 7, 10), count(2, 7, 4), count(1, 8, 1)], &open);
        // A stale read (older than the last cut) adds nothing.
        c.cut(&[count(1, 7, 9)], &open);
        c.cut(&[count(1, 7, 12)], &|_| Some("c".into()));
        type Charged = Vec<((u32, u32), u64)>;
        let mut got: Vec<(String, Charged)> = c
            .phases()
            .map(|(n, m)| {
                let mut v: Vec<_> = m.iter().map(|(k, v)| (*k, *v)).collect();
                v.sort();
                (n.to_string(), v)
            })
            .collect();
        got.sort();
        assert_eq!(
            got,
            vec![
                ("a".into(), vec![((1, 7), 7), ((1, 8), 1)]),
                ("b".into(), vec![((2, 7), 4)]),
                ("c".into(), vec![((1, 7), 2)]),
            ]
        );
    }
}
