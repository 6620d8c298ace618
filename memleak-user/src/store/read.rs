//! Reading a recording back for analysis and reports.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use rusqlite::{params, Connection, OpenFlags};

use super::chunk;
use super::header::{self, Header};
use super::schema::{APPLICATION_ID, FORMAT_VERSION, MIN_FORMAT_VERSION};
use super::StoreError;
use crate::locate::{Frame, Located, LocatedStack, PhaseStacks};
use crate::sample::proclimits::{LimitKind, LimitRow};
use crate::sample::{Mem, ProcId};

/// What the run was: where, how, and the memory limits that applied.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct RunMeta {
    pub host: String,
    pub kernel: String,
    /// "ebpf" or "procfs".
    pub sampler: String,
    /// Why that sampler was chosen (auto mode).
    pub sampler_reason: Option<String>,
    pub interval_ns: u64,
    /// "all", "tree", "cgroup:/path".
    pub scope: String,
    /// Boot-time ns at the start of recording: sample times are relative to it.
    pub start_ns: u64,
    pub end_ns: Option<u64>,
    /// Wall clock (Unix seconds) at `start_ns`.
    pub start_unix: f64,
    /// MemTotal, bytes.
    pub mem_total: u64,
    /// SwapTotal, bytes.
    pub swap_total: u64,
    /// memory.max of the recorded cgroup (or of the command's cgroup), when set.
    pub cgroup_max: Option<u64>,
    /// RLIMIT_AS of the recorded command, when not unlimited.
    pub rlimit_as: Option<u64>,
    /// `vm.overcommit_memory` at the start (2: strict, address space is
    /// limited by CommitLimit).
    pub overcommit_memory: Option<u8>,
    /// CommitLimit of /proc/meminfo, bytes.
    pub commit_limit: Option<u64>,
    /// Which command made the recording: "run", "record", "watch"
    /// (older recordings: unknown).
    pub origin: Option<String>,
    pub command: Option<String>,
    pub exit_code: Option<i32>,
    /// Everything in the meta table, including keys this version does not know.
    pub raw: Vec<(String, String)>,
}

impl RunMeta {
    /// Recording duration in seconds (to the last tick when the end was not
    /// written, e.g. the recorder was killed).
    pub fn duration_s(&self, last_tick_ns: Option<u64>) -> f64 {
        let end = self.end_ns.or(last_tick_ns).unwrap_or(self.start_ns);
        end.saturating_sub(self.start_ns) as f64 / 1e9
    }
}

/// One process's identity and lifetime.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProcessInfo {
    pub row: i64,
    pub id: ProcId,
    pub ppid: u32,
    /// Last name (after the last exec).
    pub comm: String,
    pub cmdline: Option<String>,
    pub exit_ns: Option<u64>,
    pub exit_code: Option<i32>,
    /// The last stop request (SIGHUP, SIGINT, SIGQUIT, SIGTERM) delivered
    /// to it, when the sampler saw signals.
    pub stop_signal: Option<i32>,
    /// The kernel's OOM killer chose it as a victim. False when the sampler
    /// could not tell, and in files recorded before the column existed.
    pub oom_killed: bool,
}

/// One process's memory over time, densified onto the sampler's ticks: a
/// value is held from its sample until the next one, so `t` has a point at
/// every instant the sampler looked while the process lived.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ProcessSeries {
    /// Seconds since the start of the recording.
    pub t: Vec<f64>,
    pub mem: Vec<Mem>,
}

impl ProcessSeries {
    /// Virtual size at each sample.
    pub fn vm(&self) -> impl Iterator<Item = u64> + '_ {
        self.mem.iter().map(|m| m.vm)
    }
    /// Resident set size at each sample.
    pub fn rss(&self) -> impl Iterator<Item = u64> + '_ {
        self.mem.iter().map(|m| m.rss())
    }
}

/// An open recording. Only the header (meta, ticks, counters, notes) is
/// loaded; processes and their samples are read on demand, and
/// [`Recording::for_each_process`] streams them so that memory use does
/// not grow with the number of processes in the file.
pub struct Recording {
    conn: Connection,
    path: PathBuf,
    pub meta: RunMeta,
    /// How many processes the file holds.
    pub process_count: usize,
    /// The `processes` columns [`process_row`] reads (see
    /// [`Recording::process_columns`]), found once at open.
    process_columns: &'static str,
    /// Whether the file has the `limits` table (added later), found once.
    has_limits: bool,
    /// Whether the file has the located tables (format 2), found once.
    has_located: bool,
    /// Whether the file has `sample_chunks` (format 3), found once.
    has_chunks: bool,
    /// Whether it has `located_phases` (added later), found once.
    has_located_phases: bool,
    /// Every sampler tick, ns since boot, ascending.
    pub ticks: Vec<u64>,
    pub counters: Vec<(String, i64)>,
    pub notes: Vec<String>,
}

const REQUIRED_TABLES: [(&str, &[&str]); 5] = [
    ("meta", &["key", "value"]),
    (
        "processes",
        &[
            "id",
            "pid",
            "start_ns",
            "ppid",
            "comm",
            "cmdline",
            "exit_ns",
            "exit_code",
        ],
    ),
    (
        "samples",
        &[
            "proc_id",
            "t_ns",
            "vm",
            "rss_anon",
            "rss_file",
            "rss_shmem",
            "swap",
        ],
    ),
    ("ticks", &["t_ns"]),
    ("notes", &["t_ns", "text"]),
];

