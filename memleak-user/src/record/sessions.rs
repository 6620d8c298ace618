//! Bounded `--locate` sessions started on request: `memleak watch --locate`
//! asks for a process the moment its analysis flags it, and the recorder
//! attaches the page-fault probe ([`crate::locate`]) to that process alone,
//! for a bounded time, then stores what it found in the recording current
//! when the session ends.
//!
//! The requester (watch's refresher, on another thread) only sends process
//! identities over a bounded channel and never blocks; everything else
//! happens here, on the recorder's thread, between snapshots: that is the
//! thread that owns the file the stacks go to, and the one `run --locate`
//! already names its stacks on. Naming (blazesym) costs the recorder time
//! at most once a second per live session, and sessions are few and short.
//!
//! Rules, per session:
//! - the process is named by its identity (pid and start time): a request
//!   for a process that is gone, or whose pid now belongs to another
//!   process, is dropped, and a session whose process exits or is replaced
//!   ends early;
//! - at most [`SessionLimits::max`] sessions live at once; a request past
//!   that is dropped, not queued (the next refresh asks again if the
//!   process is still flagged);
//! - one session per process per file: a process whose session ended is
//!   not attached again until the next file starts (a leak flagged for
//!   hours costs one bounded session per rotation, not a permanent probe);
//! - a session that outlives its file continues and lands in the file
//!   current when it ends; at the last file (stop signal, `--duration`)
//!   every live session ends into it.

use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TrySendError};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::locate::{LocateError, Located, Locator};
use crate::sample::ProcId;
use crate::store::{StoreError, Writer};

/// How a session samples and how long and how many at once.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SessionLimits {
    /// Page faults per sample.
    pub period: u64,
    /// How long one session samples its process at most.
    pub duration: Duration,
    /// Sessions alive at once, at most.
    pub max: usize,
}

/// A process to locate, as the requester knows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LocateRequest {
    pub id: ProcId,
    pub comm: String,
    /// Why it is asked for, for the log line (`flagged as a leak`).
    pub why: String,
}

/// Counters of the sessions, shared with the requester (the metrics).
#[derive(Debug, Default)]
pub struct SessionStats {
    started: AtomicU64,
    finished: AtomicU64,
    active: AtomicU64,
}

impl SessionStats {
    /// Sessions started since watch started.
    pub fn started(&self) -> u64 {
        self.started.load(Ordering::Relaxed)
    }
    /// Sessions ended and stored.
    pub fn finished(&self) -> u64 {
        self.finished.load(Ordering::Relaxed)
    }
    /// Sessions sampling now.
    pub fn active(&self) -> u64 {
        self.active.load(Ordering::Relaxed)
    }
}

/// Requests waiting for the recorder, at most: more than enough for the
/// flagged processes of one refresh; past it requests are dropped.
const QUEUE: usize = 256;

/// The requester's side: cloneable, and [`SessionRequests::request`] never
/// blocks.
#[derive(Clone, Debug)]
pub struct SessionRequests {
    tx: SyncSender<LocateRequest>,
    stats: Arc<SessionStats>,
}

impl SessionRequests {
    /// Asks for a session; false when the queue is full or the recorder
    /// is gone (the request is dropped: a flagged process is asked for
    /// again at the next refresh).
    pub fn request(&self, r: LocateRequest) -> bool {
        match self.tx.try_send(r) {
            Ok(()) => true,
            Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => false,
        }
    }

    pub fn stats(&self) -> &SessionStats {
        &self.stats
    }

    /// A requester with no recorder behind it (tests of the requester's
    /// side, where loading the probe may not be possible).
    #[cfg(test)]
    pub(crate) fn detached() -> SessionRequests {
        SessionRequests {
            tx: sync_channel(1).0,
            stats: Arc::default(),
        }
    }
}

/// The recorder's side: the live sessions (see the module documentation).
pub struct Sessions {
    limits: SessionLimits,
    rx: Receiver<LocateRequest>,
    stats: Arc<SessionStats>,
    live: Vec<Session>,
    /// Processes whose session ended in the current file.
    done: HashSet<ProcId>,
    /// Samples lost by the sessions stored in the current file.
    lost: u64,
}

struct Session {
    id: ProcId,
    comm: String,
    locator: Locator,
    started: Instant,
}

impl Sessions {
    /// The two sides of a new set of sessions. Loads the probe once first,
    /// so a machine where locate cannot work (no eBPF object, missing
    /// privileges) is refused now with the reason, not at the first leak.
    pub fn new(limits: SessionLimits) -> Result<(Sessions, SessionRequests), LocateError> {
        drop(Locator::new(limits.period)?);
        let (tx, rx) = sync_channel(QUEUE);
        let stats = Arc::new(SessionStats::default());
        let sessions = Sessions {
            limits,
            rx,
            stats: Arc::clone(&stats),
            live: Vec::new(),
            done: HashSet::new(),
            lost: 0,
        };
        Ok((sessions, SessionRequests { tx, stats }))
    }

