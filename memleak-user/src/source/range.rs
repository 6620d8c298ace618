//! A time range over rotated recordings (`memleak watch` writes
//! `DIR/memleak-YYYYMMDD-HHMMSS.memleak`, one file per day or size limit).
//!
//! Files whose span overlaps the range are opened; each process's samples
//! inside the range are kept, on one time base (Unix seconds, then seconds
//! from the range's start). A process that lives across a rotation appears
//! in both files with the same identity (boot, pid, start time): its pieces
//! are stitched into one series. The short pause at a rotation (the sampler
//! restarts) is at most a gap the pre-processing already handles.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

use super::{analyse_all, now_unix, Series};
use crate::analyse::limits::{limit_for, Limit, LimitInputs};
use crate::analyse::{Analysis, Metric, ProcessRef, RecordingInfo, Settings};
use crate::store::Recording;

/// The recordings of a directory, oldest first (by name, which starts with
/// the UTC time they were started).
pub fn list(dir: &Path) -> Result<Vec<PathBuf>> {
    list_files(dir).with_context(|| format!("reading {}", dir.display()))
}

/// [`list`] without the context, for callers with their own errors.
pub fn list_files(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "memleak") && p.is_file())
        .collect();
    files.sort();
    Ok(files)
}

/// What a range holds, ready for [`analyse_all`].
#[derive(Debug, PartialEq)]
pub struct Loaded {
    pub series: Vec<Series>,
    pub limits: Vec<(Metric, Limit)>,
    /// Largest sampling interval of the files.
    pub interval_s: f64,
    /// Unix time that series time 0 stands for.
    pub t0_unix: f64,
    pub end_unix: f64,
    pub files: Vec<PathBuf>,
    /// Host of the newest file.
    pub host: String,
    pub sampler: String,
    /// Sampler health counters of the newest file.
    pub counters: Vec<(String, i64)>,
    pub processes: usize,
    /// What `watch --locate` (or `record --locate`) stored in the files
    /// used, added up.
    pub located: crate::locate::Located,
}

struct Piece {
    process: ProcessRef,
    alive: bool,
    t: Vec<f64>,
    mem: Vec<crate::sample::Mem>,
}

