//! The recorder: drives a sampler at an interval and writes a recording.
//!
//! One loop, one thread: snapshot, write (one transaction), sleep. Every
//! snapshot is committed, so a recorder killed with SIGKILL loses at most the
//! interval in flight. SIGINT/SIGTERM/SIGHUP stop the loop after a final
//! snapshot; a command being recorded then gets SIGTERM, and a second stop
//! signal or [`RecordOptions::kill_after`] escalates to SIGKILL of its tree.

pub mod choose;
pub mod contain;
pub mod limits;
pub mod markers;
pub mod naming;
pub mod progress;
pub mod sessions;
pub mod spawn;

use std::io::Read;
use std::os::fd::AsRawFd;
use std::os::fd::{FromRawFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::sample::{boottime_ns, Scope};
use crate::store::{StoreError, Writer};
use crate::sysinfo;
pub use choose::SamplerChoice;
use spawn::Status;

/// What to record, where, and how often.
#[derive(Clone, Debug)]
pub struct RecordOptions {
    pub output: PathBuf,
    pub interval: Duration,
    /// Stop after this long; a command still running is then stopped as
    /// by Ctrl-C.
    pub duration: Option<Duration>,
    /// After a stop's SIGTERM, how long the command has to end before its
    /// whole tree is killed (SIGKILL), like `timeout -k`.
    pub kill_after: Duration,
    pub sampler: SamplerChoice,
    pub scope: Scope,
    /// The command to run and record (its process tree).
    pub command: Option<Vec<String>>,
    /// Capacity of the eBPF process map.
    pub max_procs: u32,
    /// Which kernel event refreshes the eBPF counters.
    pub ebpf_hook: crate::sample::ebpf::EbpfHook,
    /// Show a progress line on stderr (when it is a terminal).
    pub progress: bool,
    /// Which command records ("run", "record", "watch"): stored so
    /// `analyze` applies the same rule as the command that recorded.
    pub origin: &'static str,
    /// Thin out long recordings: double the interval each time the
    /// recording has run for [`THIN_AFTER_SNAPSHOTS`] snapshots at the
    /// current one, up to this interval (never below `interval`).
    pub thin_to: Option<Duration>,
    /// `--locate`: also sample where the recorded command (or the `--pid`
    /// processes) first touches new memory, one page fault in this many
    /// (see [`crate::locate`]).
    pub locate: Option<u64>,
}

/// Snapshots taken at one interval before thinning doubles it: a process
/// living minutes gets thousands of points at the fine interval, and an
/// hour-long suite still stays near 10^4 ticks.
pub const THIN_AFTER_SNAPSHOTS: u64 = 3000;

/// Default [`RecordOptions::kill_after`]: long enough for a test suite to
/// write its reports, short enough that a stuck one does not hold CI.
pub const KILL_AFTER: Duration = Duration::from_secs(10);

/// The interval in force after `elapsed` of recording that started at
/// `base` and thins towards `max` (see [`RecordOptions::thin_to`]).
pub fn thinned_interval(base: Duration, max: Option<Duration>, elapsed: Duration) -> Duration {
    let Some(max) = max.filter(|m| *m > base) else {
        return base;
    };
    let mut interval = base;
    let mut stage_end = base * THIN_AFTER_SNAPSHOTS as u32;
    while elapsed >= stage_end && interval < max {
        interval = (interval * 2).min(max);
        stage_end += interval * THIN_AFTER_SNAPSHOTS as u32;
    }
    interval
}

/// What a recording holds when it ends, and why it ended.
#[derive(Debug)]
pub struct RecordOutcome {
    pub path: PathBuf,
    pub sampler: &'static str,
    pub sampler_reason: String,
    /// The command's exit status, shell style.
    pub status: Option<Status>,
    pub processes: usize,
    pub samples: u64,
    pub snapshots: u64,
    pub interrupted: bool,
    /// The recording ended because `duration` passed (the command, if still
    /// running then, was stopped on purpose: its status is no failure).
    pub duration_reached: bool,
    /// Things the user must know (fallbacks, losses), also in the recording.
    pub notes: Vec<String>,
    /// Set when recording stopped early on a storage error (e.g. disk full);
    /// the data up to the last snapshot is in the file.
    pub storage_error: Option<StoreError>,
}

/// Why recording could not start or go on.
#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Sample(#[from] crate::sample::SampleError),
    #[error(transparent)]
    Spawn(#[from] spawn::SpawnError),
    #[error("--interval must be at least {min:?} (got {got:?})")]
    Interval { min: Duration, got: Duration },
    #[error("installing the signal handler: {0}")]
    Signal(#[source] std::io::Error),
    #[error("--locate: {0}")]
    Locate(#[from] crate::locate::LocateError),
    #[error("--locate needs a command or --pid: it samples processes one by one, never a whole system or cgroup")]
    LocateScope,
}

/// Heartbeat: counters are written this often even when nothing changes.
const COUNTERS_EVERY: u64 = 10;

/// How often `--locate` names the stacks sampled since (while their
/// processes still live to be read).
const LOCATE_POLL_EVERY: Duration = Duration::from_secs(1);

/// Records one file with a sampler of its own (`record`, `run`).
pub fn record(opts: &RecordOptions) -> Result<RecordOutcome, RecordError> {
    Recorder::open(opts)?.record(opts, None)
}

/// A sampler opened once and driven into one recording after another:
/// `memleak watch` keeps it across file rotations, so the eBPF programs are
/// loaded once and nothing is missed between two files.
pub struct Recorder {
    sampler: Box<dyn crate::sample::Sampler>,
    /// Why this sampler (recorded in every file's metadata).
    reason: String,
    scope: Scope,
    /// Stop signals (SIGINT, SIGTERM, SIGHUP) received so far: the first
    /// stops, the second kills the command's tree.
    stop: Arc<AtomicUsize>,
    /// Readable once a stop signal arrived: what the loop sleeps on.
    wake: UnixStream,
    /// The signal handlers above, removed when the recorder is dropped (a
    /// library caller may record many times in one process).
    handlers: Vec<signal_hook::SigId>,
    /// Recordings written so far: every one after the first starts with a
    /// [`crate::sample::Sampler::resync`].
    files: u32,
    /// `watch --locate`: sessions started on request, kept across files.
    sessions: Option<sessions::Sessions>,
    /// The next recording is the last: live sessions end into it.
    last_file: bool,
}

impl Recorder {
    /// Installs the stop signals and opens the sampler `opts` asks for.
    pub fn open(opts: &RecordOptions) -> Result<Self, RecordError> {
        let stop = Arc::new(AtomicUsize::new(0));
        // The counter says how many stops were asked for; the pipe wakes the
        // sleeping loop at once, so it need not poll between snapshots.
        let (wake, waker) = UnixStream::pair().map_err(RecordError::Signal)?;
        wake.set_nonblocking(true).map_err(RecordError::Signal)?;
        let mut handlers = Vec::new();
        // SIGHUP too: a closed terminal or ssh session must leave a finished
        // recording, not a killed recorder.
        for sig in [
            signal_hook::consts::SIGINT,
            signal_hook::consts::SIGTERM,
            signal_hook::consts::SIGHUP,
        ] {
            let count = Arc::clone(&stop);
            // SAFETY: the handler only adds to an atomic (async-signal-safe).
            let id = unsafe {
                signal_hook::low_level::register(sig, move || {
                    count.fetch_add(1, Ordering::SeqCst);
                })
            };
            handlers.push(id.map_err(RecordError::Signal)?);
            let w = waker.try_clone().map_err(RecordError::Signal)?;
            handlers
                .push(signal_hook::low_level::pipe::register(sig, w).map_err(RecordError::Signal)?);
        }
        let scope = match (&opts.command, &opts.scope) {
            (Some(_), Scope::Tree(roots)) => Scope::Tree(roots.clone()),
            (_, s) => s.clone(),
        };
        let (sampler, reason) = choose::open(
            opts.sampler,
            scope.clone(),
            std::process::id(),
            opts.max_procs,
            opts.interval,
            opts.ebpf_hook,
        )?;
        if opts.interval < sampler.min_interval() {
            return Err(RecordError::Interval {
                min: sampler.min_interval(),
                got: opts.interval,
            });
        }
        Ok(Recorder {
            sampler,
            reason,
            scope,
            stop,
            wake,
            handlers,
            files: 0,
            sessions: None,
            last_file: false,
        })
    }

    /// Runs `sessions` (`watch --locate`) beside the sampling, in every
    /// recording from now on (see [`sessions`]).
    pub fn with_sessions(mut self, sessions: sessions::Sessions) -> Self {
        self.sessions = Some(sessions);
        self
    }

    /// Marks the next recording as the last one: the locate sessions still
    /// live when it ends are stored in it, not carried to a next file.
    /// (A stop signal does the same for the recording it interrupts.)
    pub fn last_file(&mut self) {
        self.last_file = true;
    }

    /// True once SIGINT, SIGTERM or SIGHUP arrived.
    pub fn stopped(&self) -> bool {
        self.stop.load(Ordering::Relaxed) > 0
    }

    /// `watch --locate` sessions sampling now, whose stacks no file holds
    /// yet: a stop that arrives between two files still needs a file for
    /// them.
    pub fn live_sessions(&self) -> usize {
        self.sessions.as_ref().map_or(0, |s| s.live())
    }

    /// Records into `opts.output` until the command ends, `opts.duration`
    /// passes, a signal arrives, or `rotate` is set (`memleak watch` sets it
    /// when the file reaches its size limit; not an interruption). The
    /// sampler, scope and interval are the ones [`Recorder::open`] was
    /// given; `opts` supplies the rest.
    pub fn record(
        &mut self,
        opts: &RecordOptions,
        rotate: Option<&AtomicBool>,
    ) -> Result<RecordOutcome, RecordError> {
        if self.files > 0 {
            self.sampler.resync();
        }
        self.files += 1;
        record_into(self, opts, rotate)
    }
}

impl Drop for Recorder {
    fn drop(&mut self) {
        for id in self.handlers.drain(..) {
            signal_hook::low_level::unregister(id);
        }
    }
}

fn record_into(
    rec: &mut Recorder,
    opts: &RecordOptions,
    rotate: Option<&AtomicBool>,
) -> Result<RecordOutcome, RecordError> {
    let Recorder {
        sampler,
        reason,
        scope,
        stop,
        wake,
        sessions,
        last_file,
        ..
    } = rec;
    let (scope, stop, wake, last_file) = (&*scope, &**stop, &*wake, *last_file);
    if let Some(s) = sessions.as_mut() {
        s.new_file();
    }

    // Before the file and the command: a --locate that cannot work is an
    // error the user asked to hear about, not a silent recording without.
    let mut locator = match opts.locate {
        Some(period) => {
            let roots = match (&opts.command, &scope) {
                (Some(_), _) => Vec::new(),
                (None, Scope::Tree(roots)) => roots.clone(),
                _ => return Err(RecordError::LocateScope),
            };
            let mut l = crate::locate::Locator::new(period)?;
            for pid in roots {
                l.attach(pid)?;
            }
            Some(l)
        }
        None => None,
    };

    let mut writer = Writer::create(&opts.output)?;
    let start_ns = boottime_ns();
    write_meta(&mut writer, opts, scope, sampler.name(), reason, start_ns)?;
    let mut notes: Vec<String> = Vec::new();
    if sampler.name() != "ebpf" {
        notes.push(format!("sampler: {reason}"));
    }
    notes.extend(sampler.limitations());
    for n in &notes {
        writer.note(start_ns, n)?;
    }

    // Start the command only once the sampler is ready, and track it before
    // it execs so nothing it does escapes the recording.
    // Phase markers: only for a command we start (it inherits the path).
    // With --locate, the marker thread reads the sample counts as each
    // marker arrives, so samples are charged to the test that was running.
    let tap = locator.as_ref().and_then(|l| l.tap()).map(|t| {
        let tap: markers::Tap = Box::new(move || t.counts());
        tap
    });
    let marker_pipe = match &opts.command {
        Some(_) => match markers::MarkerPipe::create_with_tap(tap) {
            Ok(p) => Some(p),
            Err(e) => {
                let note = format!("phase markers disabled: {e}");
                writer.note(start_ns, &note)?;
                notes.push(note);
                None
            }
        },
        None => None,
    };
    let child_env: Vec<(String, String)> = marker_pipe
        .iter()
        .map(|p| (markers::ENV.to_string(), p.path().display().to_string()))
        .collect();
    // Dropped on every return from here: an error return kills the tree.
    let mut contain = opts
        .command
        .as_ref()
        .map(|_| contain::Containment::prepare());
    let child = match &opts.command {
        Some(argv) => {
            let gated = spawn::spawn_gated(argv, &child_env)?;
            if let Some(c) = contain.as_mut() {
                c.place(gated.pid);
            }
            // Track it (and attach --locate) before exec, so the program it
            // becomes and every process it starts are seen from the start.
            let held = sampler
                .track(gated.pid)
                .map_err(RecordError::from)
                .and_then(|()| match locator.as_mut() {
                    Some(l) => l.attach(gated.pid).map(drop).map_err(RecordError::from),
                    None => Ok(()),
                });
            if let Err(e) = held {
                // Let it run anyway? No: a recording that misses the command
                // would report "no leak" falsely. Kill it and say why.
                // SAFETY: our own child, held before exec.
                unsafe { libc::kill(gated.pid as i32, libc::SIGKILL) };
                let _ = spawn::try_wait(gated.pid);
                discard(writer, &opts.output);
                return Err(e);
            }
            match gated.release() {
                Ok(pid) => Some(pid),
                Err(e) => {
                    // Nothing ran, so there is nothing to keep: an empty
                    // recording would only be mistaken for a clean run.
                    discard(writer, &opts.output);
                    return Err(e.into());
                }
            }
        }
        None => None,
    };
    if let Some(c) = &contain {
        if c.is_fallback() {
            let note = c.describe();
            writer.note(start_ns, &note)?;
            notes.push(note);
        } else {
            tracing::debug!("{}", c.describe());
        }
    }
    // Wakes the loop the moment the command exits, not at the next tick.
    let child_fd = child.and_then(pidfd_open);

    let mut progress = progress::Progress::new(opts.progress, &opts.output, opts.command.is_some());
    let started = Instant::now();
    let mut status = None;
    let mut samples = 0u64;
    let mut snapshots = 0u64;
    let mut last_interval = opts.interval;
    let mut storage_error = None;
    let mut next = Instant::now();
    // Whether the command's final (exit) record was written.
    let mut exit_seen = false;
    let mut limit_schedule = limits::LimitSchedule::default();
    let mounts = crate::sample::proclimits::Mounts::detect();
    let mut next_locate = Instant::now() + LOCATE_POLL_EVERY;
    let mut open_phases = markers::OpenPhases::default();
    loop {
        if Instant::now() >= next_locate {
            if let Some(l) = locator.as_mut() {
                l.poll();
            }
            if let Some(s) = sessions.as_mut() {
                if let Err(e) = s.tick(&mut writer) {
                    storage_error = Some(e);
                    break;
                }
            }
            next_locate = Instant::now() + LOCATE_POLL_EVERY;
        }
        if let Some(pid) = child {
            if status.is_none() {
                if let Ok(Some(s)) = spawn::try_wait(pid) {
                    status = Some(s);
                }
            }
        }
        let done = stop.load(Ordering::Relaxed) > 0
            || rotate.is_some_and(|r| r.load(Ordering::Relaxed))
            || status.is_some()
            || opts.duration.is_some_and(|d| started.elapsed() >= d);
        if let Err(e) = store_markers(
            &mut writer,
            marker_pipe.as_ref(),
            locator.as_mut(),
            &mut open_phases,
        ) {
            storage_error = Some(e);
            break;
        }
        let now = boottime_ns();
        let read_started = Instant::now();
        let obs = sampler.snapshot()?;
        let read_took = read_started.elapsed();
        exit_seen |= child.is_some_and(|pid| has_exit(&obs, pid));
        let limits = read_limits(&mut limit_schedule, &mounts, now, &obs);
        let write_started = Instant::now();
        match writer.write_snapshot_with_limits(now, &obs, &limits) {
            Ok(n) => {
                samples += n as u64;
                // MEMLEAK_LOG=memleak::record=trace: what each snapshot cost,
                // to tell a slow sampler from a slow disk.
                tracing::trace!(
                    snapshot = snapshots,
                    processes = obs.len(),
                    changed = n,
                    limits = limits.len(),
                    read_us = read_took.as_micros() as u64,
                    write_us = write_started.elapsed().as_micros() as u64,
                    "snapshot"
                );
            }
            Err(e) => {
                tracing::debug!(snapshot = snapshots, "storage error: {e}");
                storage_error = Some(e);
                break;
            }
        }
        snapshots += 1;
        if snapshots.is_multiple_of(COUNTERS_EVERY) {
            if let Err(e) = writer.set_counters(&sampler.counters()) {
                storage_error = Some(e);
                break;
            }
        }
        progress.update(started.elapsed(), writer.process_count(), samples);
        if done {
            break;
        }
        let interval = thinned_interval(opts.interval, opts.thin_to, started.elapsed());
        if interval != last_interval {
            tracing::debug!(
                interval_ms = interval.as_millis() as u64,
                "interval thinned"
            );
            last_interval = interval;
        }
        next += interval;
        let now = Instant::now();
        if next > now {
            // A long interval must not delay the stop at `duration`.
            let wake_at = match opts.duration {
                Some(d) => next.min(started + d),
                None => next,
            };
            sleep_unless_stopped(
                wake_at.saturating_duration_since(now),
                stop,
                wake,
                child_fd.as_ref(),
            );
        } else {
            // Fell behind (slow disk, huge snapshot): do not try to catch up.
            next = now;
        }
    }
    progress.finish();
    let interrupted = stop.load(Ordering::Relaxed) > 0;
    let duration_reached = !interrupted
        && storage_error.is_none()
        && opts.duration.is_some_and(|d| started.elapsed() >= d);

    if let Some(pid) = child {
        // Stopped by a signal, the duration or a storage error while the
        // command still runs: pass a stop request on (Ctrl-C reached it
        // already through the process group; SIGTERM sent to us alone did
        // not), then wait so `run` can still return the command's exit code.
        if status.is_none() {
            if let (Some(e), false) = (&storage_error, interrupted) {
                // Say so now, not only when the command ends (maybe hours later).
                diag!(
                    "memleak: warning: {e}; the command (pid {pid}) keeps running, unrecorded, until it ends (Ctrl-C stops it)"
                );
            }
            status = stop_command(
                pid,
                stop,
                wake,
                child_fd.as_ref(),
                duration_reached,
                opts.kill_after,
                contain.as_ref(),
            );
        }
        // What it started and left behind would run on unrecorded.
        if let Some(n) = contain
            .as_ref()
            .and_then(|c| c.kill_leftovers())
            .filter(|n| *n > 0)
        {
            diag!("memleak: killed {n} processes the command left running (SIGKILL)");
        }
        // The command has been reaped, so its exit is in the sampler (or its
        // /proc entry is gone): take snapshots until its final record is in.
        let deadline = Instant::now() + EXIT_WAIT;
        while storage_error.is_none() && !exit_seen {
            let obs = sampler.snapshot()?;
            exit_seen = has_exit(&obs, pid);
            match store_markers(
                &mut writer,
                marker_pipe.as_ref(),
                locator.as_mut(),
                &mut open_phases,
            )
            .and_then(|()| writer.write_snapshot(boottime_ns(), &obs))
            {
                Ok(n) => samples += n as u64,
                Err(e) => storage_error = Some(e),
            }
            if exit_seen || Instant::now() >= deadline {
                break;
            }
            std::thread::sleep(EXIT_POLL);
        }
    }
    if let Some(c) = contain.as_mut() {
        c.finish();
    }
    let processes = writer.process_count();

    let counters = sampler.counters();
    let end_ns = boottime_ns();
    if storage_error.is_none() {
        let losses: Vec<String> = counters
            .iter()
            .filter(|(name, v)| *v > 0 && is_loss(name))
            .map(|(name, v)| format!("{name}: {v}"))
            .collect();
        if !losses.is_empty() {
            let note = format!(
                "the sampler lost information ({}); raise --max-procs or the interval",
                losses.join(", ")
            );
            writer.note(end_ns, &note)?;
            notes.push(note);
        }
        writer.set_counters(&counters)?;
        if let Some(l) = locator.as_mut() {
            // What was sampled since the last marker: to the phases still
            // open (a test that never ended), else to none.
            l.cut_now(&|tgid| open_phases.of(tgid));
            let located = l.located();
            if let Some(why) = l.lost_detail().filter(|_| located.lost > 0) {
                let note = format!(
                    "--locate: {} page-fault samples could not be tied to a stack: {why}",
                    located.lost
                );
                writer.note(end_ns, &note)?;
                notes.push(note);
            }
            writer.write_located(&located)?;
        }
        if let Some(s) = sessions.as_mut().filter(|_| interrupted || last_file) {
            s.end_all(&mut writer)?;
        }
        if let Some(s) = status {
            writer.set_meta("exit_code", &s.0.to_string())?;
        }
        // At the end, not the start: on a nearly full disk every early
        // commit is room taken from snapshots.
        if let Some(c) = &contain {
            writer.set_meta("containment", c.name())?;
        }
        if interrupted {
            writer.set_meta("interrupted", "true")?;
        }
        writer.finish(end_ns)?;
    }
    Ok(RecordOutcome {
        path: opts.output.clone(),
        sampler: sampler.name(),
        sampler_reason: reason.clone(),
        status,
        processes,
        samples,
        snapshots,
        interrupted,
        duration_reached,
        notes,
        storage_error,
    })
}

/// A pidfd for `pid`: readable once it exits (Linux 5.3+; `None` before,
/// and the waits fall back to short polls).
fn pidfd_open(pid: u32) -> Option<OwnedFd> {
    // SAFETY: plain syscall; the fd it returns is ours.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid as libc::pid_t, 0) };
    // SAFETY: a fresh fd we own.
    (fd >= 0).then(|| unsafe { OwnedFd::from_raw_fd(fd as i32) })
}

/// Waits for the command after the recording stopped. Each stop request
/// (a signal, or the duration passing) raises the pressure: the first sends
/// SIGTERM, the second (or `kill_after` without an end) SIGKILLs the whole
/// tree, so a command that ignores SIGTERM cannot hold memleak forever.
fn stop_command(
    pid: u32,
    stop: &AtomicUsize,
    wake: &UnixStream,
    child_fd: Option<&OwnedFd>,
    duration_reached: bool,
    kill_after: Duration,
    contain: Option<&contain::Containment>,
) -> Option<Status> {
    let mut termed: Option<Instant> = None;
    let mut killed = false;
    loop {
        match spawn::try_wait(pid) {
            Ok(Some(s)) => return Some(s),
            Ok(None) => {}
            Err(_) => return None,
        }
        let asked = stop.load(Ordering::SeqCst) + usize::from(duration_reached);
        if asked >= 1 && termed.is_none() {
            // SAFETY: signalling our own child (not yet reaped).
            unsafe { libc::kill(pid as i32, libc::SIGTERM) };
            termed = Some(Instant::now());
        }
        if !killed {
            let why = if asked >= 2 {
                Some("a second stop signal".to_string())
            } else if termed.is_some_and(|t| t.elapsed() >= kill_after) {
                Some(format!(
                    "the command did not end within {} of SIGTERM (--kill-after)",
                    humantime::format_duration(kill_after)
                ))
            } else {
                None
            };
            if let Some(why) = why {
                diag!("memleak: {why}: killing the command and every process it started (SIGKILL)");
                match contain {
                    Some(c) => {
                        c.kill_tree();
                    }
                    // SAFETY: signalling our own child (not yet reaped).
                    None => unsafe {
                        libc::kill(pid as i32, libc::SIGKILL);
                    },
                }
                killed = true;
            }
        }
        let mut timeout = match (killed, termed) {
            (false, Some(t)) => kill_after.saturating_sub(t.elapsed()),
            _ => Duration::from_secs(3600),
        };
        if child_fd.is_none() || killed {
            timeout = timeout.min(Duration::from_millis(50));
        }
        sleep_unless_stopped_or(timeout, wake, child_fd);
    }
}

/// How often the recorder looks again for the command's exit record after
/// the command was reaped, and for how long at most. Both samplers have it
/// by the first look (eBPF: the exit tracepoint ran before the parent could
/// reap; procfs: the /proc entry is gone), so the bound only matters for a
/// sampler that lost the event.
const EXIT_POLL: Duration = Duration::from_millis(2);
const EXIT_WAIT: Duration = Duration::from_secs(1);

/// Whether a snapshot holds the final record of `pid`.
fn has_exit(obs: &[crate::sample::Observation], pid: u32) -> bool {
    obs.iter().any(|o| o.id.pid == pid && o.exit.is_some())
}

/// Closes and deletes a recording that holds nothing worth keeping (the
/// command never started), with SQLite's side files.
fn discard(writer: Writer, path: &std::path::Path) {
    drop(writer);
    for suffix in ["", "-wal", "-shm"] {
        let mut p = path.as_os_str().to_owned();
        p.push(suffix);
        let _ = std::fs::remove_file(p);
    }
}

/// Reads the limits of the processes of a snapshot that are due (new,
/// exec'd, or not read for a while), to store with that snapshot.
fn read_limits(
    schedule: &mut limits::LimitSchedule,
    mounts: &crate::sample::proclimits::Mounts,
    now_ns: u64,
    obs: &[crate::sample::Observation],
) -> Vec<(crate::sample::ProcId, crate::sample::proclimits::ProcLimits)> {
    schedule
        .due(now_ns, obs)
        .into_iter()
        // Read right after the snapshot that saw the process alive; an
        // empty read means it is gone (or hides its files): nothing to say.
        .map(|id| (id, crate::sample::proclimits::read(id.pid, mounts)))
        .filter(|(_, l)| !l.is_empty())
        .collect()
}

/// Stores the markers received since the last call; with `--locate`,
/// charges the samples taken before each marker to the phases open then.
fn store_markers(
    w: &mut Writer,
    pipe: Option<&markers::MarkerPipe>,
    locator: Option<&mut crate::locate::Locator>,
    open: &mut markers::OpenPhases,
) -> Result<(), StoreError> {
    let Some(pipe) = pipe else { return Ok(()) };
    let got = pipe.drain();
    if let Some(l) = locator {
        for m in &got {
            if let Some(counts) = &m.located {
                l.cut(counts, &|tgid| open.of(tgid));
            }
            open.apply(&m.kind, &m.name);
        }
        if !got.is_empty() {
            // Name the test's stacks now, not up to a second later: a
            // test process may exit right after its last test.
            l.poll();
        }
    }
    let rows: Vec<(u64, &str, &str)> = got
        .iter()
        .map(|m| (m.at_ns, m.kind.as_str(), m.name.as_str()))
        .collect();
    w.add_markers(&rows)
}

fn is_loss(counter: &str) -> bool {
    matches!(
        counter,
        "procs_map_full"
            | "dirty_map_full"
            | "exits_lost"
            | "kernel_read_errors"
            | "unattributed_rss_events"
    )
}

fn write_meta(
    w: &mut Writer,
    opts: &RecordOptions,
    scope: &Scope,
    sampler: &str,
    reason: &str,
    start_ns: u64,
) -> Result<(), StoreError> {
    // One transaction for all keys: each commit appends the meta pages to
    // the WAL again, which on a nearly full disk is room for snapshots.
    let mut meta = MetaBatch::default();
    let start_unix = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0);
    meta.set("host", &sysinfo::hostname());
    meta.set("kernel", &sysinfo::kernel_release());
    meta.set("sampler", sampler);
    meta.set("sampler_reason", reason);
    meta.set(
        "interval_ns",
        &(opts.interval.as_nanos() as u64).to_string(),
    );
    meta.set("start_ns", &start_ns.to_string());
    meta.set("start_unix", &format!("{start_unix:.6}"));
    meta.set("page_size", &sysinfo::page_size().to_string());
    meta.set("memleak_version", env!("CARGO_PKG_VERSION"));
    meta.set("origin", opts.origin);
    if let Some(max) = opts.thin_to.filter(|m| *m > opts.interval) {
        meta.set("interval_max_ns", &(max.as_nanos() as u64).to_string());
    }
    if let Some(mode) = sysinfo::overcommit_memory() {
        meta.set("overcommit_memory", &mode.to_string());
    }
    let scope_text = match scope {
        Scope::All => "all".to_string(),
        Scope::Tree(_) if opts.command.is_some() => "tree".to_string(),
        Scope::Tree(roots) => format!(
            "tree:{}",
            roots
                .iter()
                .map(|p| p.to_string())
                .collect::<Vec<_>>()
                .join(",")
        ),
        Scope::Cgroup(p) => format!("cgroup:{}", p.display()),
    };
    meta.set("scope", &scope_text);
    if let Ok(mi) = sysinfo::meminfo() {
        meta.set("mem_total", &mi.mem_total.to_string());
        meta.set("swap_total", &mi.swap_total.to_string());
        if let Some(c) = mi.commit_limit {
            meta.set("commit_limit", &c.to_string());
        }
    }
    let cgroup = match scope {
        Scope::Cgroup(p) => Some(p.clone()),
        _ => sysinfo::cgroup_of(std::process::id()),
    };
    if let Some(max) = cgroup.as_deref().and_then(sysinfo::cgroup_memory_max) {
        meta.set("cgroup_max", &max.to_string());
    }
    if let Some(limit) = sysinfo::rlimit_as() {
        meta.set("rlimit_as", &limit.to_string());
    }
    if let Some(cmd) = &opts.command {
        meta.set("command", &shell_join(cmd));
    }
    w.set_metas(&meta.0)
}

/// Meta keys collected for one transaction.
#[derive(Default)]
struct MetaBatch(Vec<(String, String)>);

impl MetaBatch {
    fn set(&mut self, key: &str, value: &str) {
        self.0.push((key.to_string(), value.to_string()));
    }
}

/// Joins argv for display, quoting arguments that need it.
pub fn shell_join(argv: &[String]) -> String {
    argv.iter()
        .map(|a| {
            if !a.is_empty()
                && a.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_./=:,+@%".contains(c))
            {
                a.clone()
            } else {
                format!("'{}'", a.replace('\'', r"'\''"))
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// Sleeps for `d`, or less when a stop signal arrives or the command
/// (`child`) exits: one wait on the signal pipe and the pidfd, not a poll of
/// the flag every few milliseconds (which alone cost ~0.03% of a core at a
/// 1 s interval).
fn sleep_unless_stopped(
    d: Duration,
    stop: &AtomicUsize,
    wake: &UnixStream,
    child: Option<&OwnedFd>,
) {
    let end = Instant::now() + d;
    while stop.load(Ordering::Relaxed) == 0 {
        let now = Instant::now();
        if now >= end {
            break;
        }
        if sleep_unless_stopped_or(end - now, wake, child) {
            break;
        }
    }
}

/// One wait of at most `d` on the signal pipe and the command's pidfd;
/// true when the command exited.
fn sleep_unless_stopped_or(d: Duration, wake: &UnixStream, child: Option<&OwnedFd>) -> bool {
    let ms = d.as_millis().clamp(1, i32::MAX as u128) as i32;
    let mut fds = [
        libc::pollfd {
            fd: wake.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        },
        libc::pollfd {
            fd: child.map_or(-1, |c| c.as_raw_fd()),
            events: libc::POLLIN,
            revents: 0,
        },
    ];
    // SAFETY: pollfds we own, for the duration of the call (a negative fd
    // is ignored by poll).
    let r = unsafe { libc::poll(fds.as_mut_ptr(), 2, ms) };
    if r > 0 && fds[0].revents != 0 {
        // Drain: the counter, not the bytes, says what happened.
        let mut buf = [0u8; 64];
        while let Ok(n) = (&*wake).read(&mut buf) {
            if n == 0 {
                break;
            }
        }
    }
    // r == 0: the time is up; r < 0: EINTR, the caller looks again.
    r > 0 && fds[1].revents != 0
}

#[cfg(test)]
mod tests {
    use super::shell_join;

    #[test]
    fn thinning_doubles_the_interval_in_stages() {
        use super::thinned_interval as t;
        use std::time::Duration as D;
        let ms = D::from_millis;
        assert_eq!(t(ms(100), None, D::from_secs(9999)), ms(100));
        assert_eq!(t(ms(100), Some(ms(1000)), D::from_secs(299)), ms(100));
        // 3000 snapshots at 100 ms = 300 s, then 3000 at 200 ms = 600 s more.
        assert_eq!(t(ms(100), Some(ms(1000)), D::from_secs(300)), ms(200));
        assert_eq!(t(ms(100), Some(ms(1000)), D::from_secs(899)), ms(200));
        assert_eq!(t(ms(100), Some(ms(1000)), D::from_secs(900)), ms(400));
        assert_eq!(t(ms(100), Some(ms(1000)), D::from_secs(86_400)), ms(1000));
    }

    #[test]
    fn shell_join_quotes_only_when_needed() {
        let argv = ["sh", "-c", "echo 'hi' there", ""].map(String::from);
        assert_eq!(shell_join(&argv), r"sh -c 'echo '\''hi'\'' there' ''");
    }
}