    /// A new file starts: processes located in the previous one may be
    /// located again.
    pub(crate) fn new_file(&mut self) {
        self.done.clear();
        self.lost = 0;
    }

    /// Starts the sessions asked for, names the stacks sampled since the
    /// last call, and ends (into `w`) the sessions whose time is up or
    /// whose process is gone. Call it about once a second.
    pub(crate) fn tick(&mut self, w: &mut Writer) -> Result<(), StoreError> {
        while let Ok(req) = self.rx.try_recv() {
            self.start(req);
        }
        let mut i = 0;
        while i < self.live.len() {
            let s = &mut self.live[i];
            let alive = same_process(s.id);
            if alive {
                s.locator.poll();
            }
            if !alive || s.started.elapsed() >= self.limits.duration {
                let s = self.live.swap_remove(i);
                self.end(s, w, !alive)?;
            } else {
                i += 1;
            }
        }
        Ok(())
    }

    /// Sessions sampling now (their stacks are not in any file yet).
    pub(crate) fn live(&self) -> usize {
        self.live.len()
    }

    /// Ends every live session into `w` (the last file).
    pub(crate) fn end_all(&mut self, w: &mut Writer) -> Result<(), StoreError> {
        while let Some(s) = self.live.pop() {
            let gone = !same_process(s.id);
            self.end(s, w, gone)?;
        }
        Ok(())
    }

    fn start(&mut self, req: LocateRequest) {
        let id = req.id;
        if self.live.iter().any(|s| s.id == id) || self.done.contains(&id) {
            return;
        }
        if self.live.len() >= self.limits.max {
            tracing::debug!(
                pid = id.pid,
                max = self.limits.max,
                "--locate: not attached, the maximum of sessions is live"
            );
            return;
        }
        if !same_process(id) {
            tracing::debug!(pid = id.pid, "--locate: not attached, gone or pid reused");
            return;
        }
        let attached = Locator::new(self.limits.period).and_then(|mut l| {
            l.attach(id.pid)?;
            Ok(l)
        });
        let locator = match attached {
            // Re-checked after the attach: the pid may have been reused
            // between the check above and the perf event's open.
            Ok(l) if same_process(id) => l,
            Ok(_) | Err(LocateError::Gone(_)) => {
                tracing::debug!(pid = id.pid, "--locate: exited before the attach");
                return;
            }
            Err(e) => {
                diag!("memleak: warning: --locate: pid {}: {e}", id.pid);
                return;
            }
        };
        diag!(
            "memleak: locating pid {} ({}): {}; sampling 1 page fault in {} for {} s",
            id.pid,
            crate::diag::printable(&req.comm),
            crate::diag::printable(&req.why),
            self.limits.period,
            self.limits.duration.as_secs_f64()
        );
        self.stats.started.fetch_add(1, Ordering::Relaxed);
        self.stats.active.fetch_add(1, Ordering::Relaxed);
        self.live.push(Session {
            id,
            comm: req.comm,
            locator,
            started: Instant::now(),
        });
    }

    fn end(&mut self, mut s: Session, w: &mut Writer, gone: bool) -> Result<(), StoreError> {
        self.stats.active.fetch_sub(1, Ordering::Relaxed);
        self.done.insert(s.id);
        let mut located = s.locator.located();
        // The locator knows its processes' start time at clock-tick
        // precision; the recording may know it to the ns (eBPF): store the
        // flagged process under the recording's identity.
        for st in &mut located.stacks {
            if st.id.pid == s.id.pid {
                st.id = s.id;
            }
        }
        self.lost += located.lost;
        say_found(&s, &located, gone);
        let file = Located {
            lost: self.lost,
            ..located
        };
        w.write_located(&file)?;
        self.stats.finished.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }
}

/// One line, and a tracing event, naming what a session found.
fn say_found(s: &Session, l: &Located, gone: bool) {
    let secs = s.started.elapsed().as_secs_f64();
    let comm = crate::diag::printable(&s.comm);
    let why = if gone { " (it exited)" } else { "" };
    let total: u64 = l.stacks.iter().map(|st| st.bytes).sum();
    let mib = |b: u64| b as f64 / 1048576.0;
    match l.stacks.first() {
        Some(top) => {
            let function = top.top_function().unwrap_or("an unnamed function");
            let location = top
                .frames
                .iter()
                .find(|f| f.function.is_some())
                .and_then(|f| f.location.as_deref())
                .unwrap_or("?");
            diag!(
                "memleak: located pid {} ({comm}) for {secs:.0} s{why}: top {} ({}), {:.1} MiB of {:.1} MiB estimated in {} stacks",
                s.id.pid,
                crate::diag::printable(function),
                crate::diag::printable(location),
                mib(top.bytes),
                mib(total),
                l.stacks.len()
            );
            tracing::info!(
                pid = s.id.pid,
                comm = %comm,
                top_function = function,
                top_bytes = top.bytes,
                total_bytes = total,
                stacks = l.stacks.len(),
                "located"
            );
        }
        None => diag!(
            "memleak: located pid {} ({comm}) for {secs:.0} s{why}: no page fault sampled (it touched less than {:.1} MiB of new memory)",
            s.id.pid,
            mib(l.period * l.page_size)
        ),
    }
}