/// Checks that `path` is a non-empty regular file whose header is a memleak
/// recording's, saying precisely what is wrong otherwise.
fn check_file(path: &Path) -> Result<(), StoreError> {
    let p = || path.to_path_buf();
    let unreadable = |e: std::io::Error| StoreError::Unreadable {
        path: p(),
        cause: crate::files::explain(&e),
    };
    let meta = std::fs::metadata(path).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => StoreError::NotFound { path: p() },
        _ => unreadable(e),
    })?;
    if meta.is_dir() {
        return Err(StoreError::Foreign {
            path: p(),
            why: "it is a directory".into(),
        });
    }
    if !meta.is_file() {
        return Err(StoreError::NotRegular {
            path: p(),
            kind: crate::files::kind(meta.file_type()),
        });
    }
    if meta.len() == 0 {
        return Err(StoreError::Empty { path: p() });
    }
    match header::read(path, meta.len()).map_err(unreadable)? {
        Header::Memleak => Ok(()),
        Header::Truncated { len, expected } => Err(StoreError::Truncated {
            path: p(),
            len,
            expected,
        }),
        Header::MissingWal => Err(StoreError::MissingWal { path: p() }),
        Header::OtherSqlite => Err(StoreError::Foreign {
            path: p(),
            why: "an SQLite database, but not written by memleak".into(),
        }),
        Header::NotSqlite => Err(StoreError::Foreign {
            path: p(),
            why: "not an SQLite database".into(),
        }),
    }
}

fn wal_exists(path: &Path) -> bool {
    let mut wal = path.as_os_str().to_owned();
    wal.push("-wal");
    Path::new(&wal).exists()
}

/// A read-only connection. With a WAL beside the file (a recorder is
/// running, or was killed), SQLite reads the WAL through its shared-memory
/// index (`-shm`, created if missing: an index, not data) and, read-only,
/// never merges or deletes it: the crashed recording stays as it was, and
/// its last snapshots are still read. Without one the recording is
/// finished and opened `immutable`, so reading creates no `-wal`/`-shm`
/// files beside it either.
fn connect(path: &Path, wal: bool) -> rusqlite::Result<Connection> {
    let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    if wal {
        Connection::open_with_flags(path, flags)
    } else {
        Connection::open_with_flags(
            format!("file:{}?immutable=1", uri_path(path)),
            flags | OpenFlags::SQLITE_OPEN_URI,
        )
    }
}