/// Loads the samples of `files` within `[since, until]` (Unix seconds;
/// `None`: unbounded) for `metrics`. Files that cannot be opened are
/// skipped with a warning when others can (the newest may be being
/// written), an error when none can.
pub fn load(
    files: &[PathBuf],
    since: Option<f64>,
    until: Option<f64>,
    metrics: &[Metric],
) -> Result<Loaded> {
    let lo = since.unwrap_or(f64::NEG_INFINITY);
    let hi = until.unwrap_or(f64::INFINITY);
    if lo > hi {
        bail!("--since is after --until");
    }
    let mut pieces: BTreeMap<(i64, u32, u64), Piece> = BTreeMap::new();
    let mut used = Vec::new();
    let mut last_meta = None;
    let mut interval_s: f64 = 0.0;
    let mut counters = Vec::new();
    let mut first_t = f64::INFINITY;
    let mut last_t = f64::NEG_INFINITY;
    let mut errors = Vec::new();
    let mut located = crate::locate::Located::default();
    for path in files {
        let rec = match Recording::open(path) {
            Ok(r) => r,
            Err(e) => {
                errors.push(format!("{e}"));
                continue;
            }
        };
        let start = rec.meta.start_unix;
        let end = start + rec.meta.duration_s(rec.ticks.last().copied());
        if end < lo || start > hi {
            continue;
        }
        // Boot time in Unix seconds: process start times are since boot.
        let boot = (start - rec.meta.start_ns as f64 / 1e9).round() as i64;
        interval_s = interval_s.max(rec.meta.interval_ns as f64 / 1e9);
        rec.for_each_process(|streamed| {
            let p = &streamed.info;
            let series = rec.densify(p, &streamed.raw);
            let key = (boot / 10, p.id.pid, p.id.start_ns);
            let piece = pieces.entry(key).or_insert_with(|| Piece {
                process: ProcessRef {
                    id: p.id,
                    ppid: p.ppid,
                    comm: p.comm.clone(),
                    cmdline: p.cmdline.clone(),
                    exit_code: p.exit_code,
                },
                alive: true,
                t: Vec::new(),
                mem: Vec::new(),
            });
            piece.process.comm = p.comm.clone();
            piece.process.exit_code = p.exit_code;
            piece.alive = p.exit_ns.is_none();
            for (t, m) in series.t.iter().zip(&series.mem) {
                let at = start + t;
                if at < lo || at > hi || piece.t.last().is_some_and(|&l| at <= l) {
                    continue;
                }
                first_t = first_t.min(at);
                last_t = last_t.max(at);
                piece.t.push(at);
                piece.mem.push(*m);
            }
            Ok::<(), crate::store::StoreError>(())
        })?;
        located.absorb(rec.located()?);
        counters = rec.counters.clone();
        last_meta = Some(rec.meta.clone());
        used.push(path.clone());
    }
    let Some(meta) = last_meta else {
        if !errors.is_empty() {
            bail!("no readable recording: {}", errors.join("; "));
        }
        bail!("no recording overlaps the range");
    };
    for e in &errors {
        tracing::warn!("skipped: {e}");
    }
    // Time 0: the first sample in the range (the range may start before).
    let t0 = if first_t.is_finite() {
        first_t
    } else {
        meta.start_unix
    };
    let processes = pieces.len();
    let series = pieces
        .into_values()
        .filter(|p| !p.t.is_empty())
        .map(|p| Series {
            t: p.t.iter().map(|t| t - t0).collect(),
            columns: metrics
                .iter()
                .map(|&m| (m, p.mem.iter().map(|x| m.of(x)).collect()))
                .collect(),
            process: p.process,
            alive: p.alive,
        })
        .collect();
    Ok(Loaded {
        series,
        // Per-process limits are not stitched across files: a range is
        // judged against the limits of the newest file's recorder (and
        // --limit), as recordings made before per-process limits are.
        limits: metrics
            .iter()
            .map(|&m| (m, limit_for(m, &meta, &LimitInputs::default())))
            .collect(),
        interval_s,
        t0_unix: t0,
        end_unix: if last_t.is_finite() {
            last_t
        } else {
            now_unix()
        },
        files: used,
        host: meta.host.clone(),
        sampler: meta.sampler.clone(),
        counters,
        processes,
        located,
    })
}

/// Loads and analyses `files` over `[since, until]`; also returns the
/// code paths located in those files.
pub fn analyse_files(
    files: &[PathBuf],
    since: Option<f64>,
    until: Option<f64>,
    settings: &Settings,
) -> Result<(Analysis, crate::locate::Located)> {
    settings.validate()?;
    let l = load(files, since, until, &settings.metrics)?;
    let a = analyse_loaded(&l, settings);
    Ok((a, l.located))
}

/// Analyses what [`load`] returned.
pub fn analyse_loaded(l: &Loaded, settings: &Settings) -> Analysis {
    let path = match l.files.as_slice() {
        [one] => one.clone(),
        more => more
            .first()
            .and_then(|f| f.parent())
            .map(Path::to_path_buf)
            .unwrap_or_default(),
    };
    let info = RecordingInfo {
        command: Some(format!(
            "{} ({} file{}, {} .. {})",
            path.display(),
            l.files.len(),
            if l.files.len() == 1 { "" } else { "s" },
            fmt_unix(l.t0_unix),
            fmt_unix(l.end_unix)
        )),
        path,
        sampler: l.sampler.clone(),
        host: l.host.clone(),
        interval_s: l.interval_s,
        duration_s: (l.end_unix - l.t0_unix).max(0.0),
        exit_code: None,
        processes: l.processes,
        start_unix: Some(l.t0_unix),
    };
    analyse_all(&l.series, &l.limits, l.interval_s, settings, info)
}

/// `2026-11-25T02:00:00Z`.
pub fn fmt_unix(t: f64) -> String {
    if !t.is_finite() || t < 0.0 {
        return "?".into();
    }
    humantime::format_rfc3339_seconds(std::time::UNIX_EPOCH + std::time::Duration::from_secs_f64(t))
        .to_string()
}
