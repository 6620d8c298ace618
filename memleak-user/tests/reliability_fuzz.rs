//! Property tests run by plain `cargo test`: random damage to a valid
//! recording file or config text never panics the reader, the analyser or
//! the report writers; every failure is a typed error (`StoreError`,
//! `ConfigError`) whose message is one line naming the file.
//!
//! The libFuzzer targets in `fuzz/` explore the same code paths longer
//! (`cargo +nightly fuzz run recording`, see the README).

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use memleak::analyse::{config, Settings};
use memleak::report::{self, Format};
use memleak::sample::{Exit, Mem, Observation, ProcId, ProcMeta};
use memleak::store::{Recording, StoreError, Writer};
use proptest::prelude::*;

/// A small recording with every table filled: processes that grow, exec,
/// exit; markers, notes, counters. `finish`ed, its samples are folded into
/// chunks; otherwise it is what a killed recorder leaves (checkpointed into
/// one file), with the live processes' samples still rows.
fn build_recording(path: &Path, finish: bool) {
    let mut w = Writer::create(path).unwrap();
    w.set_meta("host", "fuzz").unwrap();
    w.set_meta("sampler", "ebpf").unwrap();
    w.set_meta("interval_ns", "100000000").unwrap();
    w.set_meta("start_ns", "1000000000").unwrap();
    w.set_meta("mem_total", "8589934592").unwrap();
    w.set_meta("scope", "tree").unwrap();
    w.set_meta("command", "sh -c 'leak; ok'").unwrap();
    w.note(1_000_000_000, "a note").unwrap();
    w.add_markers(&[
        (1_100_000_000, "begin", "phase"),
        (3_000_000_000, "end", "phase"),
    ])
    .unwrap();
    for i in 0..40u64 {
        let t = 1_000_000_000 + i * 100_000_000;
        let mut obs = Vec::new();
        for p in 0..3u32 {
            let grow = if p == 0 { i * 1_048_576 } else { 0 };
            obs.push(Observation {
                id: ProcId {
                    pid: 100 + p,
                    start_ns: 900_000_000 + u64::from(p),
                },
                at_ns: t,
                mem: Mem {
                    vm: 10_000_000 + grow + u64::from(p) * 4096,
                    rss_anon: 1_000_000 + grow,
                    rss_file: 500_000,
                    rss_shmem: 0,
                    swap: 0,
                },
                meta: ProcMeta {
                    ppid: if p == 0 { 1 } else { 100 },
                    comm: if p == 2 && i > 20 { "exec'd" } else { "proc" }.into(),
                    cmdline: Some(format!("proc --n {p}")),
                },
                exit: (p == 1 && i == 30).then_some(Exit {
                    at_ns: t,
                    code: Some(0),
                    stop_signal: None,
                    oom_killed: false,
                }),
            });
        }
        w.write_snapshot(t, &obs).unwrap();
    }
    w.set_counters(&vec![("rss_events", 1234), ("procs_map_full", 0)])
        .unwrap();
    if finish {
        w.finish(5_000_000_000).unwrap();
    } else {
        drop(w);
        rusqlite::Connection::open(path)
            .unwrap()
            .pragma_update(None, "wal_checkpoint", "TRUNCATE")
            .unwrap();
    }
}

fn valid_recording() -> &'static [u8] {
    static BYTES: OnceLock<Vec<u8>> = OnceLock::new();
    BYTES.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("valid.memleak");
        build_recording(&p, true);
        std::fs::read(&p).unwrap()
    })
}

fn unfinished_recording() -> &'static [u8] {
    static BYTES: OnceLock<Vec<u8>> = OnceLock::new();
    BYTES.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("unfinished.memleak");
        build_recording(&p, false);
        std::fs::read(&p).unwrap()
    })
}

/// Everything `memleak info -p` and `memleak analyze` do with a recording.
fn read_everything(path: &Path) -> Result<(), StoreError> {
    let rec = Recording::open(path)?;
    rec.sample_count()?;
    rec.markers()?;
    for p in &rec.processes()? {
        rec.series(p)?;
        rec.names(p)?;
    }
    match memleak::load::analyse_recording(&rec, &Settings::default()) {
        Ok(a) => {
            for f in [Format::Table, Format::Json, Format::Junit, Format::Github] {
                let _ = report::render(&a, f);
            }
            Ok(())
        }
        Err(memleak::load::LoadError::Store(e)) => Err(e),
        Err(e) => panic!("default settings are valid, got {e}"),
    }
}

