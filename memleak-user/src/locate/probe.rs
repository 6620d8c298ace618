//! The kernel half of `locate`: loads the `locate_fault` perf-event
//! program (memleak-ebpf/src/locate.rs), opens a sampled software
//! `page-faults` event on each thread of the target, and reads back the
//! sampled user stacks and their counts.

use std::collections::HashSet;
use std::io;
use std::os::fd::{AsFd, OwnedFd};

use aya::maps::{HashMap, Map, MapData, PerCpuArray, StackTraceMap};
use aya::programs::perf_event::{PerfEventConfig, PerfEventScope, SamplePolicy, SoftwareEvent};
use aya::programs::PerfEvent;
use aya::{Ebpf, EbpfLoader};

use super::LocateError;

/// Distinct user stacks the stack table holds. A suspect's allocation
/// paths number in the hundreds; the table costs ~1 KiB per entry, and a
/// stack whose bucket is taken is counted as lost, not misattributed.
const STACK_ENTRIES: u32 = 16_384;
/// The second stack table, for stacks whose bucket in the first holds
/// another (see memleak-ebpf/src/locate.rs): only those come here.
const SPILL_ENTRIES: u32 = 4_096;
/// Marks a stack id of the second table (as the eBPF program does).
const SPILLED: u32 = 1 << 31;
/// (process, stack) pairs counted: one per stack for one process, more
/// when `run --locate` follows a command's children.
const COUNT_ENTRIES: u32 = 65_536;
/// The counter programs' maps come with the same object; they stay empty.
const UNUSED_ENTRIES: u32 = 16;

/// One sampled (process, stack) and how often it was seen.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Count {
    pub tgid: u32,
    pub stack: u32,
    pub samples: u64,
}

/// Samples that could not be counted under a stack, by cause.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Lost {
    /// No user stack could be taken (a kernel worker thread, no memory).
    pub no_stack: u64,
    /// The (process, stack) count table was full.
    pub table_full: u64,
    /// The stack's bucket held another stack in both stack tables.
    pub collision: u64,
}

impl Lost {
    pub fn total(&self) -> u64 {
        self.no_stack + self.table_full + self.collision
    }
}

/// Both stack tables: a stack id says which one holds it.
struct Stacks {
    main: StackTraceMap<MapData>,
    spill: StackTraceMap<MapData>,
}

impl Stacks {
    fn get(&self, stack: u32) -> Option<Vec<u64>> {
        let (map, id) = match stack & SPILLED {
            0 => (&self.main, stack),
            _ => (&self.spill, stack & !SPILLED),
        };
        let trace = map.get(&id, 0).ok()?;
        Some(trace.frames().iter().map(|f| f.ip).collect())
    }
}

pub struct FaultProbe {
    // Keeps the program loaded and its perf events open.
    ebpf: Ebpf,
    stacks: Stacks,
    counts: HashMap<MapData, u64, u64>,
    lost: PerCpuArray<MapData, u64>,
    /// Second descriptors of the count and stack maps, for
    /// [`FaultProbe::tap`].
    counts_fd: Option<OwnedFd>,
    stacks_fd: Option<OwnedFd>,
    spill_fd: Option<OwnedFd>,
    /// Threads with an event of their own (inherited ones are not listed).
    attached: HashSet<u32>,
    /// Page faults per sample.
    period: u64,
}

/// Reads the maps of a [`FaultProbe`] from another thread: the recorder's
/// marker thread takes the counts the moment a test begins or ends, so
/// samples are charged to the test that was running (see
/// `record::markers`), and the locator's resolver thread names the stacks
/// (see [`super::Locator`]).
pub struct ProbeTap {
    counts: HashMap<MapData, u64, u64>,
    stacks: Stacks,
}

impl ProbeTap {
    /// Every (process, stack) sampled so far, with its cumulative count.
    pub fn counts(&self) -> Vec<Count> {
        read_counts(&self.counts)
    }

    /// Every (process, stack id) sampled so far: one read per key, half
    /// the cost of [`ProbeTap::counts`].
    pub fn keys(&self) -> Vec<(u32, u32)> {
        self.counts
            .keys()
            .filter_map(Result::ok)
            .map(|key| ((key >> 32) as u32, key as u32))
            .collect()
    }

    /// The user stack with id `stack`, innermost frame first.
    pub fn stack(&self, stack: u32) -> Option<Vec<u64>> {
        self.stacks.get(stack)
    }
}

/// A second descriptor of map `m`, or None.
fn dup_fd(m: &Map) -> Option<OwnedFd> {
    let data = match m {
        Map::HashMap(d) | Map::StackTraceMap(d) => d,
        _ => return None,
    };
    data.fd().as_fd().try_clone_to_owned().ok()
}