/// `path` percent-encoded for an SQLite URI (`?`, `#` and `%` would
/// otherwise end or escape it).
fn uri_path(path: &Path) -> String {
    use std::os::unix::ffi::OsStrExt;
    let mut out = String::new();
    for &b in path.as_os_str().as_bytes() {
        if b.is_ascii_alphanumeric() || b"/-_.~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

impl Recording {
    /// Opens a recording read-only: reading never changes it, not even a
    /// crashed recorder's WAL (see `connect` in this module).
    pub fn open(path: &Path) -> Result<Recording, StoreError> {
        Recording::open_inner(path, true)
    }

    fn open_inner(path: &Path, ticks: bool) -> Result<Recording, StoreError> {
        let p = path.to_path_buf();
        check_file(path)?;
        let wal = wal_exists(path);
        let fail = |e: rusqlite::Error| {
            let cannot_index = matches!(
                e.sqlite_error_code(),
                Some(rusqlite::ErrorCode::CannotOpen | rusqlite::ErrorCode::ReadOnly)
            );
            if wal && cannot_index {
                StoreError::WalIndex {
                    path: path.to_path_buf(),
                }
            } else {
                StoreError::from_sqlite(path, e)
            }
        };
        let conn = connect(path, wal).map_err(fail)?;
        let app_id: i64 = conn
            .pragma_query_value(None, "application_id", |r| r.get(0))
            .map_err(fail)?;
        if app_id != APPLICATION_ID {
            return Err(StoreError::Foreign {
                path: p,
                why: "an SQLite database, but not written by memleak".into(),
            });
        }
        let version: i64 = conn
            .pragma_query_value(None, "user_version", |r| r.get(0))
            .map_err(fail)?;
        if !(MIN_FORMAT_VERSION..=FORMAT_VERSION).contains(&version) {
            return Err(StoreError::Version {
                path: p,
                found: version,
                supported: FORMAT_VERSION,
            });
        }
        for (table, columns) in REQUIRED_TABLES {
            if !table_exists(&conn, table).map_err(fail)? {
                return Err(StoreError::Corrupt {
                    path: p,
                    why: format!("table `{table}` is missing"),
                });
            }
            let have: Vec<String> = conn
                .prepare("SELECT name FROM pragma_table_info(?1)")
                .and_then(|mut st| st.query_map([table], |r| r.get(0))?.collect())
                .map_err(fail)?;
            if let Some(col) = columns.iter().find(|c| !have.iter().any(|h| h == *c)) {
                return Err(StoreError::Corrupt {
                    path: p,
                    why: format!("table `{table}` has no column `{col}`"),
                });
            }
        }
        let mut rec = Recording {
            conn,
            path: p,
            meta: RunMeta::default(),
            process_count: 0,
            process_columns: "",
            has_limits: false,
            has_located: false,
            has_chunks: false,
            has_located_phases: false,
            ticks: Vec::new(),
            counters: Vec::new(),
            notes: Vec::new(),
        };
        rec.load_meta()?;
        rec.process_columns = rec.process_columns()?;
        rec.has_limits = table_exists(&rec.conn, "limits").map_err(|e| rec.fail(e))?;
        rec.has_located = table_exists(&rec.conn, "located_stacks").map_err(|e| rec.fail(e))?
            && table_exists(&rec.conn, "located_frames").map_err(|e| rec.fail(e))?;
        rec.has_chunks = table_exists(&rec.conn, "sample_chunks").map_err(|e| rec.fail(e))?;
        if version >= 3 && !rec.has_chunks {
            // Its folded samples are gone: reading only the rows left
            // would show a series that is not what was recorded.
            return Err(StoreError::Corrupt {
                path: rec.path,
                why: "table `sample_chunks` is missing".into(),
            });
        }
        rec.has_located_phases = rec.has_located
            && table_exists(&rec.conn, "located_phases").map_err(|e| rec.fail(e))?;
        rec.count_processes()?;
        if ticks {
            rec.load_ticks()?;
        }
        Ok(rec)
    }

    /// The file this recording was opened from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn fail(&self, e: rusqlite::Error) -> StoreError {
        StoreError::from_sqlite(&self.path, e)
    }

    fn load_meta(&mut self) -> Result<(), StoreError> {
        let mut stmt = self
            .conn
            .prepare("SELECT key, value FROM meta ORDER BY key")
            .map_err(|e| self.fail(e))?;
        let raw: Vec<(String, String)> = stmt
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .and_then(|rows| rows.collect())
            .map_err(|e| self.fail(e))?;
        drop(stmt);
        let map: HashMap<&str, &str> = raw.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        let get = |k: &str| map.get(k).map(|s| s.to_string());
        let num = |k: &str| map.get(k).and_then(|s| s.parse::<u64>().ok());
        let meta = RunMeta {
            host: get("host").unwrap_or_default(),
            kernel: get("kernel").unwrap_or_default(),
            sampler: get("sampler").unwrap_or_default(),
            sampler_reason: get("sampler_reason"),
            interval_ns: num("interval_ns").unwrap_or(1_000_000_000),
            scope: get("scope").unwrap_or_default(),
            start_ns: num("start_ns").unwrap_or(0),
            end_ns: num("end_ns"),
            start_unix: map
                .get("start_unix")
                .and_then(|s| s.parse().ok())
                .unwrap_or(0.0),
            mem_total: num("mem_total").unwrap_or(0),
            swap_total: num("swap_total").unwrap_or(0),
            cgroup_max: num("cgroup_max"),
            rlimit_as: num("rlimit_as"),
            overcommit_memory: num("overcommit_memory").and_then(|v| u8::try_from(v).ok()),
            commit_limit: num("commit_limit"),
            origin: get("origin"),
            command: get("command"),
            exit_code: map.get("exit_code").and_then(|s| s.parse().ok()),
            raw: Vec::new(),
        };
        self.meta = RunMeta { raw, ..meta };

        let mut stmt = self
            .conn
            .prepare("SELECT name, value FROM counters ORDER BY name")
            .map_err(|e| self.fail(e))?;
        self.counters = stmt
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .and_then(|rows| rows.collect())
            .map_err(|e| StoreError::from_sqlite(&self.path, e))?;
        drop(stmt);
        let mut stmt = self
            .conn
            .prepare("SELECT text FROM notes ORDER BY t_ns")
            .map_err(|e| self.fail(e))?;
        self.notes = stmt
            .query_map([], |r| r.get(0))
            .and_then(|rows| rows.collect())
            .map_err(|e| StoreError::from_sqlite(&self.path, e))?;
        Ok(())
    }

    fn count_processes(&mut self) -> Result<(), StoreError> {
        let n: i64 = self
            .conn
            .query_row("SELECT count(*) FROM processes", [], |r| r.get(0))
            .map_err(|e| self.fail(e))?;
        self.process_count = n.max(0) as usize;
        Ok(())
    }

    /// The columns [`process_row`] reads, in its order. `stop_signal` and
    /// `oom_killed` were added later: older files read as "not seen".
    fn process_columns(&self) -> Result<&'static str, StoreError> {
        let has = |col: &str| -> Result<bool, StoreError> {
            Ok(self
                .conn
                .query_row(
                    "SELECT count(*) FROM pragma_table_info('processes') WHERE name = ?1",
                    [col],
                    |r| r.get::<_, i64>(0),
                )
                .map_err(|e| self.fail(e))?
                > 0)
        };
        Ok(match (has("stop_signal")?, has("oom_killed")?) {
            (true, true) => {
                "id, pid, start_ns, ppid, comm, cmdline, exit_ns, exit_code, stop_signal, oom_killed"
            }
            (true, false) => {
                "id, pid, start_ns, ppid, comm, cmdline, exit_ns, exit_code, stop_signal, NULL"
            }
            (false, true) => {
                "id, pid, start_ns, ppid, comm, cmdline, exit_ns, exit_code, NULL, oom_killed"
            }
            (false, false) => {
                "id, pid, start_ns, ppid, comm, cmdline, exit_ns, exit_code, NULL, NULL"
            }
        })
    }

    /// Every process, in the order they were first seen. Holds them all in
    /// memory: to visit a large recording use [`Recording::for_each_process`].
    pub fn processes(&self) -> Result<Vec<ProcessInfo>, StoreError> {
        self.select_processes("ORDER BY id", [])
    }

    /// The processes that had PID `pid` (a PID can be reused), oldest first.
    pub fn processes_with_pid(&self, pid: u32) -> Result<Vec<ProcessInfo>, StoreError> {
        self.select_processes("WHERE pid = ?1 ORDER BY start_ns", params![pid])
    }

    /// The processes the kernel's OOM killer killed, in the order they were
    /// first seen (none in files from before the `oom_killed` column).
    pub fn oom_killed(&self) -> Result<Vec<ProcessInfo>, StoreError> {
        if !self.process_columns.ends_with(", oom_killed") {
            return Ok(Vec::new());
        }
        self.select_processes("WHERE oom_killed = 1 ORDER BY id", [])
    }

    /// The rows of `processes` that `tail` (a WHERE and ORDER BY clause)
    /// selects, read with the columns this file has.
    fn select_processes(
        &self,
        tail: &str,
        params: impl rusqlite::Params,
    ) -> Result<Vec<ProcessInfo>, StoreError> {
        let sql = format!("SELECT {} FROM processes {tail}", self.process_columns);
        let mut stmt = self.conn.prepare_cached(&sql).map_err(|e| self.fail(e))?;
        let procs = stmt
            .query_map(params, process_row)
            .and_then(|rows| rows.collect())
            .map_err(|e| self.fail(e))?;
        Ok(procs)
    }

    /// Visits every process in the order they were first seen, with its
    /// change samples and its own limits rows, reading the file in one
    /// ordered pass: memory holds one process at a time, and there is no
    /// query per process. `each` may stop the walk with an error.
    pub fn for_each_process<E: From<StoreError>>(
        &self,
        mut each: impl FnMut(Streamed) -> Result<(), E>,
    ) -> Result<(), E> {
        let fail = |e| StoreError::from_sqlite(&self.path, e);
        let sql = format!("SELECT {} FROM processes ORDER BY id", self.process_columns);
        let mut procs_stmt = self.conn.prepare(&sql).map_err(fail)?;
        let mut samples_stmt = self
            .conn
            .prepare(
                "SELECT proc_id, t_ns, vm, rss_anon, rss_file, rss_shmem, swap
                 FROM samples ORDER BY proc_id, t_ns",
            )
            .map_err(fail)?;
        let mut chunks_stmt = self
            .conn
            .prepare(if self.has_chunks {
                "SELECT proc_id, t_first, n, data FROM sample_chunks ORDER BY proc_id, t_first"
            } else {
                "SELECT 0, 0, 0, x'' WHERE 0"
            })
            .map_err(fail)?;
        let has_limits = self.has_limits;
        let mut limits_stmt = self
            .conn
            .prepare(if has_limits {
                "SELECT proc_id, t_ns, kind, bytes FROM limits ORDER BY proc_id, t_ns, kind"
            } else {
                "SELECT 0, 0, '', NULL WHERE 0"
            })
            .map_err(fail)?;
        let mut procs = procs_stmt.query([]).map_err(fail)?;
        let mut samples = samples_stmt.query([]).map_err(fail)?;
        let mut chunks = chunks_stmt.query([]).map_err(fail)?;
        let mut limits = limits_stmt.query([]).map_err(fail)?;
        // The rows after the current process's, read one ahead.
        let mut next_sample = samples
            .next()
            .map_err(fail)?
            .map(sample_row)
            .transpose()
            .map_err(fail)?;
        let mut next_limit = limits
            .next()
            .map_err(fail)?
            .map(limits_table_row)
            .transpose()
            .map_err(fail)?;
        let mut chunk = chunks.next().map_err(fail)?;
        while let Some(row) = procs.next().map_err(fail)? {
            let info = process_row(row).map_err(fail)?;
            let mut raw = Vec::new();
            // Its chunks first (the older samples), then its rows. Rows of
            // processes the table does not list (a damaged file) are
            // passed over, as the per-process query would.
            while let Some(c) = chunk {
                let id = int_col(c, 0).map_err(fail)?;
                if id > info.row {
                    break;
                }
                if id == info.row {
                    self.decode_chunk(c, &mut raw)?;
                }
                chunk = chunks.next().map_err(fail)?;
            }
            let folded = raw.len();
            while let Some((id, t, m)) = next_sample {
                if id > info.row {
                    break;
                }
                if id == info.row {
                    raw.push((t, m));
                }
                next_sample = samples
                    .next()
                    .map_err(fail)?
                    .map(sample_row)
                    .transpose()
                    .map_err(fail)?;
            }
            if folded > 0 {
                time_order(&mut raw);
            }
            let mut own_limits = Vec::new();
            while let Some((id, t, ref k, b)) = next_limit {
                if id > info.row {
                    break;
                }
                if id == info.row {
                    own_limits.extend(limit_row(t, k, b));
                }
                next_limit = limits
                    .next()
                    .map_err(fail)?
                    .map(limits_table_row)
                    .transpose()
                    .map_err(fail)?;
            }
            each(Streamed {
                info,
                raw,
                limits: own_limits,
            })?;
        }
        Ok(())
    }

    /// Appends the samples of a `sample_chunks` row (`proc_id, t_first, n,
    /// data`) to `out`.
    fn decode_chunk(
        &self,
        r: &rusqlite::Row<'_>,
        out: &mut Vec<(u64, Mem)>,
    ) -> Result<(), StoreError> {
        let fail = |e| StoreError::from_sqlite(&self.path, e);
        let t_first = int_col(r, 1).map_err(fail)?;
        let n = int_col(r, 2).map_err(fail)?;
        let data = (|| Ok::<_, rusqlite::Error>(r.get_ref(3)?.as_blob()?))().map_err(fail)?;
        let corrupt = |why: &str| StoreError::Corrupt {
            path: self.path.clone(),
            why: format!("a sample chunk is damaged: {why}"),
        };
        let (Ok(t_first), Ok(n)) = (u64::try_from(t_first), usize::try_from(n)) else {
            return Err(corrupt("negative time or count"));
        };
        chunk::decode_into(data, t_first, n, out).map_err(|chunk::BadChunk(why)| corrupt(why))
    }

    /// The limits rows of one process, in time order.
    pub fn limits_of(&self, proc_row: i64) -> Result<Vec<LimitRow>, StoreError> {
        if !self.has_limits {
            return Ok(Vec::new());
        }
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT t_ns, kind, bytes FROM limits WHERE proc_id = ?1 ORDER BY t_ns, kind",
            )
            .map_err(|e| self.fail(e))?;
        let rows: Vec<(u64, String, Option<i64>)> = stmt
            .query_map(params![proc_row], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .and_then(|rows| rows.collect())
            .map_err(|e| self.fail(e))?;
        Ok(rows
            .into_iter()
            .filter_map(|(t, k, b)| limit_row(t, &k, b))
            .collect())
    }

    /// The code paths `--locate` sampled, most bytes first; empty for a
    /// recording made without it (or before format 2).
    pub fn located(&self) -> Result<Located, StoreError> {
        if !self.has_located {
            return Ok(Located::default());
        }
        let fail = |e| StoreError::from_sqlite(&self.path, e);
        let num = |k: &str| {
            self.meta
                .raw
                .iter()
                .find(|(key, _)| key == k)
                .and_then(|(_, v)| v.parse::<u64>().ok())
        };
        let mut stacks_stmt = self
            .conn
            .prepare(
                "SELECT id, pid, start_ns, comm, samples, bytes FROM located_stacks ORDER BY id",
            )
            .map_err(fail)?;
        let mut frames_stmt = self
            .conn
            .prepare(
                "SELECT stack_id, addr, function, location FROM located_frames \
                 ORDER BY stack_id, depth",
            )
            .map_err(fail)?;
        let mut by_id: Vec<(i64, LocatedStack)> = stacks_stmt
            .query_map([], |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    LocatedStack {
                        id: ProcId {
                            pid: r.get(1)?,
                            start_ns: r.get(2)?,
                        },
                        comm: r.get(3)?,
                        samples: r.get(4)?,
                        bytes: r.get(5)?,
                        frames: Vec::new(),
                    },
                ))
            })
            .and_then(|rows| rows.collect())
            .map_err(fail)?;
        let frames: Vec<(i64, Frame)> = frames_stmt
            .query_map([], |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    Frame {
                        addr: r.get::<_, i64>(1)? as u64,
                        function: r.get(2)?,
                        location: r.get(3)?,
                    },
                ))
            })
            .and_then(|rows| rows.collect())
            .map_err(fail)?;
        for (stack_id, frame) in frames {
            if let Ok(i) = by_id.binary_search_by_key(&stack_id, |(id, _)| *id) {
                by_id[i].1.frames.push(frame);
            }
        }
        let phases = if self.has_located_phases {
            let mut stmt = self
                .conn
                .prepare(
                    "SELECT stack_id, phase, samples, bytes FROM located_phases ORDER BY phase",
                )
                .map_err(fail)?;
            let rows: Vec<(i64, String, u64, u64)> = stmt
                .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
                .and_then(|rows| rows.collect())
                .map_err(fail)?;
            let mut phases: Vec<PhaseStacks> = Vec::new();
            for (stack_id, phase, samples, bytes) in rows {
                let Ok(i) = by_id.binary_search_by_key(&stack_id, |(id, _)| *id) else {
                    continue;
                };
                let stack = LocatedStack {
                    samples,
                    bytes,
                    ..by_id[i].1.clone()
                };
                match phases.last_mut() {
                    Some(p) if p.name == phase => p.stacks.push(stack),
                    _ => phases.push(PhaseStacks {
                        name: phase,
                        stacks: vec![stack],
                    }),
                }
            }
            crate::locate::rank_phases(&mut phases);
            phases
        } else {
            Vec::new()
        };
        let mut stacks: Vec<LocatedStack> = by_id.into_iter().map(|(_, s)| s).collect();
        crate::locate::rank(&mut stacks);
        Ok(Located {
            period: num("locate_period").unwrap_or(0),
            page_size: num("page_size").unwrap_or(4096),
            lost: num("locate_lost").unwrap_or(0),
            stacks,
            phases,
        })
    }

    fn load_ticks(&mut self) -> Result<(), StoreError> {
        let mut stmt = self
            .conn
            .prepare("SELECT t_ns FROM ticks ORDER BY t_ns")
            .map_err(|e| self.fail(e))?;
        let ticks = stmt
            .query_map([], |r| r.get::<_, u64>(0))
            .and_then(|rows| rows.collect())
            .map_err(|e| StoreError::from_sqlite(&self.path, e))?;
        drop(stmt);
        self.ticks = ticks;
        Ok(())
    }

    /// The raw samples of one process (only the changes), ns since boot.
    pub fn raw_samples(&self, proc: &ProcessInfo) -> Result<Vec<(u64, Mem)>, StoreError> {
        let fail = |e| StoreError::from_sqlite(&self.path, e);
        let mut raw = Vec::new();
        if self.has_chunks {
            let mut stmt = self
                .conn
                .prepare_cached(
                    "SELECT proc_id, t_first, n, data FROM sample_chunks
                     WHERE proc_id = ?1 ORDER BY t_first",
                )
                .map_err(fail)?;
            let mut rows = stmt.query(params![proc.row]).map_err(fail)?;
            while let Some(r) = rows.next().map_err(fail)? {
                self.decode_chunk(r, &mut raw)?;
            }
        }
        let folded = raw.len();
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT proc_id, t_ns, vm, rss_anon, rss_file, rss_shmem, swap
                 FROM samples WHERE proc_id = ?1 ORDER BY t_ns",
            )
            .map_err(fail)?;
        let rows = stmt
            .query_map(params![proc.row], sample_row)
            .and_then(|rows| rows.collect::<rusqlite::Result<Vec<_>>>())
            .map_err(fail)?;
        raw.extend(rows.into_iter().map(|(_, t, m)| (t, m)));
        if folded > 0 {
            time_order(&mut raw);
        }
        Ok(raw)
    }

    /// One process's series on the sampler's ticks (see [`ProcessSeries`]).
    pub fn series(&self, proc: &ProcessInfo) -> Result<ProcessSeries, StoreError> {
        let raw = self.raw_samples(proc)?;
        Ok(self.densify(proc, &raw))
    }

    /// The series of a process from its change samples (as
    /// [`Recording::for_each_process`] hands them out).
    pub fn densify(&self, proc: &ProcessInfo, raw: &[(u64, Mem)]) -> ProcessSeries {
        densify(raw, &self.ticks, proc.exit_ns, self.meta.start_ns)
    }

    /// Names a process had over time (exec changes them).
    pub fn names(&self, proc: &ProcessInfo) -> Result<Vec<(u64, String)>, StoreError> {
        let mut stmt = self
            .conn
            .prepare_cached("SELECT t_ns, comm FROM names WHERE proc_id = ?1 ORDER BY t_ns")
            .map_err(|e| self.fail(e))?;
        let rows = stmt
            .query_map(params![proc.row], |r| Ok((r.get::<_, u64>(0)?, r.get(1)?)))
            .and_then(|rows| rows.collect())
            .map_err(|e| StoreError::from_sqlite(&self.path, e))?;
        Ok(rows)
    }

    /// Phase markers, in time order: (seconds since start, kind, name).
    /// Recordings without the table (older writers) have none.
    pub fn markers(&self) -> Result<Vec<(f64, String, String)>, StoreError> {
        if !table_exists(&self.conn, "markers").map_err(|e| self.fail(e))? {
            return Ok(Vec::new());
        }
        let start = self.meta.start_ns;
        let mut stmt = self
            .conn
            .prepare_cached("SELECT t_ns, kind, name FROM markers ORDER BY t_ns, rowid")
            .map_err(|e| self.fail(e))?;
        let rows = stmt
            .query_map([], |r| {
                let t = r.get::<_, u64>(0)?;
                Ok((t.saturating_sub(start) as f64 / 1e9, r.get(1)?, r.get(2)?))
            })
            .and_then(|rows| rows.collect())
            .map_err(|e| StoreError::from_sqlite(&self.path, e))?;
        Ok(rows)
    }

    /// Opens a recording like [`Recording::open`] but leaves `ticks` empty:
    /// a follower of a growing file reads only the ticks it has not seen
    /// ([`Recording::ticks_after`]) instead of a day's worth every time.
    pub fn open_without_ticks(path: &Path) -> Result<Recording, StoreError> {
        Recording::open_inner(path, false)
    }

    /// Sampler ticks after `after_ns` (ns since boot), ascending.
    pub fn ticks_after(&self, after_ns: u64) -> Result<Vec<u64>, StoreError> {
        let mut stmt = self
            .conn
            .prepare_cached("SELECT t_ns FROM ticks WHERE t_ns > ?1 ORDER BY t_ns")
            .map_err(|e| self.fail(e))?;
        let rows = stmt
            .query_map(params![after_ns as i64], |r| r.get::<_, u64>(0))
            .and_then(|rows| rows.collect())
            .map_err(|e| StoreError::from_sqlite(&self.path, e))?;
        Ok(rows)
    }

    /// Change samples later than `after_ns` (ns since boot) of every
    /// process, as (process row, t_ns, memory) ordered by process then
    /// time. With `held`, each process's last sample at or before
    /// `after_ns` comes first too: the value it held then, which a reader
    /// starting mid-file needs.
    ///
    /// The primary key is (proc_id, t_ns), so a plain `WHERE t_ns > x`
    /// would scan the whole table; seeking per process keeps this
    /// proportional to the processes and the new rows. CROSS JOIN keeps
    /// processes the outer loop: with a plain JOIN SQLite scans `samples`
    /// (130 ms instead of 8 at the end of a day of 1,000 processes).
    pub fn samples_after(
        &self,
        after_ns: u64,
        held: bool,
    ) -> Result<Vec<(i64, u64, Mem)>, StoreError> {
        let fail = |e| StoreError::from_sqlite(&self.path, e);
        let after = after_ns.min(i64::MAX as u64) as i64;
        let sql = if held {
            "SELECT s.proc_id, s.t_ns, s.vm, s.rss_anon, s.rss_file, s.rss_shmem, s.swap
             FROM processes p CROSS JOIN samples s ON s.proc_id = p.id AND s.t_ns >= coalesce(
                 (SELECT max(x.t_ns) FROM samples x WHERE x.proc_id = p.id AND x.t_ns <= ?1), ?1)
             ORDER BY s.proc_id, s.t_ns"
        } else {
            "SELECT s.proc_id, s.t_ns, s.vm, s.rss_anon, s.rss_file, s.rss_shmem, s.swap
             FROM processes p CROSS JOIN samples s ON s.proc_id = p.id AND s.t_ns > ?1
             ORDER BY s.proc_id, s.t_ns"
        };
        let mut stmt = self.conn.prepare_cached(sql).map_err(fail)?;
        let mut out: Vec<(i64, u64, Mem)> = stmt
            .query_map(params![after], sample_row)
            .and_then(|rows| rows.collect())
            .map_err(fail)?;
        if !self.has_chunks {
            return Ok(out);
        }
        // Samples folded since the caller's last read are in chunks: each
        // process's chunk holding `after_ns` (the one starting last at or
        // before it) and the ones after. Chunks never overlap, so this
        // seeks per process like the rows query.
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT c.proc_id, c.t_first, c.n, c.data
                 FROM processes p CROSS JOIN sample_chunks c ON c.proc_id = p.id
                 AND c.t_first >= coalesce((SELECT max(x.t_first) FROM sample_chunks x
                     WHERE x.proc_id = p.id AND x.t_first <= ?1), ?1)
                 ORDER BY c.proc_id, c.t_first",
            )
            .map_err(fail)?;
        let mut rows = stmt.query(params![after]).map_err(fail)?;
        let mut folded = Vec::new();
        let mut buf = Vec::new();
        while let Some(r) = rows.next().map_err(fail)? {
            let id = int_col(r, 0).map_err(fail)?;
            buf.clear();
            self.decode_chunk(r, &mut buf)?;
            folded.extend(buf.iter().map(|&(t, m)| (id, t, m)));
        }
        if folded.is_empty() {
            return Ok(out);
        }
        out.extend(folded);
        out.sort_by_key(|&(id, t, _)| (id, t));
        out.dedup_by_key(|&mut (id, t, _)| (id, t));
        // Keep what the rows query would have: the samples after `after_ns`
        // and, with `held`, each process's last one at or before it.
        let after = after_ns;
        let mut kept = Vec::with_capacity(out.len());
        for (i, s) in out.iter().enumerate() {
            let next_same = out.get(i + 1).filter(|n| n.0 == s.0);
            let keep = s.1 > after || (held && next_same.is_none_or(|n| n.1 > after));
            if keep {
                kept.push(*s);
            }
        }
        Ok(kept)
    }

    /// Stored samples of all processes.
    pub fn sample_count(&self) -> Result<u64, StoreError> {
        let sql = if self.has_chunks {
            "SELECT (SELECT count(*) FROM samples) + (SELECT coalesce(sum(n), 0) FROM sample_chunks)"
        } else {
            "SELECT count(*) FROM samples"
        };
        self.conn
            .query_row(sql, [], |r| r.get::<_, i64>(0))
            .map(|n| n.max(0) as u64)
            .map_err(|e| self.fail(e))
    }
}

