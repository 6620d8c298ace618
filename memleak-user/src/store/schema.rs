//! Table layout of a recording. Bump [`FORMAT_VERSION`] on any incompatible
//! change; readers refuse versions they do not know.

/// Stored as `PRAGMA user_version` and in `meta.format_version`.
///
/// 2: the `located_stacks` and `located_frames` tables (`--locate`).
/// 3: `sample_chunks`: samples folded into compact blobs (see
///    `store::chunk`). An older reader would see only the rows not yet
///    folded, so the bump makes it refuse the file instead.
pub const FORMAT_VERSION: i64 = 3;

/// The oldest version this reader still opens: version 1 files lack only
/// the located tables, which read as "nothing located"; versions 1 and 2
/// lack `sample_chunks`, and hold every sample as a row.
pub const MIN_FORMAT_VERSION: i64 = 1;

/// `PRAGMA application_id`: marks the file as a memleak recording ("MLRK").
pub const APPLICATION_ID: i64 = 0x4D4C_524B;

/// The schema of a new recording (see the README's Recording format).
pub const CREATE: &str = r#"
CREATE TABLE IF NOT EXISTS meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
-- One row per process identity (pid + start time): a reused PID is a new row.
CREATE TABLE IF NOT EXISTS processes (
    id         INTEGER PRIMARY KEY,
    pid        INTEGER NOT NULL,
    start_ns   INTEGER NOT NULL,  -- ns since boot
    ppid       INTEGER NOT NULL,
    comm       TEXT    NOT NULL,
    cmdline    TEXT,
    exit_ns    INTEGER,           -- ns since boot, NULL while alive / unknown
    exit_code  INTEGER,           -- raw wait status
    stop_signal INTEGER,          -- last SIGHUP/INT/QUIT/TERM delivered (added later; may be absent)
    oom_killed INTEGER,           -- 1 if the kernel's OOM killer chose it (added later; may be absent)
    UNIQUE (pid, start_ns)
);
-- A sample is written when a process's figures changed since its previous
-- sample; between samples the value is held (see ticks).
CREATE TABLE IF NOT EXISTS samples (
    proc_id    INTEGER NOT NULL REFERENCES processes(id),
    t_ns       INTEGER NOT NULL,  -- ns since boot
    vm         INTEGER NOT NULL,  -- bytes
    rss_anon   INTEGER NOT NULL,
    rss_file   INTEGER NOT NULL,
    rss_shmem  INTEGER NOT NULL,
    swap       INTEGER NOT NULL,
    PRIMARY KEY (proc_id, t_ns)
) WITHOUT ROWID;
-- Samples folded by the writer (format 3): runs of one process's samples,
-- oldest first, that no longer have rows in `samples`. A process's series
-- is its chunks followed by its rows. `data` is `store::chunk`'s encoding.
CREATE TABLE IF NOT EXISTS sample_chunks (
    proc_id  INTEGER NOT NULL REFERENCES processes(id),
    t_first  INTEGER NOT NULL,  -- ns since boot, first sample
    t_last   INTEGER NOT NULL,  -- ns since boot, last sample
    n        INTEGER NOT NULL,  -- samples in data
    data     BLOB    NOT NULL,
    PRIMARY KEY (proc_id, t_first)
) WITHOUT ROWID;
-- Every instant the sampler looked (ns since boot).
CREATE TABLE IF NOT EXISTS ticks (
    t_ns INTEGER PRIMARY KEY
);
-- Name changes (exec): comm from t_ns on.
CREATE TABLE IF NOT EXISTS names (
    proc_id INTEGER NOT NULL REFERENCES processes(id),
    t_ns    INTEGER NOT NULL,
    comm    TEXT    NOT NULL,
    PRIMARY KEY (proc_id, t_ns)
) WITHOUT ROWID;
-- Sampler health counters (cumulative), written at each heartbeat and at end.
CREATE TABLE IF NOT EXISTS counters (
    name  TEXT PRIMARY KEY,
    value INTEGER NOT NULL
);
-- Phase markers sent by the command (see record::markers), ns since boot.
CREATE TABLE IF NOT EXISTS markers (
    t_ns INTEGER NOT NULL,
    kind TEXT    NOT NULL,  -- begin | end | mark
    name TEXT    NOT NULL
);
-- Memory limits that apply to a process (see sample::proclimits), one row
-- per kind whenever it is first seen or changes; `bytes` NULL: removed.
-- Added without a format bump: older readers ignore the table, and this
-- reader treats a file without it as "no per-process limits recorded".
CREATE TABLE IF NOT EXISTS limits (
    proc_id INTEGER NOT NULL REFERENCES processes(id),
    t_ns    INTEGER NOT NULL,
    kind    TEXT    NOT NULL,
    bytes   INTEGER,
    PRIMARY KEY (proc_id, kind, t_ns)
) WITHOUT ROWID;
-- Code paths where a process first touched new memory (`--locate`, format
-- 2): one row per sampled (process, user stack), written at the end.
-- bytes = samples x meta.locate_period x meta.page_size (an estimate).
CREATE TABLE IF NOT EXISTS located_stacks (
    id       INTEGER PRIMARY KEY,
    pid      INTEGER NOT NULL,
    start_ns INTEGER NOT NULL,  -- ns since boot, clock-tick precision
    comm     TEXT    NOT NULL,
    samples  INTEGER NOT NULL,
    bytes    INTEGER NOT NULL
);
-- Its frames, innermost first (depth 0), named while the process lived.
CREATE TABLE IF NOT EXISTS located_frames (
    stack_id INTEGER NOT NULL REFERENCES located_stacks(id),
    depth    INTEGER NOT NULL,
    addr     INTEGER NOT NULL,
    function TEXT,              -- NULL: could not be named
    location TEXT,              -- file:line, or the module's file name
    PRIMARY KEY (stack_id, depth)
) WITHOUT ROWID;
-- The part of each located stack sampled while a marked phase (test) was
-- open on the sampling process (see locate::Charges): one row per (stack,
-- phase) with samples in it; what was sampled outside every phase is the
-- stack's total minus these. `phase` is the marker's name without its
-- `pid=N` prefix, as test verdicts name tests. Added without a format bump,
-- like `limits`: older readers ignore the table and still read whole-run
-- totals from located_stacks; this reader treats a file without it as "no
-- per-phase split recorded".
CREATE TABLE IF NOT EXISTS located_phases (
    stack_id INTEGER NOT NULL REFERENCES located_stacks(id),
    phase    TEXT    NOT NULL,
    samples  INTEGER NOT NULL,
    bytes    INTEGER NOT NULL,
    PRIMARY KEY (stack_id, phase)
) WITHOUT ROWID;
-- Things the user must know about the recording (fallbacks, losses).
CREATE TABLE IF NOT EXISTS notes (
    t_ns INTEGER NOT NULL,
    text TEXT NOT NULL
);
"#;
