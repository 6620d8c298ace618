//! Appending to a recording while the sampler runs.

use std::collections::HashMap;
use std::fs::OpenOptions;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use rusqlite::{params, Connection};

use super::chunk::{self, CHUNK_SAMPLES};
use super::schema::{APPLICATION_ID, CREATE, FORMAT_VERSION};
use super::StoreError;
use crate::locate::Located;
use crate::sample::proclimits::ProcLimits;
use crate::sample::{Counters, Mem, Observation, ProcId};

struct Known {
    row: i64,
    last: Option<Mem>,
    comm: String,
    /// The stored command line. A sampler re-reads it after every exec,
    /// which may keep the name (a pyenv shim execs the real `python`), so
    /// any new one replaces it; `None` from a read made too early (between
    /// exec and argument setup) never erases one.
    cmdline: Option<String>,
    /// Snapshot number at which the process exited.
    exited: Option<u64>,
    /// Limits last stored for it (see [`Writer::write_snapshot_with_limits`]).
    limits: ProcLimits,
    /// Its sample rows not yet folded into a chunk (see [`super::chunk`]).
    unfolded: usize,
}

/// Writes snapshots into a recording, one transaction per snapshot.
pub struct Writer {
    conn: Connection,
    path: PathBuf,
    known: HashMap<ProcId, Known>,
    snapshots: u64,
    seen: usize,
}

impl Writer {
    /// Creates a new recording (mode 0600: command lines of other users'
    /// processes may be in it). Fails if the file exists and is not empty.
    pub fn create(path: &Path) -> Result<Writer, StoreError> {
        let fail = |e| StoreError::from_sqlite(path, e);
        // Create the file ourselves so the mode is 0600 from the first byte.
        OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(path)
            .map_err(|source| match source.kind() {
                std::io::ErrorKind::AlreadyExists => StoreError::Exists {
                    path: path.to_path_buf(),
                },
                _ => StoreError::Create {
                    path: path.to_path_buf(),
                    source,
                },
            })?;
        let conn = Connection::open(path).map_err(fail)?;
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(fail)?;
        // NORMAL in WAL mode: a commit survives a process crash (SIGKILL);
        // only a power loss may drop the last transactions.
        conn.pragma_update(None, "synchronous", "NORMAL")
            .map_err(fail)?;
        conn.pragma_update(None, "application_id", APPLICATION_ID)
            .map_err(fail)?;
        conn.pragma_update(None, "user_version", FORMAT_VERSION)
            .map_err(fail)?;
        conn.execute_batch(CREATE).map_err(fail)?;
        let mut w = Writer {
            conn,
            path: path.to_path_buf(),
            known: HashMap::new(),
            snapshots: 0,
            seen: 0,
        };
        w.set_meta("format_version", &FORMAT_VERSION.to_string())?;
        Ok(w)
    }