/// One process as [`Recording::for_each_process`] hands it out.
#[derive(Clone, Debug, PartialEq)]
pub struct Streamed {
    pub info: ProcessInfo,
    /// Change samples, ns since boot, in time order.
    pub raw: Vec<(u64, Mem)>,
    /// Its own limits rows, in time order (none when it exited before the
    /// recorder read them: see its ancestors').
    pub limits: Vec<LimitRow>,
}

fn process_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<ProcessInfo> {
    Ok(ProcessInfo {
        row: r.get(0)?,
        id: ProcId {
            pid: r.get(1)?,
            start_ns: r.get::<_, u64>(2)?,
        },
        ppid: r.get(3)?,
        comm: r.get(4)?,
        cmdline: r.get(5)?,
        exit_ns: r.get::<_, Option<u64>>(6)?,
        exit_code: r.get(7)?,
        stop_signal: r.get(8)?,
        oom_killed: r.get::<_, Option<bool>>(9)?.unwrap_or(false),
    })
}

/// An integer column, without `get`'s conversion machinery.
fn int_col(r: &rusqlite::Row<'_>, i: usize) -> rusqlite::Result<i64> {
    Ok(r.get_ref(i)?.as_i64()?)
}

/// (proc_id, t_ns, memory) of a `samples` row.
fn sample_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<(i64, u64, Mem)> {
    Ok((
        r.get_ref(0)?.as_i64()?,
        bytes_col(r, 1)?,
        Mem {
            vm: bytes_col(r, 2)?,
            rss_anon: bytes_col(r, 3)?,
            rss_file: bytes_col(r, 4)?,
            rss_shmem: bytes_col(r, 5)?,
            swap: bytes_col(r, 6)?,
        },
    ))
}

