//! From a stored recording to the analysis' inputs (store → analyse): reads
//! each process once, in one streaming pass, turns it into the series and
//! limits [`analyse_process`] judges, and runs the analysis. The analysis
//! itself ([`crate::analyse`]) does no I/O; everything that reads a
//! recording for it lives here.

pub mod baseline;
pub mod charts;
pub mod config;
pub mod eval;
pub mod phases;
#[cfg(test)]
pub(crate) mod tests;

use std::collections::HashMap;

use crate::analyse::life::ProcessEnd;
use crate::analyse::limits::{self, limit_for, LimitInputs};
use crate::analyse::{
    analyse_process, AnalyseError, Analysis, Collector, LoadedProcess, Metric, ProcessRef,
    RecordingInfo, Rule, Settings,
};
use crate::sample::proclimits::{LimitKind, LimitRow};
use crate::store::{Recording, StoreError, Streamed};

/// What a worker concluded about one process, for [`Collector::add`].
type Judged = (
    ProcessRef,
    f64,
    ProcessEnd,
    Result<crate::analyse::Judged, crate::analyse::SkipReason>,
);

/// Why a recording could not be analysed.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Analyse(#[from] AnalyseError),
}

/// Finds the limits that apply to a process without rows of its own (it
/// exited before the recorder read them): the nearest ancestor's, since
/// fork copies rlimits and the cgroup. Ancestors are looked up in the file
/// by PID on demand and remembered, so memory grows with the number of
/// distinct parents, not with the number of processes.
struct Ancestry<'r> {
    rec: &'r Recording,
    by_pid: HashMap<u32, Vec<crate::store::ProcessInfo>>,
    limits: HashMap<i64, Vec<LimitRow>>,
}

impl<'r> Ancestry<'r> {
    fn new(rec: &'r Recording) -> Self {
        Ancestry {
            rec,
            by_pid: HashMap::new(),
            limits: HashMap::new(),
        }
    }

    /// The limits in effect at `at_ns` for `p`, whose own rows are `own`.
    fn in_effect(
        &mut self,
        p: &crate::store::ProcessInfo,
        own: &[LimitRow],
        at_ns: u64,
    ) -> Result<Vec<(LimitKind, u64)>, StoreError> {
        if !own.is_empty() {
            return Ok(limits::in_effect(own, at_ns));
        }
        let mut cur = p.clone();
        for _ in 0..64 {
            // The parent: the process with that pid started last before us.
            if !self.by_pid.contains_key(&cur.ppid) {
                let found = self.rec.processes_with_pid(cur.ppid)?;
                self.by_pid.insert(cur.ppid, found);
            }
            let parent = self.by_pid[&cur.ppid]
                .iter()
                .filter(|q| q.id.start_ns <= cur.id.start_ns && q.row != cur.row)
                .max_by_key(|q| q.id.start_ns)
                .cloned();
            let Some(q) = parent else { break };
            if !self.limits.contains_key(&q.row) {
                let rows = self.rec.limits_of(q.row)?;
                self.limits.insert(q.row, rows);
            }
            let rows = &self.limits[&q.row];
            if !rows.is_empty() {
                return Ok(limits::in_effect(rows, at_ns));
            }
            cur = q;
        }
        Ok(Vec::new())
    }
}

/// Turns one streamed process into every metric of `settings`, with its
/// limits.
fn load_process(
    rec: &Recording,
    ancestry: &mut Ancestry<'_>,
    s: &Streamed,
    settings: &Settings,
) -> Result<LoadedProcess, StoreError> {
    let p = &s.info;
    let series = rec.densify(p, &s.raw);
    let columns: Vec<(Metric, Vec<f64>)> = settings
        .metrics
        .iter()
        .map(|&m| (m, series.mem.iter().map(|x| m.of(x)).collect()))
        .collect();
    let end_ns = p
        .exit_ns
        .unwrap_or_else(|| rec.meta.start_ns + series.t.last().map_or(0, |s| (s * 1e9) as u64));
    let process_limits = ancestry.in_effect(p, &s.limits, end_ns)?;
    let anon_floor = series
        .mem
        .iter()
        .map(|x| Metric::Anon.of(x))
        .fold(f64::INFINITY, f64::min);
    let inputs = LimitInputs {
        process: &process_limits,
        user: settings.limit_bytes,
        anon_floor: if anon_floor.is_finite() {
            anon_floor
        } else {
            0.0
        },
    };
    let limits = settings
        .metrics
        .iter()
        .map(|&m| limit_for(m, &rec.meta, &inputs))
        .collect();
    Ok(LoadedProcess {
        t: series.t,
        columns,
        limits,
        end: ProcessEnd::from_exit(p.exit_ns, p.exit_code, p.stop_signal, p.oom_killed),
    })
}

