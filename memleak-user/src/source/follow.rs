//! Following the recordings of `memleak watch` for its metrics: the same
//! [`Loaded`] as [`range::load`] over the newest files and the last window,
//! but kept between refreshes so that a refresh reads only what was
//! written since the previous one.
//!
//! Per file it remembers the last tick and the last sample read; per
//! process the value it holds (samples are written only on change) and the
//! points of the window. A refresh opens only files that may still grow,
//! reads their ticks and samples after those marks (seeking per process:
//! see [`Recording::samples_after`]) and re-reads the small process table
//! (new processes, exits, names). Files that appear at a rotation are
//! picked up; files pruned or no longer among the newest are dropped with
//! their points. The first read of a file starts at the window's start
//! (with each process's value held there), not at the file's start.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::path::{Path, PathBuf};

use super::range::{self, Loaded};
use super::Series;
use crate::analyse::limits::{limit_for, LimitInputs};
use crate::analyse::{Metric, ProcessRef};
use crate::sample::Mem;
use crate::store::{Recording, RunMeta, StoreError};

/// Why a metrics refresh could not read `watch`'s files.
#[derive(Debug, thiserror::Error)]
pub enum FollowError {
    #[error("cannot list the recordings in {dir}: {source}; check that it exists and is readable")]
    List {
        dir: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("no readable recording in {dir}: {why}")]
    Unreadable { dir: PathBuf, why: String },
    #[error("no recording in {dir} overlaps the last window yet; memleak watch writes its first snapshot within an --interval")]
    Empty { dir: PathBuf },
}

/// A process: boot (to 10 s, as [`range::load`] matches), pid, start time.
type Key = (i64, u32, u64);

struct Point {
    at: f64,
    mem: Mem,
    file: u64,
}

/// What one file says of a process.
struct Row {
    key: Key,
    process: ProcessRef,
    alive: bool,
    exit_ns: Option<u64>,
    /// The value held since its last change sample (none before the first).
    held: Option<Mem>,
    last_sample: u64,
}

struct FileState {
    seq: u64,
    meta: RunMeta,
    counters: Vec<(String, i64)>,
    boot: i64,
    last_tick: Option<u64>,
    /// The newest sample read (ns since boot; 0: none yet).
    last_sample: u64,
    /// The recorder finished it and everything was read: never reopened.
    done: bool,
    rows: HashMap<i64, Row>,
}

#[derive(Default)]
struct ProcState {
    /// Files that list the process, by sequence number.
    files: BTreeMap<u64, ()>,
    points: VecDeque<Point>,
}

/// The incremental reader behind `watch --metrics`.
pub struct Follower {
    dir: PathBuf,
    newest: usize,
    metrics: Vec<Metric>,
    files: BTreeMap<PathBuf, FileState>,
    procs: BTreeMap<Key, ProcState>,
    next_seq: u64,
}

impl Follower {
    /// Follows the `newest` recordings of `dir`, keeping `metrics` columns.
    pub fn new(dir: &Path, newest: usize, metrics: &[Metric]) -> Follower {
        Follower {
            dir: dir.to_path_buf(),
            newest: newest.max(1),
            metrics: metrics.to_vec(),
            files: BTreeMap::new(),
            procs: BTreeMap::new(),
            next_seq: 0,
        }
    }

    /// Reads what was written since the last call and returns the samples
    /// of `[now - window, ∞)`, as [`range::load`] would over the same files.
    pub fn refresh(&mut self, now: f64, window: f64) -> Result<Loaded, FollowError> {
        let lo = now - window;
        let all = range::list_files(&self.dir).map_err(|source| FollowError::List {
            dir: self.dir.clone(),
            source,
        })?;
        let recent: Vec<PathBuf> = all[all.len().saturating_sub(self.newest)..].to_vec();
        let gone: Vec<PathBuf> = self
            .files
            .keys()
            .filter(|p| !recent.contains(p))
            .cloned()
            .collect();
        for path in gone {
            if let Some(f) = self.files.remove(&path) {
                self.forget(f.seq);
            }
        }
        let mut errors = Vec::new();
        for path in &recent {
            if let Err(e) = self.read_file(path, lo) {
                errors.push(e.to_string());
            }
        }
        for p in self.procs.values_mut() {
            while p.points.front().is_some_and(|pt| pt.at < lo) {
                p.points.pop_front();
            }
        }
        self.build(lo, &errors)
    }

    fn forget(&mut self, seq: u64) {
        self.procs.retain(|_, p| {
            p.files.remove(&seq);
            p.points.retain(|pt| pt.file != seq);
            !p.files.is_empty()
        });
    }