/// A `limits` row; kinds this version does not know are skipped.
fn limit_row(t: u64, kind: &str, bytes: Option<i64>) -> Option<LimitRow> {
    let kind = LimitKind::parse(kind)?;
    let bytes = bytes.and_then(|b| u64::try_from(b).ok()).filter(|b| *b > 0);
    Some((t, kind, bytes))
}

/// (proc_id, t_ns, kind, bytes) of a `limits` row.
fn limits_table_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<(i64, u64, String, Option<i64>)> {
    Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
}

/// Whether the file has a table of that name (tables added after the
/// first format are optional for readers).
fn table_exists(conn: &Connection, name: &str) -> rusqlite::Result<bool> {
    conn.query_row(
        "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = ?1",
        [name],
        |r| r.get::<_, i64>(0),
    )
    .map(|n| n > 0)
}

/// Largest memory figure a reader accepts (1 EiB): anything above is not a
/// real measurement, and bounding it keeps sums like `Mem::rss` from
/// overflowing on a damaged recording.
const MAX_PLAUSIBLE_BYTES: i64 = 1 << 60;

/// A memory column in bytes; a negative or absurd value means the file was
/// damaged (or not written by memleak), reported as such.
fn bytes_col(r: &rusqlite::Row<'_>, i: usize) -> rusqlite::Result<u64> {
    // get_ref skips the conversion machinery of get: this runs for every
    // column of millions of rows.
    let v = r.get_ref(i)?.as_i64()?;
    if (0..=MAX_PLAUSIBLE_BYTES).contains(&v) {
        Ok(v as u64)
    } else {
        Err(rusqlite::Error::IntegralValueOutOfRange(i, v))
    }
}