    /// The file being written.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn fail(&self, e: rusqlite::Error) -> StoreError {
        StoreError::from_sqlite(&self.path, e)
    }

    /// Sets one run-metadata key (in its own transaction).
    pub fn set_meta(&mut self, key: &str, value: &str) -> Result<(), StoreError> {
        self.set_metas(&[(key.to_string(), value.to_string())])
    }

    /// Sets several meta keys in one transaction.
    pub fn set_metas(&mut self, pairs: &[(String, String)]) -> Result<(), StoreError> {
        let path = self.path.clone();
        let fail = |e| StoreError::from_sqlite(&path, e);
        let tx = self.conn.transaction().map_err(fail)?;
        {
            let mut st = tx
                .prepare_cached(
                    "INSERT INTO meta(key, value) VALUES (?1, ?2)
                     ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                )
                .map_err(fail)?;
            for (k, v) in pairs {
                st.execute(params![k, v]).map_err(fail)?;
            }
        }
        tx.commit().map_err(fail)
    }

    /// Stores a note the user must see (a fallback, a loss) at `t_ns`.
    pub fn note(&mut self, t_ns: u64, text: &str) -> Result<(), StoreError> {
        self.conn
            .execute(
                "INSERT INTO notes(t_ns, text) VALUES (?1, ?2)",
                params![t_ns as i64, text],
            )
            .map_err(|e| self.fail(e))?;
        Ok(())
    }

    /// Stores phase markers (see `record::markers`).
    pub fn add_markers(&mut self, markers: &[(u64, &str, &str)]) -> Result<(), StoreError> {
        if markers.is_empty() {
            return Ok(());
        }
        let path = self.path.clone();
        let fail = |e| StoreError::from_sqlite(&path, e);
        let tx = self.conn.transaction().map_err(fail)?;
        {
            let mut ins = tx
                .prepare_cached("INSERT INTO markers(t_ns, kind, name) VALUES (?1, ?2, ?3)")
                .map_err(fail)?;
            for (t, kind, name) in markers {
                ins.execute(params![*t as i64, kind, name]).map_err(fail)?;
            }
        }
        tx.commit().map_err(fail)
    }

    /// Replaces the sampler's health counters.
    pub fn set_counters(&mut self, counters: &Counters) -> Result<(), StoreError> {
        let tx = self
            .conn
            .transaction()
            .map_err(|e| StoreError::from_sqlite(&self.path, e))?;
        for (name, value) in counters {
            tx.execute(
                "INSERT INTO counters(name, value) VALUES (?1, ?2)
                 ON CONFLICT(name) DO UPDATE SET value = excluded.value",
                params![name, *value as i64],
            )
            .map_err(|e| StoreError::from_sqlite(&self.path, e))?;
        }
        tx.commit()
            .map_err(|e| StoreError::from_sqlite(&self.path, e))
    }

    /// Number of distinct processes written so far.
    pub fn process_count(&self) -> usize {
        self.seen
    }

    /// Writes one snapshot taken at `t_ns` (ns since boot): a tick, plus a
    /// sample for each observation whose figures differ from the process's
    /// previous sample. Returns how many samples were written.
    pub fn write_snapshot(
        &mut self,
        t_ns: u64,
        observations: &[Observation],
    ) -> Result<usize, StoreError> {
        self.write_snapshot_with_limits(t_ns, observations, &[])
    }

    /// [`Self::write_snapshot`], also storing the limits read for some of
    /// its processes (see `sample::proclimits`) in the same transaction:
    /// only the kinds that changed since the process's last stored limits,
    /// a kind that went away as a NULL row.
    pub fn write_snapshot_with_limits(
        &mut self,
        t_ns: u64,
        observations: &[Observation],
        limits: &[(ProcId, ProcLimits)],
    ) -> Result<usize, StoreError> {
        let path = self.path.clone();
        let fail = |e| StoreError::from_sqlite(&path, e);
        let tx = self.conn.transaction().map_err(fail)?;
        // Processes first seen in this snapshot: they count (and stay known)
        // only once the transaction commits, so a snapshot lost to a full
        // disk is neither counted in the summary nor half-remembered.
        let mut new_ids: Vec<ProcId> = Vec::new();
        let result = (|| -> Result<usize, StoreError> {
            let mut written = 0;
            {
                let mut ins_tick = tx
                    .prepare_cached("INSERT OR IGNORE INTO ticks(t_ns) VALUES (?1)")
                    .map_err(fail)?;
                ins_tick.execute(params![t_ns as i64]).map_err(fail)?;
                let mut ins_proc = tx
                    .prepare_cached(
                        "INSERT INTO processes(pid, start_ns, ppid, comm, cmdline)
                         VALUES (?1, ?2, ?3, ?4, ?5)
                         ON CONFLICT(pid, start_ns) DO UPDATE SET comm = excluded.comm
                         RETURNING id",
                    )
                    .map_err(fail)?;
                let mut ins_sample = tx
                    .prepare_cached(
                        "INSERT OR REPLACE INTO samples
                         (proc_id, t_ns, vm, rss_anon, rss_file, rss_shmem, swap)
                         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                    )
                    .map_err(fail)?;
                let mut ins_name = tx
                    .prepare_cached(
                        "INSERT OR REPLACE INTO names(proc_id, t_ns, comm) VALUES (?1, ?2, ?3)",
                    )
                    .map_err(fail)?;
                // After exec both name and command line are the new program's.
                let mut upd_name = tx
                    .prepare_cached(
                        "UPDATE processes SET comm = ?2, cmdline = coalesce(?3, cmdline) WHERE id = ?1",
                    )
                    .map_err(fail)?;
                let mut upd_exit = tx
                    .prepare_cached(
                        "UPDATE processes SET exit_ns = ?2, exit_code = ?3, stop_signal = ?4, \
                         oom_killed = ?5 WHERE id = ?1",
                    )
                    .map_err(fail)?;

                for o in observations {
                    let known = match self.known.get_mut(&o.id) {
                        Some(k) => k,
                        None => {
                            let row: i64 = ins_proc
                                .query_row(
                                    params![
                                        o.id.pid,
                                        o.id.start_ns as i64,
                                        o.meta.ppid,
                                        o.meta.comm,
                                        o.meta.cmdline
                                    ],
                                    |r| r.get(0),
                                )
                                .map_err(fail)?;
                            ins_name
                                .execute(params![row, o.at_ns as i64, o.meta.comm])
                                .map_err(fail)?;
                            new_ids.push(o.id);
                            self.known.entry(o.id).or_insert(Known {
                                row,
                                last: None,
                                comm: o.meta.comm.clone(),
                                cmdline: o.meta.cmdline.clone(),
                                exited: None,
                                limits: ProcLimits::new(),
                                unfolded: 0,
                            })
                        }
                    };
                    if known.exited.is_some() {
                        continue;
                    }
                    if known.comm != o.meta.comm && !o.meta.comm.is_empty() {
                        ins_name
                            .execute(params![known.row, o.at_ns as i64, o.meta.comm])
                            .map_err(fail)?;
                        known.comm = o.meta.comm.clone();
                        upd_name
                            .execute(params![known.row, o.meta.comm, o.meta.cmdline])
                            .map_err(fail)?;
                        if o.meta.cmdline.is_some() {
                            known.cmdline.clone_from(&o.meta.cmdline);
                        }
                    } else if o.meta.cmdline.is_some() && known.cmdline != o.meta.cmdline {
                        upd_name
                            .execute(params![known.row, known.comm, o.meta.cmdline])
                            .map_err(fail)?;
                        known.cmdline.clone_from(&o.meta.cmdline);
                    }
                    if known.last != Some(o.mem) || o.exit.is_some() {
                        let m = &o.mem;
                        ins_sample
                            .execute(params![
                                known.row,
                                o.at_ns as i64,
                                m.vm as i64,
                                m.rss_anon as i64,
                                m.rss_file as i64,
                                m.rss_shmem as i64,
                                m.swap as i64
                            ])
                            .map_err(fail)?;
                        known.last = Some(o.mem);
                        known.unfolded += 1;
                        written += 1;
                    }
                    if let Some(exit) = o.exit {
                        upd_exit
                            .execute(params![
                                known.row,
                                exit.at_ns as i64,
                                exit.code,
                                exit.stop_signal,
                                exit.oom_killed
                            ])
                            .map_err(fail)?;
                        known.exited = Some(self.snapshots);
                    }
                    // In the snapshot's transaction: a crash leaves either
                    // the rows or the chunk, never both or neither.
                    if known.unfolded >= CHUNK_SAMPLES || (o.exit.is_some() && known.unfolded > 0) {
                        fold(&tx, known.row).map_err(fail)?;
                        known.unfolded = 0;
                    }
                }
            }
            {
                let mut ins_limit = tx
                    .prepare_cached(
                        "INSERT OR REPLACE INTO limits(proc_id, t_ns, kind, bytes) \
                         VALUES (?1, ?2, ?3, ?4)",
                    )
                    .map_err(fail)?;
                for (id, new) in limits {
                    // Processes not written (yet) have no row to attach to.
                    let Some(known) = self.known.get_mut(id) else {
                        continue;
                    };
                    for (k, v) in new {
                        if !known.limits.contains(&(*k, *v)) {
                            ins_limit
                                .execute(params![known.row, t_ns as i64, k.name(), *v as i64])
                                .map_err(fail)?;
                        }
                    }
                    for (k, _) in &known.limits {
                        if !new.iter().any(|(k2, _)| k2 == k) {
                            ins_limit
                                .execute(params![known.row, t_ns as i64, k.name(), None::<i64>])
                                .map_err(fail)?;
                        }
                    }
                    known.limits.clone_from(new);
                }
            }
            Ok(written)
        })()
        .and_then(|written| tx.commit().map_err(fail).map(|()| written));
        let written = match result {
            Ok(w) => w,
            Err(e) => {
                for id in &new_ids {
                    self.known.remove(id);
                }
                return Err(e);
            }
        };
        self.seen += new_ids.len();
        // Exited processes never come back (a reused PID has a new start
        // time), so forget them to keep the recorder's memory bounded; a
        // few snapshots of grace absorb late duplicates of the exit record.
        self.snapshots += 1;
        let now = self.snapshots;
        self.known
            .retain(|_, k| k.exited.is_none_or(|at| now - at < 8));
        Ok(written)
    }

    /// Stores what `--locate` found (see [`crate::locate`]), in one
    /// transaction, with the sampling settings needed to read it.
    pub fn write_located(&mut self, located: &Located) -> Result<(), StoreError> {
        self.set_metas(&[
            ("locate_period".to_string(), located.period.to_string()),
            ("locate_lost".to_string(), located.lost.to_string()),
        ])?;
        let path = self.path.clone();
        let fail = |e| StoreError::from_sqlite(&path, e);
        let tx = self.conn.transaction().map_err(fail)?;
        {
            let mut ins_stack = tx
                .prepare_cached(
                    "INSERT INTO located_stacks(pid, start_ns, comm, samples, bytes) \
                     VALUES (?1, ?2, ?3, ?4, ?5) RETURNING id",
                )
                .map_err(fail)?;
            let mut ins_frame = tx
                .prepare_cached(
                    "INSERT INTO located_frames(stack_id, depth, addr, function, location) \
                     VALUES (?1, ?2, ?3, ?4, ?5)",
                )
                .map_err(fail)?;
            let mut ins_phase = tx
                .prepare_cached(
                    "INSERT INTO located_phases(stack_id, phase, samples, bytes) \
                     VALUES (?1, ?2, ?3, ?4) \
                     ON CONFLICT(stack_id, phase) DO UPDATE SET \
                     samples = samples + excluded.samples, bytes = bytes + excluded.bytes",
                )
                .map_err(fail)?;
            // Row id of each stored (process, stack), for its phase rows.
            let mut ids: HashMap<(ProcId, Vec<u64>), i64> = HashMap::new();
            for s in &located.stacks {
                let id: i64 = ins_stack
                    .query_row(
                        params![
                            s.id.pid,
                            s.id.start_ns as i64,
                            s.comm,
                            s.samples as i64,
                            s.bytes as i64
                        ],
                        |r| r.get(0),
                    )
                    .map_err(fail)?;
                for (depth, f) in s.frames.iter().enumerate() {
                    ins_frame
                        .execute(params![
                            id,
                            depth as i64,
                            f.addr as i64,
                            f.function,
                            f.location
                        ])
                        .map_err(fail)?;
                }
                ids.insert((s.id, s.frames.iter().map(|f| f.addr).collect()), id);
            }
            for p in &located.phases {
                for s in &p.stacks {
                    let key = (s.id, s.frames.iter().map(|f| f.addr).collect());
                    // A phase's stacks are part of the whole run's.
                    let Some(id) = ids.get(&key) else { continue };
                    ins_phase
                        .execute(params![id, p.name, s.samples as i64, s.bytes as i64])
                        .map_err(fail)?;
                }
            }
        }
        tx.commit().map_err(fail)
    }

    /// Records the end of the run and checkpoints the WAL into the main file
    /// so the recording is a single self-contained file.
    pub fn finish(mut self, end_ns: u64) -> Result<(), StoreError> {
        // Fold what is left, so a finished file reads at chunk speed.
        let path = self.path.clone();
        let fail = |e| StoreError::from_sqlite(&path, e);
        let tx = self.conn.transaction().map_err(fail)?;
        for k in self.known.values_mut().filter(|k| k.unfolded > 0) {
            fold(&tx, k.row).map_err(fail)?;
            k.unfolded = 0;
        }
        tx.commit().map_err(fail)?;
        self.set_meta("end_ns", &end_ns.to_string())?;
        self.conn
            .pragma_update(None, "wal_checkpoint", "TRUNCATE")
            .map_err(|e| StoreError::from_sqlite(&self.path, e))?;
        Ok(())
    }
}