/// Whether `id` is still the process its pid names: its start time, read
/// from /proc at clock-tick precision, is the one the recording holds.
fn same_process(id: ProcId) -> bool {
    match crate::sample::ebpf::start_ns_of(id.pid) {
        Some(s) => {
            let tick = 1_000_000_000 / crate::sysinfo::clock_ticks().max(1);
            s.abs_diff(id.start_ns) <= tick
        }
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_process_is_itself_and_not_a_reused_pid() {
        let me = std::process::id();
        let start = crate::sample::ebpf::start_ns_of(me).unwrap();
        assert!(same_process(ProcId {
            pid: me,
            start_ns: start
        }));
        // Within a tick: the recording may hold the exact ns.
        assert!(same_process(ProcId {
            pid: me,
            start_ns: start + 1_000
        }));
        assert!(!same_process(ProcId {
            pid: me,
            start_ns: start + 10_000_000_000
        }));
        assert!(!same_process(ProcId {
            pid: 4_194_305,
            start_ns: 0
        }));
    }

    /// The session rules on real processes (idle `sleep`s: attached, but
    /// nothing to sample): the maximum, one session per process per file,
    /// a gone process. Needs the probe; skipped with the reason without.
    #[test]
    fn sessions_keep_to_the_maximum_and_to_one_per_process_per_file() {
        let limits = SessionLimits {
            period: 97,
            duration: Duration::from_secs(3600),
            max: 2,
        };
        let (mut sessions, requests) = match Sessions::new(limits) {
            Ok(s) => s,
            Err(e) => {
                if std::env::var_os("MEMLEAK_REQUIRE_EBPF").is_some_and(|v| v == "1") {
                    panic!("locate required (MEMLEAK_REQUIRE_EBPF=1) but unavailable: {e}");
                }
                eprintln!("SKIPPED: locate unavailable: {e}");
                return;
            }
        };
        let mut kids: Vec<std::process::Child> = (0..3)
            .map(|_| {
                std::process::Command::new("sleep")
                    .arg("60")
                    .spawn()
                    .unwrap()
            })
            .collect();
        let ids: Vec<ProcId> = kids
            .iter()
            .map(|k| ProcId {
                pid: k.id(),
                start_ns: crate::sample::ebpf::start_ns_of(k.id()).unwrap(),
            })
            .collect();
        let ask = |id: ProcId| {
            assert!(requests.request(LocateRequest {
                id,
                comm: "sleep".into(),
                why: "asked by the test".into(),
            }))
        };
        let dir = tempfile::tempdir().unwrap();
        let mut w = Writer::create(&dir.path().join("r.memleak")).unwrap();
        let stats = requests.stats();

        // Three asked, two at most; the same one twice is one session.
        for &id in &ids {
            ask(id);
        }
        ask(ids[0]);
        sessions.tick(&mut w).unwrap();
        assert_eq!((stats.started(), stats.active()), (2, 2));
        // A reused pid (same pid, another start) is not attached.
        ask(ProcId {
            pid: ids[2].pid,
            start_ns: ids[2].start_ns + 10_000_000_000,
        });
        sessions.tick(&mut w).unwrap();
        assert_eq!(stats.started(), 2);

        // The first exits: its session ends and is stored; the third
        // gets the free place.
        kids[0].kill().unwrap();
        kids[0].wait().unwrap();
        sessions.tick(&mut w).unwrap();
        assert_eq!((stats.finished(), stats.active()), (1, 1));
        ask(ids[2]);
        sessions.tick(&mut w).unwrap();
        assert_eq!((stats.started(), stats.active()), (3, 2));

        // Ended at the last file; asked again in the same file: not
        // attached; in the next file: attached again.
        sessions.end_all(&mut w).unwrap();
        assert_eq!((stats.finished(), stats.active()), (3, 0));
        ask(ids[1]);
        sessions.tick(&mut w).unwrap();
        assert_eq!(stats.started(), 3);
        sessions.new_file();
        ask(ids[1]);
        sessions.tick(&mut w).unwrap();
        assert_eq!((stats.started(), stats.active()), (4, 1));
        sessions.end_all(&mut w).unwrap();
        for k in &mut kids {
            let _ = k.kill();
            let _ = k.wait();
        }
    }

    #[test]
    fn requests_never_block_and_are_dropped_past_the_queue() {
        let (tx, rx) = sync_channel(2);
        let r = SessionRequests {
            tx,
            stats: Arc::default(),
        };
        let req = |pid| LocateRequest {
            id: ProcId { pid, start_ns: 0 },
            comm: "x".into(),
            why: String::new(),
        };
        assert!(r.request(req(1)));
        assert!(r.request(req(2)));
        assert!(!r.request(req(3)));
        drop(rx);
        assert!(!r.request(req(4)));
    }
}
