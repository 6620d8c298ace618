//! `cargo bench -p memleak-user --bench analyse`: the analyser's cost on a
//! synthetic, recording-free input of 1,000 processes × 3,600 samples
//! (rss and vm each), through the pure per-series function
//! `memleak::analyse::analyse_series` (pre-processing + LBR + the linfa
//! refit of each chosen window). The original tool took ~5 min for ~280
//! processes × a 50 s recording.

use std::hint::black_box;
use std::time::Instant;

use memleak::analyse::limits::{Limit, LimitSource};
use memleak::analyse::{analyse_series, Metric, SeriesInput, Settings, Verdict};

const PROCESSES: usize = 1000;
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

fn main() {
    let t: Vec<f64> = (0..SAMPLES).map(|i| i as f64).collect();
    let mut seed = 7u64;
    let data: Vec<(Vec<f64>, Vec<f64>)> = (0..PROCESSES).map(|p| series(p, &mut seed)).collect();
    let settings = Settings::default();
    let limit = Limit {
        bytes: Some(4.0 * 1024.0 * MIB),
        source: LimitSource::MemTotal,
    };
    let start = Instant::now();
    let mut leaks = 0usize;
    for (rss, vm) in &data {
        let inputs = [
            SeriesInput {
                metric: Metric::Rss,
                values: rss,
                limit,
            },
            SeriesInput {
                metric: Metric::Vm,
                values: vm,
                limit,
            },
        ];
        let findings = analyse_series(black_box(&t), &inputs, 1.0, &settings).expect("analysable");
        if findings.first().is_some_and(|f| f.verdict == Verdict::Leak) {
            leaks += 1;
        }
        black_box(findings);
    }
    let secs = start.elapsed().as_secs_f64();
    println!(
        "analyse {PROCESSES}x{SAMPLES}: {secs:.3} s ({:.0} series/s; 2 metrics per process, {leaks} processes flagged)",
        PROCESSES as f64 / secs
    );
}
