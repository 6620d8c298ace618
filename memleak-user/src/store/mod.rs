//! The recording: one SQLite file (WAL mode) per run.
//!
//! WAL plus a commit per snapshot means a recorder killed with SIGKILL loses
//! at most the snapshot in flight; the file opens and analyses afterwards.
//!
//! Samples are stored only when a process's figures changed; the `ticks`
//! table lists every instant the sampler looked, so a reader can tell "did
//! not change" (tick present, no sample: value held) from "not observed"
//! (no tick: a gap).

mod chunk;
mod header;
mod read;
mod schema;
mod write;

pub use header::is_recording;
pub use read::{ProcessInfo, ProcessSeries, Recording, RunMeta, Streamed};
pub use schema::FORMAT_VERSION;
pub use write::Writer;

use std::path::PathBuf;

/// Why a recording could not be written or read; says what to do.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{path}: no such recording; check the path (recordings are written by `memleak record` or `memleak run`)")]
    NotFound { path: PathBuf },
    #[error("{path}: the file is empty; the recorder probably failed before its first snapshot")]
    Empty { path: PathBuf },
    #[error("{path}: cannot read the recording: {cause}")]
    Unreadable { path: PathBuf, cause: String },
    #[error("{path}: not a memleak recording: not a regular file (it is a {kind}); give the path of a recording file")]
    NotRegular { path: PathBuf, kind: &'static str },
    #[error("{path}: the recording is truncated (the file has {len} bytes, its header announces {expected}): it was cut short, e.g. by an interrupted copy; copy it again from where it was recorded")]
    Truncated {
        path: PathBuf,
        len: u64,
        expected: u64,
    },
    #[error("{path}: the recording's data is not in this file: a recorder keeps it in {path}-wal until it finishes, and there is no such file; copy the -wal file along with the recording (without one, the recorder stopped before its first snapshot)")]
    MissingWal { path: PathBuf },
    #[error("{path}: the recorder did not finish this recording; its last snapshots are in {path}-wal, which memleak reads without changing the recording but only with an index ({path}-shm) that this folder does not let it create: copy the recording and its -wal file to a writable folder and read the copy")]
    WalIndex { path: PathBuf },
    #[error("{path}: not a memleak recording ({why})")]
    Foreign { path: PathBuf, why: String },
    #[error("{path}: recording format version {found} is not supported by this memleak (it reads versions 1 to {supported}); use a matching memleak version")]
    Version {
        path: PathBuf,
        found: i64,
        supported: i64,
    },
    #[error("{path}: the recording is damaged ({why}); if the recorder was killed, the data up to the last snapshot may still be readable with `memleak info`")]
    Corrupt { path: PathBuf, why: String },
    #[error("{path}: {}", one_line(&source.to_string()))]
    Sqlite {
        path: PathBuf,
        #[source]
        source: rusqlite::Error,
    },
    #[error("{path}: the disk is full (no space left on the file system mounted at {mount}); recording stopped, data up to the last snapshot is kept")]
    DiskFull { path: PathBuf, mount: String },
    #[error("{path} already exists; memleak never overwrites a recording: choose another -o FILE or remove it")]
    Exists { path: PathBuf },
    #[error("{path}: cannot create the recording (check that the folder exists and is writable)")]
    Create {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

impl StoreError {
    pub(crate) fn from_sqlite(path: &std::path::Path, e: rusqlite::Error) -> Self {
        use rusqlite::ErrorCode;
        let path = path.to_path_buf();
        // Values of the wrong type or range: the file is not what this
        // memleak wrote, whatever SQLite thinks of it.
        if matches!(
            e,
            rusqlite::Error::FromSqlConversionFailure(..)
                | rusqlite::Error::IntegralValueOutOfRange(..)
                | rusqlite::Error::InvalidColumnType(..)
        ) {
            return StoreError::Corrupt {
                path,
                why: one_line(&format!("unexpected value: {e}")),
            };
        }
        match e.sqlite_error_code() {
            Some(ErrorCode::NotADatabase) => StoreError::Foreign {
                path,
                why: "not an SQLite database".into(),
            },
            Some(ErrorCode::DiskFull) => {
                let mount = mount_point(&path).unwrap_or_else(|| "?".into());
                StoreError::DiskFull { path, mount }
            }
            Some(ErrorCode::DatabaseCorrupt) => StoreError::Corrupt {
                path,
                why: one_line(&e.to_string()),
            },
            // A plain SQL error (no such table or column, type mismatch in
            // a query memleak wrote) on a file that passed the format
            // checks: its schema was damaged.
            Some(ErrorCode::Unknown) | None => StoreError::Corrupt {
                path,
                why: one_line(&e.to_string()),
            },
            _ => StoreError::Sqlite { path, source: e },
        }
    }
}

/// Error text on one line: SQLite messages may quote multi-line SQL.
fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// The mount point of the file system holding `path` (longest matching
/// entry of /proc/self/mounts), to name the disk that filled up.
fn mount_point(path: &std::path::Path) -> Option<String> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => std::path::Path::new("."),
    };
    let dir = std::fs::canonicalize(dir).ok()?;
    let mounts = std::fs::read_to_string("/proc/self/mounts").ok()?;
    mounts
        .lines()
        .filter_map(|l| l.split_whitespace().nth(1))
        // /proc/mounts escapes spaces and friends as octal (\040).
        .map(|m| m.replace("\\040", " ").replace("\\011", "\t"))
        .filter(|m| dir.starts_with(m))
        .max_by_key(|m| m.len())
}