/// Loads every process of a recording that `keep` accepts, one at a time in
/// one pass over the file, calling `each` with it (memory stays bounded by
/// one process's series).
pub fn for_each_process(
    rec: &Recording,
    settings: &Settings,
    mut keep: impl FnMut(&crate::store::ProcessInfo) -> bool,
    mut each: impl FnMut(&crate::store::ProcessInfo, LoadedProcess),
) -> Result<(), StoreError> {
    let mut ancestry = Ancestry::new(rec);
    rec.for_each_process(|s: Streamed| {
        if keep(&s.info) {
            let loaded = load_process(rec, &mut ancestry, &s, settings)?;
            each(&s.info, loaded);
        }
        Ok::<(), StoreError>(())
    })
}

/// The rule a recording is judged by: the settings', else the one of the
/// command that made it.
pub fn rule_for(rec: &Recording, settings: &Settings) -> Rule {
    settings
        .rule
        .unwrap_or_else(|| Rule::for_origin(rec.meta.origin.as_deref()))
}

/// Analyses every process of a recording, reading it in one pass. The
/// pure analysis runs on one worker thread per core while the next
/// processes are read, so reading and judging overlap; results are
/// collected in file order, so the report does not depend on which worker
/// finished first.
pub fn analyse_recording(rec: &Recording, settings: &Settings) -> Result<Analysis, LoadError> {
    settings.validate()?;
    let meta = &rec.meta;
    let interval_s = meta.interval_ns as f64 / 1e9;
    let rule = rule_for(rec, settings);
    let workers = std::thread::available_parallelism().map_or(1, |n| n.get());
    // A few processes in flight per worker: enough to keep every core
    // busy, small enough that memory stays that of a handful of series.
    let (tx, rx) = std::sync::mpsc::sync_channel::<(usize, ProcessRef, LoadedProcess)>(4 * workers);
    // Each worker holds the receiver: if every one of them panics, it is
    // dropped and the reader's sends fail instead of blocking for ever.
    let rx = std::sync::Arc::new(std::sync::Mutex::new(rx));
    let (done_tx, done_rx) = std::sync::mpsc::channel::<(usize, Judged)>();
    let collector = std::thread::scope(|scope| {
        for _ in 0..workers {
            let done_tx = done_tx.clone();
            let rx = std::sync::Arc::clone(&rx);
            scope.spawn(move || loop {
                // The lock is held only to take the next process.
                let next = rx.lock().map(|r| r.recv());
                let Ok(Ok((seq, process, loaded))) = next else {
                    break;
                };
                let observed_s = match (loaded.t.first(), loaded.t.last()) {
                    (Some(a), Some(b)) => b - a,
                    _ => 0.0,
                };
                let inputs = loaded.inputs(loaded.t.len());
                let outcome =
                    analyse_process(&loaded.t, &inputs, loaded.end, interval_s, rule, settings);
                let _ = done_tx.send((seq, (process, observed_s, loaded.end, outcome)));
            });
        }
        drop((done_tx, rx));
        let collect = scope.spawn(move || {
            let mut c = Collector::default();
            // Results that arrived before an earlier process's.
            let mut early = std::collections::BTreeMap::new();
            let mut want = 0;
            for (seq, judged) in done_rx {
                early.insert(seq, judged);
                while let Some((process, observed_s, end, outcome)) = early.remove(&want) {
                    c.add(process, observed_s, end, outcome);
                    want += 1;
                }
            }
            c
        });
        let mut seq = 0;
        let read = for_each_process(
            rec,
            settings,
            |_| true,
            |p, loaded| {
                let process = ProcessRef {
                    id: p.id,
                    ppid: p.ppid,
                    comm: p.comm.clone(),
                    cmdline: p.cmdline.clone(),
                    exit_code: p.exit_code,
                };
                // A worker only stops early by panicking, which join
                // reports below.
                let _ = tx.send((seq, process, loaded));
                seq += 1;
            },
        );
        drop(tx);
        let collector = collect
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
        read.map(|()| collector)
    })?;
    let mut settings = settings.clone();
    settings.rule = Some(rule);
    Ok(collector.finish(
        RecordingInfo {
            path: rec.path().to_path_buf(),
            command: meta.command.clone(),
            sampler: meta.sampler.clone(),
            host: meta.host.clone(),
            interval_s,
            duration_s: meta.duration_s(rec.ticks.last().copied()),
            exit_code: meta.exit_code,
            processes: rec.process_count,
            // Recordings older than the start_unix meta key read 0.
            start_unix: Some(meta.start_unix).filter(|&t| t > 0.0),
        },
        settings,
    ))
}