    fn read_file(&mut self, path: &Path, lo: f64) -> Result<(), StoreError> {
        if self.files.get(path).is_some_and(|f| f.done) {
            return Ok(());
        }
        let rec = Recording::open_without_ticks(path)?;
        let state = match self.files.get_mut(path) {
            Some(s) => s,
            None => {
                let seq = self.next_seq;
                self.next_seq += 1;
                let m = &rec.meta;
                let boot = (m.start_unix - m.start_ns as f64 / 1e9).round() as i64;
                self.files.entry(path.to_path_buf()).or_insert(FileState {
                    seq,
                    meta: m.clone(),
                    counters: Vec::new(),
                    boot,
                    last_tick: None,
                    last_sample: 0,
                    done: false,
                    rows: HashMap::new(),
                })
            }
        };
        let (ticks, samples) = match state.last_tick {
            None => {
                // First read: from a little before the window (points
                // before it are dropped anyway), each value held there.
                let from = lo - 2.0 * rec.meta.interval_ns as f64 / 1e9 - 1.0;
                let cut = rec.meta.start_ns as f64 + (from - rec.meta.start_unix) * 1e9;
                let cut = if cut > 0.0 { cut as u64 } else { 0 };
                (rec.ticks_after(cut)?, rec.samples_after(cut, true)?)
            }
            // A sampler may stamp a sample a little before the previous
            // snapshot's newest one: re-read a margin, drop what each
            // process already had.
            Some(t) => (
                rec.ticks_after(t)?,
                rec.samples_after(
                    state
                        .last_sample
                        .saturating_sub(2 * rec.meta.interval_ns.max(1_000_000_000)),
                    false,
                )?,
            ),
        };
        // Read after the samples, so that every sample's process is listed.
        let procs = rec.processes()?;
        state.meta = rec.meta.clone();
        state.counters = rec.counters.clone();
        let newest_tick = ticks.last().copied().or(state.last_tick);
        for info in procs {
            let key = (state.boot / 10, info.id.pid, info.id.start_ns);
            let row = state.rows.entry(info.row).or_insert_with(|| Row {
                key,
                process: ProcessRef {
                    id: info.id,
                    ppid: info.ppid,
                    comm: info.comm.clone(),
                    cmdline: info.cmdline.clone(),
                    exit_code: info.exit_code,
                },
                alive: true,
                exit_ns: None,
                held: None,
                last_sample: 0,
            });
            row.process.comm = info.comm.clone();
            row.process.exit_code = info.exit_code;
            row.alive = info.exit_ns.is_none();
            row.exit_ns = info.exit_ns;
            self.procs
                .entry(key)
                .or_default()
                .files
                .insert(state.seq, ());
        }
        // Samples arrive ordered by process row; walk them with the ticks.
        let mut by_row: HashMap<i64, (usize, usize)> = HashMap::new();
        let mut i = 0;
        while i < samples.len() {
            let row = samples[i].0;
            let j = i + samples[i..].iter().take_while(|s| s.0 == row).count();
            by_row.insert(row, (i, j));
            i = j;
        }
        let first_new_tick = ticks.first().copied();
        let (seq, start_unix, start_ns) = (state.seq, state.meta.start_unix, state.meta.start_ns);
        let unix = |t: u64| start_unix + t.saturating_sub(start_ns) as f64 / 1e9;
        for (row_id, row) in state.rows.iter_mut() {
            let raw = by_row
                .get(row_id)
                .map_or(&samples[..0], |&(a, b)| &samples[a..b]);
            let seen = if row.held.is_some() {
                row.last_sample
            } else {
                0
            };
            let raw = &raw[raw.partition_point(|s| row.held.is_some() && s.1 <= seen)..];
            let last_sample = raw.last().map_or(row.last_sample, |s| s.1);
            if raw.is_empty() && row.held.is_none() {
                continue;
            }
            // densify's end: the exit (or its last sample), else the newest tick.
            let end = match row.exit_ns {
                Some(e) => e.max(last_sample),
                None => newest_tick.unwrap_or(last_sample).max(last_sample),
            };
            let proc = self.procs.entry(row.key).or_default();
            if row.exit_ns.is_some() {
                // An exit written after ticks were already held past it.
                let end_at = unix(end);
                while proc
                    .points
                    .back()
                    .is_some_and(|p| p.file == seq && p.at > end_at)
                {
                    proc.points.pop_back();
                }
            }
            if raw.is_empty() && first_new_tick.is_none_or(|t| t > end) {
                continue;
            }
            let first = raw.first().map(|s| s.1);
            let floor = if row.held.is_some() {
                row.last_sample
            } else {
                first.unwrap_or(u64::MAX)
            };
            let lo_tick = ticks.partition_point(|&t| t <= floor);
            let hi_tick = ticks.partition_point(|&t| t <= end);
            let ticks = &ticks[lo_tick.min(hi_tick)..hi_tick];
            let (mut a, mut b) = (0, 0);
            let mut held = row.held;
            while a < raw.len() || b < ticks.len() {
                let take_raw = b >= ticks.len() || (a < raw.len() && raw[a].1 <= ticks[b]);
                let (t, m) = if take_raw {
                    let (_, t, m) = raw[a];
                    if b < ticks.len() && ticks[b] == t {
                        b += 1;
                    }
                    a += 1;
                    held = Some(m);
                    (t, m)
                } else {
                    let t = ticks[b];
                    b += 1;
                    match held {
                        Some(m) => (t, m),
                        None => continue,
                    }
                };
                let at = unix(t);
                if at < lo || proc.points.back().is_some_and(|p| at <= p.at) {
                    continue;
                }
                proc.points.push_back(Point {
                    at,
                    mem: m,
                    file: seq,
                });
            }
            row.held = held;
            row.last_sample = last_sample;
        }
        state.last_tick = newest_tick;
        if let Some(s) = samples.iter().map(|s| s.1).max() {
            state.last_sample = state.last_sample.max(s);
        }
        state.done = state.meta.end_ns.is_some();
        Ok(())
    }

