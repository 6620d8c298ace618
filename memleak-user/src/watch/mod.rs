//! The `memleak watch` daemon: one recorder writing rotated recordings for
//! nightly or continuous monitoring, a retention policy, and an optional
//! Prometheus endpoint fed from the files it writes.
//!
//! Files: `DIR/memleak-YYYYMMDD-HHMMSS.memleak` (UTC start time). A new
//! file starts at every rotation boundary (aligned to UTC: `1d` rotates at
//! midnight UTC) and when the current file reaches its size limit; after
//! each rotation only the newest `keep` of watch's own files stay (see
//! [`rotate`]). Each file is an ordinary recording; processes
//! that live across a rotation continue in the next file (the sampler is
//! kept and re-reports every process at the first snapshot of a file), and
//! `memleak analyze DIR --since ... --until ...` stitches them together.
//!
//! It sits above the data flow it drives: record → store for the files,
//! store → analyse → export for the metrics ([`refresh`]).
//!
//! With `--locate`, the refresher's analysis also asks the recorder to
//! locate every process it flags as a leak (see
//! [`crate::record::sessions`]): the recorder attaches the page-fault probe
//! to that process for a bounded time and stores the stacks in the file
//! current when the session ends.

pub mod refresh;
pub mod rotate;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::record::naming::file_name;
use crate::record::sessions::Sessions;
use crate::record::{RecordError, RecordOptions, Recorder};
use crate::source::now_unix;
use rotate::RotateError;

/// Everything the daemon needs, decided by the caller (the CLI).
#[derive(Clone, Debug)]
pub struct WatchOptions {
    /// Sampler, scope and interval; `output` and `duration` are set per file.
    pub record: RecordOptions,
    pub dir: PathBuf,
    pub rotate: Duration,
    pub max_size: Option<u64>,
    pub keep: usize,
    /// Stop after this long (default: until SIGINT/SIGTERM).
    pub duration: Option<Duration>,
}

/// Why `memleak watch` could not start or stopped.
#[derive(Debug, thiserror::Error)]
pub enum WatchError {
    #[error("--keep must be at least 1")]
    Keep,
    #[error("--rotate must be at least 1s")]
    Rotate,
    #[error(transparent)]
    Dir(#[from] RotateError),
    #[error("recording to {path}: {source}")]
    Record {
        path: PathBuf,
        #[source]
        source: RecordError,
    },
    #[error("recording to {path} stopped: {source}")]
    Storage {
        path: PathBuf,
        #[source]
        source: crate::store::StoreError,
    },
}

impl WatchOptions {
    /// Refuses settings that cannot work, before anything is started.
    pub fn check(&self) -> Result<(), WatchError> {
        if self.keep == 0 {
            return Err(WatchError::Keep);
        }
        if self.rotate < Duration::from_secs(1) {
            return Err(WatchError::Rotate);
        }
        Ok(())
    }
}

/// Seconds from `now` to the next multiple of `every` (never 0).
pub fn until_boundary(now: f64, every: f64) -> f64 {
    let next = ((now / every).floor() + 1.0) * every;
    (next - now).max(0.001)
}

/// Runs the rotation loop until a signal or `opts.duration`. The caller
/// starts the metrics endpoint (if any) first and keeps it alive meanwhile;
/// with `--locate`, it gives the recorder's side of the sessions its
/// refresher asks for.
pub fn run(opts: &WatchOptions, sessions: Option<Sessions>) -> Result<(), WatchError> {
    opts.check()?;
    rotate::prepare_dir(&opts.dir)?;
    let first = next_file(&opts.dir);
    let mut recorder = Recorder::open(&opts.record).map_err(|source| WatchError::Record {
        path: first.clone(),
        source,
    })?;
    if let Some(s) = sessions {
        recorder = recorder.with_sessions(s);
    }
    let started = Instant::now();
    // A stop that lands between two files, while --locate sessions are
    // live, still opens the next file: the recorder sees the stop at its
    // first snapshot and ends those sessions into it, instead of dropping
    // what they sampled.
    while !recorder.stopped() || recorder.live_sessions() > 0 {
        let now = now_unix();
        let mut chunk = Duration::from_secs_f64(until_boundary(now, opts.rotate.as_secs_f64()));
        if let Some(total) = opts.duration {
            let left = total.saturating_sub(started.elapsed());
            if left.is_zero() {
                break;
            }
            if left <= chunk {
                recorder.last_file();
            }
            chunk = chunk.min(left);
        }
        let output = next_file(&opts.dir);
        let file = RecordOptions {
            output: output.clone(),
            duration: Some(chunk),
            ..opts.record.clone()
        };
        // Size rotation: a watcher sets the flag the recorder checks.
        let rotate_now = Arc::new(AtomicBool::new(false));
        let size_watch = opts
            .max_size
            .map(|max| SizeWatch::start(&output, max, Arc::clone(&rotate_now)));
        diag!("memleak: recording to {}", output.display());
        let outcome = recorder.record(&file, Some(&rotate_now));
        drop(size_watch);
        let outcome = outcome.map_err(|source| WatchError::Record {
            path: output.clone(),
            source,
        })?;
        for note in &outcome.notes {
            diag!("memleak: note: {note}");
        }
        for gone in rotate::prune(&opts.dir, opts.keep)? {
            diag!("memleak: removed {} (--keep {})", gone.display(), opts.keep);
        }
        if let Some(source) = outcome.storage_error {
            return Err(WatchError::Storage {
                path: output,
                source,
            });
        }
        if outcome.interrupted {
            break;
        }
    }
    diag!(
        "memleak: watch stopped; recordings in {}",
        opts.dir.display()
    );
    Ok(())
}

/// A name for a new file in `dir`, never an existing one.
fn next_file(dir: &Path) -> PathBuf {
    let name = file_name(now_unix() as u64);
    let mut output = dir.join(&name);
    let mut n = 1;
    while output.exists() {
        output = dir.join(name.replace(".memleak", &format!("-{n}.memleak")));
        n += 1;
    }
    output
}

/// Sets `rotate` once the recording at `path` (with its WAL) reaches
/// `max` bytes; stops when dropped.
struct SizeWatch {
    done: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl SizeWatch {
    fn start(path: &Path, max: u64, rotate: Arc<AtomicBool>) -> Self {
        let done = Arc::new(AtomicBool::new(false));
        let (stop, path) = (Arc::clone(&done), path.to_path_buf());
        let thread = std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                if file_size(&path) >= max {
                    rotate.store(true, Ordering::Relaxed);
                    break;
                }
                std::thread::sleep(Duration::from_millis(500));
            }
        });
        SizeWatch {
            done,
            thread: Some(thread),
        }
    }
}

impl Drop for SizeWatch {
    fn drop(&mut self) {
        self.done.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn file_size(path: &Path) -> u64 {
    ["", "-wal"]
        .iter()
        .map(|s| {
            let mut p = path.as_os_str().to_owned();
            p.push(s);
            std::fs::metadata(PathBuf::from(p)).map_or(0, |m| m.len())
        })
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn boundaries() {
        assert_eq!(until_boundary(86_400.0 * 3.0 + 10.0, 86_400.0), 86_390.0);
        assert_eq!(until_boundary(120.0, 60.0), 60.0);
    }
}