fn check_error_message(e: &StoreError, path: &Path) {
    let msg = e.to_string();
    assert!(!msg.contains('\n'), "one line: {msg:?}");
    assert!(
        msg.starts_with(&path.display().to_string()),
        "names the file: {msg}"
    );
}

fn scratch(dir: &Path, bytes: &[u8]) -> PathBuf {
    let p = dir.join("case.memleak");
    for ext in ["", "-wal", "-shm", "-journal"] {
        let _ = std::fs::remove_file(format!("{}{ext}", p.display()));
    }
    std::fs::write(&p, bytes).unwrap();
    p
}

/// Found by `odd_values_never_panic`: a negative time read as u64 became
/// huge, sorted out of order, and densifying the series sliced backwards.
#[test]
fn a_negative_time_is_a_damaged_recording_not_a_panic() {
    let dir = tempfile::tempdir().unwrap();
    for sql in [
        "UPDATE samples SET t_ns = -1 WHERE (proc_id, t_ns) IN
         (SELECT proc_id, t_ns FROM samples LIMIT 1 OFFSET 40)",
        "UPDATE ticks SET t_ns = -1 WHERE rowid IN (SELECT rowid FROM ticks LIMIT 1 OFFSET 5)",
        "UPDATE processes SET start_ns = -1 WHERE rowid IN (SELECT rowid FROM processes LIMIT 1)",
    ] {
        let p = scratch(dir.path(), unfinished_recording());
        let changed = rusqlite::Connection::open(&p)
            .unwrap()
            .execute(sql, [])
            .unwrap();
        assert_eq!(changed, 1, "{sql}");
        let e = read_everything(&p).expect_err(sql);
        assert!(matches!(e, StoreError::Corrupt { .. }), "{sql}: {e}");
        check_error_message(&e, &p);
    }
}

/// Folded samples (format 3 chunks) that were tampered with are damage,
/// named as such, whichever field was hit.
#[test]
fn damaged_sample_chunks_are_reported_as_damage() {
    let dir = tempfile::tempdir().unwrap();
    for sql in [
        "UPDATE sample_chunks SET data = x'01ff' WHERE proc_id = 1",
        "UPDATE sample_chunks SET data = x'07' || substr(data, 2) WHERE proc_id = 1",
        "UPDATE sample_chunks SET data = substr(data, 1, length(data) - 1) WHERE proc_id = 1",
        "UPDATE sample_chunks SET n = n + 1 WHERE proc_id = 1",
        "UPDATE sample_chunks SET n = -3 WHERE proc_id = 1",
        "UPDATE sample_chunks SET t_first = -1 WHERE proc_id = 1",
        "UPDATE sample_chunks SET data = 'text' WHERE proc_id = 1",
        "DROP TABLE sample_chunks",
    ] {
        let p = scratch(dir.path(), valid_recording());
        rusqlite::Connection::open(&p)
            .unwrap()
            .execute_batch(sql)
            .unwrap();
        let e = read_everything(&p).expect_err(sql);
        assert!(matches!(e, StoreError::Corrupt { .. }), "{sql}: {e}");
        check_error_message(&e, &p);
    }
}

/// What a killed recorder leaves (samples partly rows, partly chunks)
/// reads back the same series as the finished file.
#[test]
fn folded_and_unfolded_samples_read_the_same() {
    let dir = tempfile::tempdir().unwrap();
    let series = |bytes: &[u8], name: &str| {
        let p = dir.path().join(name);
        std::fs::write(&p, bytes).unwrap();
        let rec = Recording::open(&p).unwrap();
        let mut all = Vec::new();
        for proc in rec.processes().unwrap() {
            all.push(rec.raw_samples(&proc).unwrap());
        }
        (all, rec.sample_count().unwrap())
    };
    let (finished, n1) = series(valid_recording(), "finished.memleak");
    let (killed, n2) = series(unfinished_recording(), "killed.memleak");
    assert_eq!(finished, killed);
    assert_eq!(n1, n2);
    assert_eq!(
        finished[0].len(),
        40,
        "the growing process changed at every snapshot"
    );
    assert_eq!(n1, finished.iter().map(Vec::len).sum::<usize>() as u64);
}

#[test]
fn the_valid_recording_reads_back() {
    // The fuzzer's seed (fuzz/seeds/recording/valid.memleak) is this file:
    // MEMLEAK_WRITE_FUZZ_SEED=<path> writes it there.
    if let Some(out) = std::env::var_os("MEMLEAK_WRITE_FUZZ_SEED") {
        std::fs::write(out, valid_recording()).unwrap();
    }
    let dir = tempfile::tempdir().unwrap();
    let p = scratch(dir.path(), valid_recording());
    read_everything(&p).unwrap();
    let rec = Recording::open(&p).unwrap();
    assert_eq!(rec.processes().unwrap().len(), 3);
    assert_eq!(rec.ticks.len(), 40);
}