    fn build(&self, lo: f64, errors: &[String]) -> Result<Loaded, FollowError> {
        let used: Vec<(&PathBuf, &FileState)> = self
            .files
            .iter()
            .filter(|(_, f)| {
                let end = f.meta.start_unix + f.meta.duration_s(f.last_tick);
                end >= lo
            })
            .collect();
        let Some((_, newest)) = used.last() else {
            if !errors.is_empty() {
                return Err(FollowError::Unreadable {
                    dir: self.dir.clone(),
                    why: errors.join("; "),
                });
            }
            return Err(FollowError::Empty {
                dir: self.dir.clone(),
            });
        };
        for e in errors {
            tracing::warn!("skipped: {e}");
        }
        let seqs: Vec<u64> = used.iter().map(|(_, f)| f.seq).collect();
        let interval_s = used
            .iter()
            .map(|(_, f)| f.meta.interval_ns as f64 / 1e9)
            .fold(0.0, f64::max);
        // Each process as the files describe it: identity from the first,
        // name, exit and liveness from the last (as range::load stitches).
        let mut described: HashMap<Key, (ProcessRef, bool)> = HashMap::new();
        for (_, f) in &used {
            for row in f.rows.values() {
                described
                    .entry(row.key)
                    .and_modify(|(p, alive)| {
                        p.comm = row.process.comm.clone();
                        p.exit_code = row.process.exit_code;
                        *alive = row.alive;
                    })
                    .or_insert_with(|| (row.process.clone(), row.alive));
            }
        }
        let mut processes = 0;
        let (mut first_t, mut last_t) = (f64::INFINITY, f64::NEG_INFINITY);
        let mut kept = Vec::new();
        for (key, p) in &self.procs {
            if !p.files.keys().any(|s| seqs.contains(s)) {
                continue;
            }
            processes += 1;
            let pts: Vec<&Point> = p
                .points
                .iter()
                .filter(|pt| pt.at >= lo && seqs.contains(&pt.file))
                .collect();
            if let (Some(a), Some(b)) = (pts.first(), pts.last()) {
                first_t = first_t.min(a.at);
                last_t = last_t.max(b.at);
                kept.push((key, pts));
            }
        }
        let t0 = if first_t.is_finite() {
            first_t
        } else {
            newest.meta.start_unix
        };
        let series = kept
            .into_iter()
            .filter_map(|(key, pts)| {
                let (process, alive) = described.get(key)?.clone();
                Some(Series {
                    t: pts.iter().map(|p| p.at - t0).collect(),
                    columns: self
                        .metrics
                        .iter()
                        .map(|&m| (m, pts.iter().map(|p| m.of(&p.mem)).collect()))
                        .collect(),
                    process,
                    alive,
                })
            })
            .collect();
        Ok(Loaded {
            series,
            limits: self
                .metrics
                .iter()
                .map(|&m| (m, limit_for(m, &newest.meta, &LimitInputs::default())))
                .collect(),
            interval_s,
            t0_unix: t0,
            end_unix: if last_t.is_finite() {
                last_t
            } else {
                super::now_unix()
            },
            files: used.iter().map(|(p, _)| (*p).clone()).collect(),
            host: newest.meta.host.clone(),
            sampler: newest.meta.sampler.clone(),
            counters: newest.counters.clone(),
            processes,
            // The refresh judges; it does not report code paths.
            located: Default::default(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sample::{Exit, Observation, ProcId, ProcMeta};
    use crate::store::Writer;

    const BOOT_NS: u64 = 1_000_000_000_000;
    const BOOT_UNIX: f64 = 1_800_000_000.0;
    const S: u64 = 1_000_000_000;
    const METRICS: [Metric; 3] = [Metric::Rss, Metric::Anon, Metric::Vm];

    fn writer(dir: &Path, name: &str, tick: u64) -> Writer {
        let mut w = Writer::create(&dir.join(name)).unwrap();
        let start_ns = BOOT_NS + tick * S;
        for (k, v) in [
            ("host", "test".to_string()),
            ("sampler", "ebpf".into()),
            ("interval_ns", S.to_string()),
            ("mem_total", (8u64 << 30).to_string()),
            ("start_ns", start_ns.to_string()),
            ("start_unix", format!("{}", BOOT_UNIX + tick as f64)),
        ] {
            w.set_meta(k, &v).unwrap();
        }
        w
    }

    /// One snapshot at `tick`: process p (pid 100 + p) changes every
    /// p + 1 ticks; pid 103 exits at tick 20, pid 104 starts at tick 15.
    fn snapshot(w: &mut Writer, tick: u64) {
        let t = BOOT_NS + tick * S;
        let obs: Vec<Observation> = (0..5u32)
            .filter(|&p| !(p == 3 && tick > 20 || p == 4 && tick < 15))
            .map(|p| {
                let v = (tick / (p as u64 + 1) + 1) << 20;
                Observation {
                    id: ProcId {
                        pid: 100 + p,
                        start_ns: BOOT_NS - S,
                    },
                    at_ns: t,
                    mem: Mem {
                        vm: 3 * v,
                        rss_anon: v,
                        rss_file: 4096 * p as u64,
                        rss_shmem: 0,
                        swap: 0,
                    },
                    meta: ProcMeta {
                        ppid: 1,
                        comm: format!("p{p}"),
                        cmdline: None,
                    },
                    exit: (p == 3 && tick == 20).then_some(Exit {
                        at_ns: t,
                        code: Some(0),
                        stop_signal: None,
                        oom_killed: false,
                    }),
                }
            })
            .collect();
        w.write_snapshot(t, &obs).unwrap();
        w.set_counters(&vec![("events", tick)]).unwrap();
    }

    fn full(dir: &Path, now: f64, window: f64) -> Loaded {
        let files = range::list(dir).unwrap();
        let recent = &files[files.len().saturating_sub(3)..];
        range::load(recent, Some(now - window), None, &METRICS).unwrap()
    }

    #[test]
    fn incremental_refreshes_equal_full_reads_across_appends_and_rotations() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        let window = 12.0;
        let mut f = Follower::new(dir, 3, &METRICS);
        let mut check = |tick: u64| {
            let now = BOOT_UNIX + tick as f64 + 0.5;
            let inc = f.refresh(now, window).unwrap();
            assert!(!inc.series.is_empty());
            assert_eq!(inc, full(dir, now, window), "at tick {tick}");
        };
        let mut w = writer(dir, "memleak-a.memleak", 0);
        let mut tick = 0;
        for upto in [3, 10, 17, 21, 26] {
            while tick < upto {
                tick += 1;
                snapshot(&mut w, tick);
            }
            check(tick);
        }
        // Rotations: each file continues the same processes; with four
        // files the oldest falls out of the newest three.
        for name in ["b", "c", "d"] {
            w.finish(BOOT_NS + tick * S).unwrap();
            w = writer(dir, &format!("memleak-{name}.memleak"), tick);
            for _ in 0..2 {
                for _ in 0..4 {
                    tick += 1;
                    snapshot(&mut w, tick);
                }
                check(tick);
            }
        }
        // A pruned file is dropped with its points.
        std::fs::remove_file(dir.join("memleak-b.memleak")).unwrap();
        tick += 1;
        snapshot(&mut w, tick);
        check(tick);
        // A long window reaches back into the older files.
        let now = BOOT_UNIX + tick as f64 + 0.5;
        let mut wide = Follower::new(dir, 3, &METRICS);
        assert_eq!(wide.refresh(now, 1e4).unwrap(), full(dir, now, 1e4));
    }
}