#[cfg(test)]
mod located_tests {
    use super::*;
    use crate::locate::{Frame, Located, LocatedStack, PhaseStacks};
    use crate::sample::ProcId;

    fn located() -> Located {
        let frame = |addr, f: Option<&str>| Frame {
            addr,
            function: f.map(String::from),
            location: f.map(|_| "leaky.c:26".to_string()),
        };
        let stack = |samples, top| LocatedStack {
            id: ProcId {
                pid: 42,
                start_ns: 7_000_000,
            },
            comm: "leaky".into(),
            samples,
            bytes: samples * 97 * 4096,
            // Distinct stacks have distinct addresses.
            frames: vec![
                frame(
                    if top == "leak_site" {
                        0x401136
                    } else {
                        0x401200
                    },
                    Some(top),
                ),
                frame(0x7fff_0000_1234, None),
            ],
        };
        Located {
            period: 97,
            page_size: 4096,
            lost: 3,
            stacks: vec![stack(5, "churn_site"), stack(50, "leak_site")],
            phases: Vec::new(),
        }
    }

    /// [`located`] split by test: `test_leak` touched 40 of leak_site's 50
    /// samples, `test_fine` 3 of churn_site's 5 and 2 of leak_site's; the
    /// rest was sampled outside every test.
    fn located_by_test() -> Located {
        let mut l = located();
        let part = |i: usize, samples: u64| LocatedStack {
            samples,
            bytes: samples * 97 * 4096,
            ..l.stacks[i].clone()
        };
        l.phases = vec![
            PhaseStacks {
                name: "t.py::test_leak".into(),
                stacks: vec![part(1, 40)],
            },
            PhaseStacks {
                name: "t.py::test_fine".into(),
                stacks: vec![part(0, 3), part(1, 2)],
            },
        ];
        crate::locate::rank_phases(&mut l.phases);
        l
    }

    #[test]
    fn per_test_stacks_round_trip_beside_the_whole_run() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("r.memleak");
        let mut w = Writer::create(&path).unwrap();
        let written = located_by_test();
        w.write_located(&written).unwrap();
        w.finish(1).unwrap();
        let got = Recording::open(&path).unwrap().located().unwrap();
        let mut want = written.clone();
        crate::locate::rank(&mut want.stacks);
        assert_eq!(got, want);
        // The whole run is unchanged by the split.
        assert_eq!(got.stacks[0].samples, 50);
        let leak = got.phase("t.py::test_leak").expect("test_leak's stacks");
        assert_eq!(leak.stacks.len(), 1);
        assert_eq!(leak.stacks[0].top_function(), Some("leak_site"));
        assert_eq!(leak.bytes(), 40 * 97 * 4096);
        let fine = got.phase("t.py::test_fine").unwrap();
        assert_eq!(fine.stacks[0].top_function(), Some("churn_site"));
        assert_eq!(fine.samples(), 5);
        // Most bytes first.
        assert_eq!(got.phases[0].name, "t.py::test_leak");