#[test]
fn out_of_range_values_are_reported_as_damage() {
    let dir = tempfile::tempdir().unwrap();
    let p = scratch(dir.path(), unfinished_recording());
    let c = rusqlite::Connection::open(&p).unwrap();
    c.execute("UPDATE samples SET rss_anon = -5 WHERE proc_id = 1", [])
        .unwrap();
    drop(c);
    let e = read_everything(&p).unwrap_err();
    assert!(matches!(e, StoreError::Corrupt { .. }), "{e}");
    check_error_message(&e, &p);
    let c = rusqlite::Connection::open(&p).unwrap();
    c.execute("UPDATE samples SET rss_anon = 1", []).unwrap();
    c.execute("UPDATE processes SET pid = 'x' WHERE id = 2", [])
        .unwrap();
    drop(c);
    let e = read_everything(&p).unwrap_err();
    assert!(matches!(e, StoreError::Corrupt { .. }), "{e}");
}

/// Random damage: overwritten bytes, a truncation, or both.
fn mutations() -> impl Strategy<Value = (Vec<(usize, u8)>, Option<usize>)> {
    let len = valid_recording().len();
    (
        prop::collection::vec((0..len, any::<u8>()), 1..24),
        prop::option::weighted(0.3, 0..len),
    )
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 384, ..ProptestConfig::default() })]

    #[test]
    fn damaged_recordings_never_panic((writes, cut) in mutations()) {
        let mut bytes = valid_recording().to_vec();
        for (at, b) in writes {
            bytes[at] = b;
        }
        if let Some(n) = cut {
            bytes.truncate(n);
        }
        let dir = tempfile::tempdir().unwrap();
        let p = scratch(dir.path(), &bytes);
        if let Err(e) = read_everything(&p) {
            check_error_message(&e, &p);
        }
    }

    /// Header damage hits the checks SQLite and memleak make first
    /// (magic, page size, application id, format version).
    #[test]
    fn damaged_headers_never_panic(at in 0usize..100, b in any::<u8>()) {
        let mut bytes = valid_recording().to_vec();
        bytes[at] = b;
        let dir = tempfile::tempdir().unwrap();
        let p = scratch(dir.path(), &bytes);
        if let Err(e) = read_everything(&p) {
            check_error_message(&e, &p);
        }
    }
}

const VALID_CONFIG: &str = r#"
[record]
interval = "100ms"

[analysis]
r2 = 0.8
horizon = "2h"
min_points = 30
warmup = 10
warmup_fraction = 0.2
gap_factor = 4
min_gap = "3s"
max_points = 2048
min_growth = "4MiB"
min_growth_fraction = 0.02
metrics = ["vm", "rss"]
"#;

fn check_config(text: &str) {
    let path = Path::new("fuzz.toml");
    match config::parse(text, path) {
        Ok(c) => {
            let mut s = Settings::default();
            match c.apply(&mut s, path) {
                Ok(()) => {
                    // Out-of-range values are the validator's to refuse.
                    let _ = s.validate();
                }
                Err(e) => assert!(e.to_string().starts_with("fuzz.toml: "), "{e}"),
            }
        }
        Err(e) => {
            assert!(
                matches!(e, config::ConfigError::Parse { .. }),
                "parse errors are Parse: {e}"
            );
            assert!(e.to_string().starts_with("fuzz.toml: "), "{e}");
        }
    }
}

#[test]
fn the_valid_config_applies() {
    let c = config::parse(VALID_CONFIG, Path::new("m.toml")).unwrap();
    let mut s = Settings::default();
    c.apply(&mut s, Path::new("m.toml")).unwrap();
    s.validate().unwrap();
    assert_eq!(s.r2, 0.8);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2048, ..ProptestConfig::default() })]

    #[test]
    fn mutated_config_text_never_panics(
        edits in prop::collection::vec((0usize..VALID_CONFIG.len(), any::<char>(), 0u8..3), 1..8)
    ) {
        let mut text: Vec<char> = VALID_CONFIG.chars().collect();
        for (at, c, op) in edits {
            let at = at.min(text.len().saturating_sub(1));
            match op {
                0 => text[at] = c,
                1 => text.insert(at, c),
                _ => { text.remove(at); }
            }
            if text.is_empty() {
                text.push(' ');
            }
        }
        let text: String = text.into_iter().collect();
        check_config(&text);
    }

    #[test]
    fn arbitrary_values_never_panic(
        key in prop::sample::select(vec![
            "r2", "horizon", "min_points", "warmup", "warmup_fraction", "gap_factor",
            "min_gap", "max_points", "min_growth", "min_growth_fraction", "metrics",
        ]),
        value in prop_oneof![
            any::<f64>().prop_map(|v| format!("{v:?}")),
            any::<i64>().prop_map(|v| v.to_string()),
            "[0-9a-zA-Z .µ-]{0,12}".prop_map(|s| format!("{s:?}")),
            Just("nan".to_string()), Just("inf".to_string()), Just("-inf".to_string()),
            Just("[\"rss\", 3]".to_string()), Just("{}".to_string()),
        ],
    ) {
        check_config(&format!("[analysis]\n{key} = {value}\n"));
    }
}

