//! `cargo bench -p memleak-user --bench analyse [-- --procs N --repeats R]`:
//! the analyser's cost on a synthetic, recording-free input of N processes
//! (default 1,000) × 3,600 samples (rss and vm each), through the pure
//! per-series function `memleak::analyse::analyse_series` (pre-processing +
//! LBR + the direct refit of each chosen window). Each process's series are
//! generated just before they are analysed and only the analysis is timed,
//! so the input never has to fit in memory at once. The original tool took
//! ~5 min for ~280 processes × a 50 s recording.
//!
//! Last line: `RESULT {json}` with every repeat's seconds and this
//! process's peak RSS (VmHWM), for `cargo xtask bench analyse`.

use std::hint::black_box;
use std::time::Instant;

use memleak::analyse::limits::{Limit, LimitSource};
use memleak::analyse::{analyse_series, Metric, SeriesInput, Settings, Verdict};

const SAMPLES: usize = 3600;
const MIB: f64 = 1024.0 * 1024.0;

/// A mix of shapes: leaks, flat noise, sawtooth, steps.
fn series(p: usize, seed: &mut u64) -> (Vec<f64>, Vec<f64>) {
    let mut noise = || {
        *seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((*seed >> 11) as f64 / (1u64 << 53) as f64) * 2.0 - 1.0
    };
    let base = 50.0 * MIB + p as f64 * MIB;
    let mut rss = Vec::with_capacity(SAMPLES);
    let mut vm = Vec::with_capacity(SAMPLES);
    for i in 0..SAMPLES {
        let t = i as f64;
        let r = match p % 4 {
            0 => base + 0.5 * MIB * t + 64.0 * 1024.0 * noise(),
            1 => base + 256.0 * 1024.0 * noise(),
            2 => base + 20.0 * MIB * ((t % 120.0) / 120.0) + 1024.0 * t,
            _ => base + if t > 1800.0 { 30.0 * MIB } else { 0.0 },
        };
        rss.push(r.round());
        vm.push((r * 3.0 + 200.0 * MIB).round());
    }
    (rss, vm)
}

/// Times the per-series analysis on synthetic series.
#[derive(clap::Parser)]
struct Args {
    #[arg(long, default_value_t = 1000)]
    procs: usize,
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u64).range(1..))]
    repeats: u64,
    /// Passed by `cargo bench`.
    #[arg(long, hide = true)]
    bench: bool,
}

fn vm_hwm_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|v| v.split_whitespace().next()?.parse().ok())
        })
        .unwrap_or(0)
}

fn run(processes: usize) -> (f64, usize) {
    let t: Vec<f64> = (0..SAMPLES).map(|i| i as f64).collect();
    let mut seed = 7u64;
    let settings = Settings::default();
    let limit = Limit {
        bytes: Some(4.0 * 1024.0 * MIB),
        source: LimitSource::MemTotal,
    };
    let mut secs = 0.0;
    let mut leaks = 0usize;
    for p in 0..processes {
        let (rss, vm) = series(p, &mut seed);
        let start = Instant::now();
        let inputs = [
            SeriesInput {
                metric: Metric::Rss,
                values: &rss,
                limit,
            },
            SeriesInput {
                metric: Metric::Vm,
                values: &vm,
                limit,
            },
        ];
        let findings = analyse_series(black_box(&t), &inputs, 1.0, &settings).expect("analysable");
        if findings.first().is_some_and(|f| f.verdict == Verdict::Leak) {
            leaks += 1;
        }
        black_box(findings);
        secs += start.elapsed().as_secs_f64();
    }
    (secs, leaks)
}

fn main() {
    let args: Args = clap::Parser::parse();
    let (processes, repeats) = (args.procs, args.repeats);
    let mut all = Vec::new();
    for _ in 0..repeats {
        let (secs, leaks) = run(processes);
        println!(
            "analyse {processes}x{SAMPLES}: {secs:.3} s ({:.0} processes/s; 2 metrics per process, {leaks} processes flagged)",
            processes as f64 / secs
        );
        all.push(secs);
    }
    let list: Vec<String> = all.iter().map(|s| format!("{s:.4}")).collect();
    println!(
        "RESULT {{\"procs\": {processes}, \"samples\": {SAMPLES}, \"secs\": [{}], \"vmhwm_kib\": {}}}",
        list.join(", "),
        vm_hwm_kib()
    );
}