fn read_counts(map: &HashMap<MapData, u64, u64>) -> Vec<Count> {
    map.iter()
        .filter_map(Result::ok)
        .map(|(key, samples)| Count {
            tgid: (key >> 32) as u32,
            stack: key as u32,
            samples,
        })
        .collect()
}

impl FaultProbe {
    /// Loads the program; nothing is sampled until [`Self::attach_process`].
    pub fn load(period: u64) -> Result<Self, LocateError> {
        if !crate::sample::ebpf::built_in() {
            return Err(LocateError::NotBuiltIn(
                option_env!("MEMLEAK_EBPF_MISSING").unwrap_or("the eBPF object was empty"),
            ));
        }
        if period == 0 {
            return Err(LocateError::Period);
        }
        if !crate::sysinfo::bpf_capable() {
            return Err(LocateError::Permission(format!(
                "this process lacks {} (or CAP_SYS_ADMIN)",
                crate::sysinfo::missing_bpf_caps().join(" and ")
            )));
        }
        let mut loader = EbpfLoader::new();
        // Tests shrink the first table so that stacks collide in it.
        let entries = std::env::var("MEMLEAK_TEST_LOCATE_STACK_ENTRIES")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(STACK_ENTRIES);
        loader.map_max_entries("LOCATE_STACKS", entries);
        loader.map_max_entries("LOCATE_STACKS_SPILL", SPILL_ENTRIES);
        loader.map_max_entries("LOCATE_COUNTS", COUNT_ENTRIES);
        for unused in ["PROCS", "DIRTY"] {
            loader.map_max_entries(unused, UNUSED_ENTRIES);
        }
        let mut ebpf = loader
            .load(crate::sample::ebpf::EBPF_OBJECT)
            .map_err(|e| classify("loading the eBPF object", &e))?;
        let prog: &mut PerfEvent = ebpf
            .program_mut("locate_fault")
            .ok_or_else(|| {
                LocateError::Ebpf("program locate_fault missing from the eBPF object".into())
            })?
            .try_into()
            .map_err(|_| LocateError::Ebpf("program locate_fault has an unexpected type".into()))?;
        prog.load()
            .map_err(|e| classify("loading locate_fault", &e))?;
        let mut take = |name: &str| {
            ebpf.take_map(name).ok_or_else(|| {
                LocateError::Ebpf(format!("map {name} missing from the eBPF object"))
            })
        };
        let stacks_map = take("LOCATE_STACKS")?;
        let stacks_fd = dup_fd(&stacks_map);
        let main =
            StackTraceMap::try_from(stacks_map).map_err(|e| LocateError::Ebpf(e.to_string()))?;
        let spill_map = take("LOCATE_STACKS_SPILL")?;
        let spill_fd = dup_fd(&spill_map);
        let spill =
            StackTraceMap::try_from(spill_map).map_err(|e| LocateError::Ebpf(e.to_string()))?;
        let counts_map = take("LOCATE_COUNTS")?;
        let counts_fd = dup_fd(&counts_map);
        let counts = HashMap::try_from(counts_map).map_err(|e| LocateError::Ebpf(e.to_string()))?;
        let lost = PerCpuArray::try_from(take("LOCATE_LOST")?)
            .map_err(|e| LocateError::Ebpf(e.to_string()))?;
        let probe = FaultProbe {
            ebpf,
            stacks: Stacks { main, spill },
            counts,
            lost,
            counts_fd,
            stacks_fd,
            spill_fd,
            attached: HashSet::new(),
            period,
        };
        Ok(probe)
    }

    /// Samples every thread of process `pid` from now on, and the threads
    /// and processes they start later (the events are inherited). Returns
    /// how many threads got an event.
    pub fn attach_process(&mut self, pid: u32) -> Result<usize, LocateError> {
        let tids = threads(pid)?;
        let mut n = 0;
        for tid in tids {
            match self.attach_task(tid) {
                Ok(()) => n += 1,
                // A thread that ended between the listing and the open.
                Err(LocateError::Gone(_)) => {}
                Err(e) => return Err(e),
            }
        }
        if n == 0 {
            return Err(LocateError::Gone(pid));
        }
        Ok(n)
    }