/// A value SQLite may hold in any column.
fn sql_value() -> impl Strategy<Value = rusqlite::types::Value> {
    use rusqlite::types::Value;
    prop_oneof![
        Just(Value::Null),
        prop_oneof![
            Just(0i64),
            Just(-1),
            Just(1),
            Just(i64::MAX),
            Just(i64::MIN),
            Just(1 << 60),
            any::<i64>()
        ]
        .prop_map(Value::Integer),
        prop_oneof![
            Just(f64::NAN),
            Just(f64::INFINITY),
            Just(-0.0),
            any::<f64>()
        ]
        .prop_map(Value::Real),
        "[ -~]{0,8}".prop_map(Value::Text),
        prop::collection::vec(any::<u8>(), 0..8).prop_map(Value::Blob),
    ]
}

const CELLS: &[(&str, &str)] = &[
    ("samples", "t_ns"),
    ("samples", "vm"),
    ("samples", "rss_anon"),
    ("samples", "proc_id"),
    ("ticks", "t_ns"),
    ("processes", "pid"),
    ("processes", "start_ns"),
    ("processes", "ppid"),
    ("processes", "comm"),
    ("processes", "cmdline"),
    ("processes", "exit_ns"),
    ("processes", "exit_code"),
    ("names", "t_ns"),
    ("names", "comm"),
    ("markers", "t_ns"),
    ("markers", "kind"),
    ("counters", "value"),
    ("notes", "text"),
];

const META_KEYS: &[&str] = &[
    "interval_ns",
    "start_ns",
    "end_ns",
    "start_unix",
    "mem_total",
    "swap_total",
    "cgroup_max",
    "rlimit_as",
    "exit_code",
    "page_size",
];

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    /// Well-formed SQLite with odd contents (NULLs, extremes, wrong types,
    /// any meta value): typed errors or a report, never a panic.
    #[test]
    fn odd_values_never_panic(
        cells in prop::collection::vec(
            (prop::sample::select(CELLS), 0i64..130, sql_value()), 0..4),
        metas in prop::collection::vec(
            (prop::sample::select(META_KEYS), prop_oneof![
                any::<i64>().prop_map(|v| v.to_string()),
                Just("0".to_string()), Just("-1".to_string()),
                Just("18446744073709551615".to_string()), Just("NaN".to_string()),
                Just("inf".to_string()), Just("1e308".to_string()),
                "[ -~]{0,6}",
            ]), 0..4),
    ) {
        let dir = tempfile::tempdir().unwrap();
        let p = scratch(dir.path(), valid_recording());
        {
            let c = rusqlite::Connection::open(&p).unwrap();
            for ((table, col), row, v) in &cells {
                // samples and names are WITHOUT ROWID tables.
                let key = match *table {
                    "samples" | "names" => "proc_id, t_ns",
                    _ => "rowid",
                };
                let r = c.execute(
                    &format!("UPDATE {table} SET {col} = ?1 WHERE ({key}) IN
                              (SELECT {key} FROM {table} LIMIT 1 OFFSET ?2)"),
                    rusqlite::params![v, row],
                );
                // Only the schema's own constraints (NOT NULL, keys) may refuse.
                // (an INTEGER PRIMARY KEY takes integers only).
                if let Err(e) = r {
                    prop_assert!(
                        matches!(
                            e.sqlite_error_code(),
                            Some(rusqlite::ErrorCode::ConstraintViolation
                                | rusqlite::ErrorCode::TypeMismatch)
                        ),
                        "{}", e
                    );
                }
            }
            for (k, v) in &metas {
                c.execute(
                    "INSERT INTO meta(key, value) VALUES (?1, ?2)
                     ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                    rusqlite::params![k, v],
                ).unwrap();
            }
        }
        if let Err(e) = read_everything(&p) {
            check_error_message(&e, &p);
        }
    }
}