        // A file from before the split (no located_phases table) reads its
        // whole-run stacks, and no phases.
        let c = rusqlite::Connection::open(&path).unwrap();
        c.execute_batch("DROP TABLE located_phases;").unwrap();
        drop(c);
        let old = Recording::open(&path).unwrap().located().unwrap();
        assert_eq!(old.stacks, want.stacks);
        assert!(old.phases.is_empty());
    }

    #[test]
    fn located_stacks_round_trip_most_bytes_first() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("r.memleak");
        let mut w = Writer::create(&path).unwrap();
        w.write_located(&located()).unwrap();
        w.finish(1).unwrap();
        let got = Recording::open(&path).unwrap().located().unwrap();
        assert_eq!(got.period, 97);
        assert_eq!(got.lost, 3);
        assert_eq!(got.stacks.len(), 2);
        assert_eq!(got.stacks[0].top_function(), Some("leak_site"));
        assert_eq!(got.stacks[0].bytes, 50 * 97 * 4096);
        // Addresses above i64::MAX/2 and unnamed frames survive the trip.
        assert_eq!(got.stacks[0].frames[1].addr, 0x7fff_0000_1234);
        assert_eq!(got.stacks[0].frames[1].function, None);
        assert_eq!(got.stacks[1].top_function(), Some("churn_site"));
    }

    /// A version 1 file (before the located tables) still opens, and reads
    /// as "nothing located"; a version from the future is refused.
    #[test]
    fn version_1_recordings_still_open() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("v1.memleak");
        let w = Writer::create(&path).unwrap();
        w.finish(1).unwrap();
        {
            let c = rusqlite::Connection::open(&path).unwrap();
            c.execute_batch(
                "DROP TABLE located_phases; DROP TABLE located_frames; DROP TABLE located_stacks; \
                 UPDATE meta SET value = '1' WHERE key = 'format_version'; \
                 PRAGMA user_version = 1;",
            )
            .unwrap();
        }
        let rec = Recording::open(&path).expect("a version 1 recording opens");
        assert_eq!(rec.located().unwrap(), Located::default());

        let c = rusqlite::Connection::open(&path).unwrap();
        c.pragma_update(None, "user_version", FORMAT_VERSION + 1)
            .unwrap();
        drop(c);
        assert!(matches!(
            Recording::open(&path),
            Err(StoreError::Version { found, .. }) if found == FORMAT_VERSION + 1
        ));
    }
}

#[cfg(test)]
mod fold_tests {
    use super::*;
    use crate::sample::{Exit, Mem, Observation, ProcId, ProcMeta};

    fn obs(pid: u32, at_ns: u64, rss: u64, exit: bool) -> Observation {
        Observation {
            id: ProcId {
                pid,
                start_ns: 1_000,
            },
            at_ns,
            mem: Mem {
                vm: rss * 4,
                rss_anon: rss,
                rss_file: 4096,
                rss_shmem: 0,
                swap: 0,
            },
            meta: ProcMeta {
                ppid: 1,
                comm: "p".into(),
                cmdline: None,
            },
            exit: exit.then_some(Exit {
                at_ns,
                code: Some(0),
                stop_signal: None,
                oom_killed: false,
            }),
        }
    }