/// Puts a process's samples from chunks and rows in time order; for an
/// instant stored twice (a row dated before the last fold), the row wins.
fn time_order(raw: &mut Vec<(u64, Mem)>) {
    if raw.windows(2).all(|w| w[0].0 < w[1].0) {
        return;
    }
    // Stable, so of equal times the later-appended row comes last.
    raw.sort_by_key(|s| s.0);
    raw.reverse();
    raw.dedup_by_key(|s| s.0);
    raw.reverse();
}

/// Merges a process's change samples with the ticks it lived through,
/// holding each value until the next change.
fn densify(
    raw: &[(u64, Mem)],
    ticks: &[u64],
    exit_ns: Option<u64>,
    start_ns: u64,
) -> ProcessSeries {
    let mut out = ProcessSeries::default();
    let Some(&(first, _)) = raw.first() else {
        return out;
    };
    let last_sample = raw.last().map(|s| s.0).unwrap_or(first);
    let end = match exit_ns {
        Some(e) => e.max(last_sample),
        None => ticks
            .last()
            .copied()
            .unwrap_or(last_sample)
            .max(last_sample),
    };
    let lo = ticks.partition_point(|&t| t <= first);
    let hi = ticks.partition_point(|&t| t <= end);
    let ticks = &ticks[lo..hi];
    let (mut i, mut j) = (0, 0);
    let mut current = raw[0].1;
    let secs = |t: u64| t.saturating_sub(start_ns) as f64 / 1e9;
    while i < raw.len() || j < ticks.len() {
        let take_raw = j >= ticks.len() || (i < raw.len() && raw[i].0 <= ticks[j]);
        if take_raw {
            let (t, m) = raw[i];
            if j < ticks.len() && ticks[j] == t {
                j += 1;
            }
            current = m;
            out.t.push(secs(t));
            out.mem.push(m);
            i += 1;
        } else {
            out.t.push(secs(ticks[j]));
            out.mem.push(current);
            j += 1;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(vm: u64) -> Mem {
        Mem {
            vm,
            ..Mem::default()
        }
    }

    #[test]
    fn densify_holds_values_between_changes() {
        let raw = [(10, m(1)), (40, m(5))];
        let ticks = [0, 10, 20, 30, 40, 50, 60];
        let s = densify(&raw, &ticks, None, 0);
        let vm: Vec<u64> = s.vm().collect();
        assert_eq!(vm, vec![1, 1, 1, 5, 5, 5]);
        assert_eq!(s.t, vec![10e-9, 20e-9, 30e-9, 40e-9, 50e-9, 60e-9]);
    }

    #[test]
    fn densify_stops_at_exit_and_keeps_final_sample() {
        let raw = [(10, m(1)), (35, m(7))];
        let ticks = [10, 20, 30, 40, 50];
        let s = densify(&raw, &ticks, Some(35), 0);
        let vm: Vec<u64> = s.vm().collect();
        assert_eq!(vm, vec![1, 1, 1, 7]);
        assert_eq!(s.t.len(), 4);
    }

    #[test]
    fn densify_empty_is_empty() {
        assert!(densify(&[], &[1, 2, 3], None, 0).t.is_empty());
    }
}
