//! `cargo bench -p memleak-user --bench gen_recording -- --out FILE
//! [--procs N] [--samples S] [--change-every K]`: writes a synthetic
//! recording through the real store `Writer` (one snapshot per second, every
//! process changing at every snapshot: the worst case for size and for the
//! reader; with `--change-every K` each process changes every K snapshots,
//! staggered, like a day of `memleak watch` where most processes are
//! mostly idle), so that
//! `cargo xtask bench analyse` can time `memleak analyze` as a whole process
//! on it. Does nothing when FILE exists already (xtask caches it under
//! `target/`). Prints `RESULT {json}` with the file size and write time.

use std::path::PathBuf;
use std::time::Instant;

use memleak::sample::{Mem, Observation, ProcId, ProcMeta};
use memleak::store::Writer;

const MIB: f64 = 1024.0 * 1024.0;
const PAGE: u64 = 4096;

/// Writes a synthetic recording (once: an existing `--out` is kept).
#[derive(clap::Parser)]
struct Args {
    /// The recording to write.
    #[arg(long)]
    out: PathBuf,
    #[arg(long, default_value_t = 1000)]
    procs: usize,
    #[arg(long, default_value_t = 3600)]
    samples: usize,
    /// Each process changes every N samples (1: every sample).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..))]
    change_every: u64,
    /// Passed by `cargo bench`.
    #[arg(long, hide = true)]
    bench: bool,
}

/// Same shapes as the `analyse` bench: leaks, flat noise, sawtooth, steps.
fn rss_at(p: usize, i: usize, noise: f64) -> f64 {
    let t = i as f64;
    let base = 50.0 * MIB + p as f64 * MIB;
    match p % 4 {
        0 => base + 0.5 * MIB * t + 64.0 * 1024.0 * noise,
        1 => base + 256.0 * 1024.0 * noise,
        2 => base + 20.0 * MIB * ((t % 120.0) / 120.0) + 1024.0 * t,
        _ => base + if t > 1800.0 { 30.0 * MIB } else { 0.0 },
    }
}

fn main() {
    let Args {
        out,
        procs,
        samples,
        change_every,
        ..
    } = clap::Parser::parse();
    let every = change_every as usize;
    // A cached file of an older format would measure the old reader.
    let cached_version = rusqlite::Connection::open(&out)
        .and_then(|c| c.pragma_query_value(None, "user_version", |r| r.get::<_, i64>(0)))
        .ok();
    if out.exists() && cached_version == Some(memleak::store::FORMAT_VERSION) {
        println!("RESULT {{\"cached\": true}}");
        return;
    }
    let _ = std::fs::remove_file(&out);
    let tmp = out.with_extension("partial");
    let _ = std::fs::remove_file(&tmp);
    let started = Instant::now();
    let mut w = Writer::create(&tmp).expect("create recording");
    let start_ns: u64 = 1_000_000_000_000;
    for (k, v) in [
        ("host", "bench"),
        ("kernel", "synthetic"),
        ("sampler", "ebpf"),
        (
            "sampler_reason",
            "synthetic recording (gen_recording bench)",
        ),
        ("interval_ns", "1000000000"),
        ("scope", "all"),
        ("page_size", "4096"),
        ("mem_total", &(8u64 << 30).to_string()),
        ("swap_total", "0"),
    ] {
        w.set_meta(k, v).expect("meta");
    }
    w.set_meta("start_ns", &start_ns.to_string()).expect("meta");
    w.set_meta("start_unix", "1700000000.0").expect("meta");
    let mut seed = 7u64;
    let mut noise = || {
        seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((seed >> 11) as f64 / (1u64 << 53) as f64) * 2.0 - 1.0
    };
    let metas: Vec<ProcMeta> = (0..procs)
        .map(|p| ProcMeta {
            ppid: 1,
            comm: format!("proc{p}"),
            cmdline: Some(format!("/usr/bin/proc{p} --serve")),
        })
        .collect();
    let mut obs: Vec<Observation> = Vec::with_capacity(procs);
    for i in 0..samples {
        let t_ns = start_ns + (i as u64 + 1) * 1_000_000_000;
        obs.clear();
        for (p, meta) in metas.iter().enumerate() {
            // The writer stores only changes: unchanged processes are not
            // observed at all (as the eBPF sampler reports only changes).
            if !(i + p).is_multiple_of(every) && i > 0 {
                continue;
            }
            let rss = (rss_at(p, i, noise()).max(0.0) as u64) / PAGE * PAGE;
            obs.push(Observation {
                id: ProcId {
                    pid: 1000 + p as u32,
                    start_ns: start_ns - 1_000_000,
                },
                at_ns: t_ns,
                mem: Mem {
                    vm: rss * 3 + (200 << 20),
                    rss_anon: rss,
                    rss_file: 4 << 20,
                    rss_shmem: 0,
                    swap: 0,
                },
                meta: meta.clone(),
                exit: None,
            });
        }
        w.write_snapshot(t_ns, &obs).expect("write snapshot");
    }
    w.finish(start_ns + (samples as u64 + 1) * 1_000_000_000)
        .expect("finish");
    std::fs::rename(&tmp, &out).expect("rename");
    let bytes = std::fs::metadata(&out).map(|m| m.len()).unwrap_or(0);
    println!(
        "RESULT {{\"cached\": false, \"procs\": {procs}, \"samples\": {samples}, \"bytes\": {bytes}, \"write_s\": {:.3}}}",
        started.elapsed().as_secs_f64()
    );
}
