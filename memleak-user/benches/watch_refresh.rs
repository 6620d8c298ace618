//! `cargo bench -p memleak-user --bench watch_refresh -- --file FILE
//! [--window SECONDS] [--refreshes N] [--every SECONDS]`: the cost of one
//! `memleak watch --metrics` refresh at the end of a long recording.
//!
//! FILE is a finished synthetic recording (`gen_recording`, e.g. 1,000
//! processes × 86,400 one-second snapshots, each process changing every
//! 30 s). It is copied to a temporary directory and reopened as if its
//! recorder were still running; then each round appends `--every` seconds
//! of snapshots (as the recorder would, in WAL mode) and times the
//! incremental read ([`memleak::source::follow::Follower`]), the analysis
//! and the rendering separately. The first read of the follower (once per
//! file) and the full re-read the refresh used to do are timed too.
//!
//! Last line: `RESULT {json}`, for `cargo xtask bench watch`.

use std::time::Instant;

use memleak::analyse::{Metric, Settings};
use memleak::export::metrics::{self, Options, Refresh};
use std::path::PathBuf;

use memleak::source::follow::Follower;
use memleak::source::range;
use rusqlite::{params, Connection};

const METRICS: [Metric; 3] = [Metric::Anon, Metric::Vm, Metric::Rss];

/// Times `watch --metrics` refreshes at the end of a long recording.
#[derive(clap::Parser)]
struct Args {
    /// The recording to append to (a copy is used).
    #[arg(long)]
    file: PathBuf,
    /// The analysis window, in seconds.
    #[arg(long, default_value_t = 900.0)]
    window: f64,
    #[arg(long, default_value_t = 10)]
    refreshes: usize,
    /// Seconds of new samples between two refreshes.
    #[arg(long, default_value_t = 5)]
    every: u64,
    /// Each process changes every N seconds.
    #[arg(long, default_value_t = 30)]
    change_every: u64,
    /// Passed by `cargo bench`.
    #[arg(long, hide = true)]
    bench: bool,
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(f64::NAN)
}

/// Appends `n` one-second snapshots: a tick each, and a changed sample for
/// every process whose turn it is (each changes every `change_every`).
fn append(conn: &mut Connection, n: u64, change_every: u64) -> u64 {
    let tx = conn.transaction().expect("transaction");
    let last: u64 = tx
        .query_row("SELECT max(t_ns) FROM ticks", [], |r| r.get(0))
        .expect("last tick");
    let procs: Vec<i64> = tx
        .prepare("SELECT id FROM processes ORDER BY id")
        .and_then(|mut s| s.query_map([], |r| r.get(0))?.collect())
        .expect("processes");
    for k in 1..=n {
        let t = last + k * 1_000_000_000;
        tx.execute("INSERT INTO ticks(t_ns) VALUES (?1)", params![t as i64])
            .expect("tick");
        let i = t / 1_000_000_000;
        for &p in &procs {
            if !(i + p as u64).is_multiple_of(change_every) {
                continue;
            }
            let rss = (50 + p as u64 + i % 97) << 20;
            tx.execute(
                "INSERT OR REPLACE INTO samples
                 (proc_id, t_ns, vm, rss_anon, rss_file, rss_shmem, swap)
                 VALUES (?1, ?2, ?3, ?4, ?5, 0, 0)",
                params![p, t as i64, (rss * 3) as i64, rss as i64, 4i64 << 20],
            )
            .expect("sample");
        }
    }
    tx.commit().expect("commit");
    last + n * 1_000_000_000
}

fn main() {
    let Args {
        file,
        window,
        refreshes: rounds,
        every,
        change_every,
        ..
    } = clap::Parser::parse();
    let tmp = tempfile::tempdir().expect("temporary directory");
    let path = tmp.path().join("memleak-20260101-000000.memleak");
    std::fs::copy(&file, &path).expect("copy the recording");
    let mut conn = Connection::open(&path).expect("open the copy");
    conn.pragma_update(None, "journal_mode", "WAL")
        .expect("wal");
    conn.execute("DELETE FROM meta WHERE key = 'end_ns'", [])
        .expect("reopen the recording");
    let (start_ns, start_unix): (u64, f64) = {
        let get = |k: &str| -> String {
            conn.query_row("SELECT value FROM meta WHERE key = ?1", [k], |r| r.get(0))
                .expect("meta")
        };
        (
            get("start_ns").parse().expect("start_ns"),
            get("start_unix").parse().expect("start_unix"),
        )
    };
    let now_of = |tick: u64| start_unix + (tick - start_ns) as f64 / 1e9 + 0.5;
    let settings = Settings::default();
    let mut follower = Follower::new(tmp.path(), 3, &METRICS);

    let tick = append(&mut conn, every, change_every);
    let t = Instant::now();
    follower.refresh(now_of(tick), window).expect("first read");
    let first_s = t.elapsed().as_secs_f64();
    let t = Instant::now();
    let files = range::list(tmp.path()).expect("list");
    let old = range::load(&files, Some(now_of(tick) - window), None, &METRICS).expect("load");
    let full_s = t.elapsed().as_secs_f64();
    drop(old);

    let (mut read, mut analyse, mut render, mut total) = (vec![], vec![], vec![], vec![]);
    let mut series = 0;
    for _ in 0..rounds {
        let tick = append(&mut conn, every, change_every);
        let t0 = Instant::now();
        let loaded = follower.refresh(now_of(tick), window).expect("refresh");
        let t1 = Instant::now();
        let a = range::analyse_loaded(&loaded, &settings);
        let t2 = Instant::now();
        let text = metrics::render(
            &loaded,
            &a,
            &Options::default(),
            Refresh::default(),
            &|_| String::new(),
        );
        let t3 = Instant::now();
        std::hint::black_box(text);
        series = loaded.series.len();
        read.push((t1 - t0).as_secs_f64());
        analyse.push((t2 - t1).as_secs_f64());
        render.push((t3 - t2).as_secs_f64());
        total.push((t3 - t0).as_secs_f64());
    }
    println!(
        "RESULT {{\"window_s\": {window}, \"every_s\": {every}, \"series\": {series}, \
         \"first_read_s\": {first_s:.4}, \"full_reread_s\": {full_s:.4}, \
         \"read_s\": {:.4}, \"analyse_s\": {:.4}, \"render_s\": {:.4}, \"refresh_s\": {:.4}, \
         \"rounds\": {rounds}}}",
        median(read),
        median(analyse),
        median(render),
        median(total)
    );
}