    /// One event on thread `tid`, inherited by what it starts later.
    pub fn attach_task(&mut self, tid: u32) -> Result<(), LocateError> {
        if self.attached.contains(&tid) {
            return Ok(());
        }
        let prog: &mut PerfEvent = self
            .ebpf
            .program_mut("locate_fault")
            .and_then(|p| p.try_into().ok())
            .ok_or_else(|| LocateError::Ebpf("program locate_fault missing".into()))?;
        prog.attach(
            PerfEventConfig::Software(SoftwareEvent::PageFaults),
            PerfEventScope::OneProcess {
                pid: tid,
                cpu: None,
            },
            SamplePolicy::Period(self.period),
            // Inherited: threads and children started later are sampled
            // too, each under its own tgid in the count map.
            true,
        )
        .map_err(|e| match crate::sysinfo::errno_in(&e) {
            Some(libc::ESRCH) => LocateError::Gone(tid),
            _ => classify("opening the page-faults perf event", &e),
        })?;
        self.attached.insert(tid);
        Ok(())
    }

    /// Every (process, stack) sampled so far, with its count.
    pub fn counts(&self) -> Vec<Count> {
        read_counts(&self.counts)
    }

    /// A reader of the maps for another thread (None if their descriptors
    /// could not be duplicated).
    pub fn tap(&self) -> Option<ProbeTap> {
        let data = |fd: &Option<OwnedFd>| MapData::from_fd(fd.as_ref()?.try_clone().ok()?).ok();
        let counts = HashMap::try_from(Map::HashMap(data(&self.counts_fd)?)).ok()?;
        let stack_map = |fd| StackTraceMap::try_from(Map::StackTraceMap(data(fd)?)).ok();
        let stacks = Stacks {
            main: stack_map(&self.stacks_fd)?,
            spill: stack_map(&self.spill_fd)?,
        };
        Some(ProbeTap { counts, stacks })
    }

    /// The user stack with id `stack`, innermost frame first.
    pub fn stack(&self, stack: u32) -> Option<Vec<u64>> {
        self.stacks.get(stack)
    }

    /// Samples lost so far in the kernel, by cause.
    pub fn lost(&self) -> Lost {
        // The indices of LOST_* in memleak-ebpf/src/locate.rs.
        let at = |i: u32| -> u64 {
            self.lost
                .get(&i, 0)
                .map(|v| v.iter().sum::<u64>())
                .unwrap_or(0)
        };
        Lost {
            no_stack: at(0),
            table_full: at(1),
            collision: at(2),
        }
    }

    pub fn period(&self) -> u64 {
        self.period
    }
}

/// The thread ids of process `pid`.
fn threads(pid: u32) -> Result<Vec<u32>, LocateError> {
    let dir = format!("/proc/{pid}/task");
    let entries = std::fs::read_dir(&dir).map_err(|e| match e.kind() {
        io::ErrorKind::NotFound => LocateError::Gone(pid),
        _ => LocateError::Io {
            path: dir,
            source: e,
        },
    })?;
    Ok(entries
        .filter_map(Result::ok)
        .filter_map(|e| e.file_name().to_str()?.parse().ok())
        .collect())
}

/// A permission refusal becomes [`LocateError::Permission`] (with what the
/// perf_event_paranoid setting says), anything else [`LocateError::Ebpf`].
fn classify(what: &str, e: &(dyn std::error::Error + 'static)) -> LocateError {
    let text = format!("{what}: {e}");
    if !crate::sysinfo::refused_permission(e) {
        return LocateError::Ebpf(text);
    }
    LocateError::Permission(match paranoid() {
        Some(level) => format!(
            "{text} (kernel.perf_event_paranoid is {level}; without CAP_PERFMON the kernel \
             refuses perf events on other processes above level 1)"
        ),
        None => text,
    })
}

fn paranoid() -> Option<i32> {
    std::fs::read_to_string("/proc/sys/kernel/perf_event_paranoid")
        .ok()?
        .trim()
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("perf_event_open failed")]
    struct Wrapped(#[source] io::Error);

    #[test]
    fn a_refusal_deep_in_the_chain_is_a_permission_error() {
        let e = Wrapped(io::Error::from_raw_os_error(libc::EACCES));
        match classify("opening the event", &e) {
            LocateError::Permission(text) => {
                assert!(text.starts_with("opening the event: perf_event_open failed"));
                // The paranoid level is named whenever the kernel exposes it.
                if paranoid().is_some() {
                    assert!(text.contains("kernel.perf_event_paranoid is"), "{text}");
                }
            }
            other => panic!("not a permission error: {other:?}"),
        }
        let e = Wrapped(io::Error::from_raw_os_error(libc::EINVAL));
        assert!(matches!(classify("x", &e), LocateError::Ebpf(_)));
    }

    #[test]
    fn a_missing_process_has_no_threads() {
        assert!(matches!(
            threads(4_194_305),
            Err(LocateError::Gone(4_194_305))
        ));
        assert!(threads(std::process::id())
            .unwrap()
            .contains(&std::process::id()));
    }
}