    /// The OOM mark is written with the exit and read back; files from
    /// before the column (and before `stop_signal`) read as "not seen".
    #[test]
    fn oom_killed_round_trips_and_is_false_in_older_files() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("r.memleak");
        let mut w = Writer::create(&path).unwrap();
        let mut killed = obs(1, 2_000, 8192, true);
        killed.exit = Some(Exit {
            at_ns: 2_000,
            code: Some(libc::SIGKILL),
            stop_signal: Some(15),
            oom_killed: true,
        });
        let o = [
            killed,
            obs(2, 2_000, 8192, true),
            obs(3, 2_000, 8192, false),
        ];
        w.write_snapshot(2_000, &o).unwrap();
        w.finish(3_000).unwrap();
        let marks = |path: &std::path::Path| -> Vec<(bool, Option<i32>)> {
            let rec = Recording::open(path).unwrap();
            let procs = rec.processes().unwrap();
            let mut streamed = Vec::new();
            rec.for_each_process(|s| {
                streamed.push((s.info.oom_killed, s.info.stop_signal));
                Ok::<_, StoreError>(())
            })
            .unwrap();
            let listed: Vec<_> = procs
                .iter()
                .map(|p| (p.oom_killed, p.stop_signal))
                .collect();
            assert_eq!(listed, streamed);
            listed
        };
        assert_eq!(
            marks(&path),
            [(true, Some(15)), (false, None), (false, None)]
        );
        let rec = Recording::open(&path).unwrap();
        let killed: Vec<u32> = rec.oom_killed().unwrap().iter().map(|p| p.id.pid).collect();
        assert_eq!(killed, [1]);
        drop(rec);
        let c = rusqlite::Connection::open(&path).unwrap();
        c.execute_batch("ALTER TABLE processes DROP COLUMN oom_killed;")
            .unwrap();
        drop(c);
        assert_eq!(
            marks(&path),
            [(false, Some(15)), (false, None), (false, None)]
        );
        assert!(Recording::open(&path)
            .unwrap()
            .oom_killed()
            .unwrap()
            .is_empty());
        let c = rusqlite::Connection::open(&path).unwrap();
        c.execute_batch("ALTER TABLE processes DROP COLUMN stop_signal;")
            .unwrap();
        drop(c);
        assert_eq!(marks(&path), [(false, None); 3]);
    }

    /// A long-lived process's samples are folded as the recorder goes; a
    /// reader of the live file (the watch refresher) sees every sample
    /// whether it is a row or in a chunk, and so does `samples_after`
    /// across a fold.
    #[test]
    fn live_file_reads_the_same_across_folds() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("r.memleak");
        let mut w = Writer::create(&path).unwrap();
        let n = chunk::CHUNK_SAMPLES as u64 * 2 + 17;
        let t = |i: u64| 10_000_000_000 + i * 1_000_000_000;
        for i in 0..n {
            let mut o = vec![obs(1, t(i), (100 + i) * 4096, false)];
            // A short-lived one that exits: folded at once.
            if i < 5 {
                o.push(obs(2, t(i), (7 + i) * 4096, i == 4));
            }
            w.write_snapshot(t(i), &o).unwrap();
        }
        let rec = Recording::open(&path).unwrap();
        let procs = rec.processes().unwrap();
        let raw = rec.raw_samples(&procs[0]).unwrap();
        assert_eq!(raw.len() as u64, n);
        assert!(raw
            .iter()
            .enumerate()
            .all(|(i, s)| s.0 == t(i as u64) && s.1.rss_anon == (100 + i as u64) * 4096));
        assert_eq!(rec.raw_samples(&procs[1]).unwrap().len(), 5);
        assert_eq!(rec.sample_count().unwrap(), n + 5);
        let rows: i64 = rusqlite::Connection::open(&path)
            .unwrap()
            .query_row("SELECT count(*) FROM samples", [], |r| r.get(0))
            .unwrap();
        assert_eq!(rows, 17, "only the samples since the last fold are rows");
        // Just before the first fold's end: later samples are in a chunk
        // and in the rows; `held` adds the value held at the cut.
        let cut = t(chunk::CHUNK_SAMPLES as u64 - 3);
        let after = rec.samples_after(cut, false).unwrap();
        assert_eq!(after.len() as u64, n - chunk::CHUNK_SAMPLES as u64 + 2);
        assert!(after.iter().all(|s| s.0 == procs[0].row && s.1 > cut));
        let held = rec.samples_after(cut, true).unwrap();
        assert_eq!(held.len(), after.len() + 2, "one held value per process");
        assert_eq!(held[0].1, cut);
        let streamed: Vec<_> = {
            let mut v = Vec::new();
            rec.for_each_process(|s| {
                v.push(s.raw);
                Ok::<_, StoreError>(())
            })
            .unwrap();
            v
        };
        assert_eq!(streamed[0], raw);
        drop(rec);
        w.finish(t(n)).unwrap();
        let rec = Recording::open(&path).unwrap();
        assert_eq!(rec.raw_samples(&procs[0]).unwrap(), raw);
    }
}