/// Moves a process's sample rows into one chunk (see [`super::chunk`]).
/// Runs inside the caller's transaction.
fn fold(tx: &rusqlite::Transaction<'_>, row: i64) -> rusqlite::Result<()> {
    let samples: Vec<(u64, Mem)> = tx
        .prepare_cached(
            "SELECT t_ns, vm, rss_anon, rss_file, rss_shmem, swap
             FROM samples WHERE proc_id = ?1 ORDER BY t_ns",
        )?
        .query_map([row], |r| {
            let b = |i| r.get::<_, i64>(i).map(|v| v as u64);
            Ok((
                b(0)?,
                Mem {
                    vm: b(1)?,
                    rss_anon: b(2)?,
                    rss_file: b(3)?,
                    rss_shmem: b(4)?,
                    swap: b(5)?,
                },
            ))
        })?
        .collect::<rusqlite::Result<_>>()?;
    let (Some(first), Some(last)) = (samples.first(), samples.last()) else {
        return Ok(());
    };
    // A chunk already starting among these instants (a late exit record
    // dated before the last fold) would collide: the rows stay rows.
    let collides: i64 = tx
        .prepare_cached(
            "SELECT count(*) FROM sample_chunks WHERE proc_id = ?1 AND t_first BETWEEN ?2 AND ?3",
        )?
        .query_row(params![row, first.0 as i64, last.0 as i64], |r| r.get(0))?;
    if collides > 0 {
        return Ok(());
    }
    let mut ins = tx.prepare_cached(
        "INSERT INTO sample_chunks(proc_id, t_first, t_last, n, data)
         VALUES (?1, ?2, ?3, ?4, ?5)",
    )?;
    let mut at = 0;
    for (n, blob) in chunk::encode(&samples) {
        let part = &samples[at..at + n];
        at += n;
        ins.execute(params![
            row,
            part[0].0 as i64,
            part[n - 1].0 as i64,
            n as i64,
            blob
        ])?;
    }
    tx.prepare_cached("DELETE FROM samples WHERE proc_id = ?1")?
        .execute([row])?;
    Ok(())
}
