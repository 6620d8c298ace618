//! Verdicts of the whole per-series pipeline on synthetic series (the
//! same pipeline on recordings is tested in `load/tests.rs`).

use super::limits::LimitSource;
use super::*;

const MIB: f64 = 1024.0 * 1024.0;
const GIB: f64 = 1024.0 * MIB;

fn limit(bytes: f64) -> Limit {
    Limit {
        bytes: Some(bytes),
        source: LimitSource::MemTotal,
    }
}

/// 0..600 s at 1 s; the default warm-up then drops the first 30 s.
fn times(n: usize) -> Vec<f64> {
    (0..n).map(|i| i as f64).collect()
}

fn run(t: &[f64], y: &[f64], lim: Limit, settings: &Settings) -> Finding {
    let input = SeriesInput {
        metric: Metric::Rss,
        values: y,
        limit: lim,
    };
    let mut f = analyse_series(t, &[input], 1.0, settings).expect("not skipped");
    assert_eq!(f.len(), 1);
    f.remove(0)
}

fn close(a: f64, b: f64, rel: f64) -> bool {
    (a - b).abs() <= rel * a.abs().max(b.abs())
}

/// Deterministic noise in [-1, 1).
fn noise(n: usize, mut seed: u64) -> Vec<f64> {
    (0..n)
        .map(|_| {
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((seed >> 11) as f64 / (1u64 << 53) as f64) * 2.0 - 1.0
        })
        .collect()
}

#[test]
fn linear_leak_is_flagged_with_exact_slope() {
    let t = times(600);
    let y: Vec<f64> = t.iter().map(|&x| 100.0 * MIB + MIB * x).collect();
    let f = run(&t, &y, limit(4.0 * GIB), &Settings::default());
    assert_eq!(f.verdict, Verdict::Leak, "{}", f.why);
    let fit = f.fit.unwrap();
    // Warm-up: min(10% of 599 s, 30 s) = 30 s, so t = 30..=599.
    assert_eq!(fit.points, 570);
    assert_eq!(fit.t_start, 30.0);
    assert!(close(fit.slope, MIB, 1e-9), "{}", fit.slope);
    assert!(fit.r2 > 1.0 - 1e-12);
    // (4096 MiB - 699 MiB) / (1 MiB/s), from the last sample.
    assert!(close(f.time_to_limit_s.unwrap(), 3397.0, 1e-9));
    assert!(f.plot.is_some());
    assert!(f.why.contains("within the 60 min horizon"), "{}", f.why);
}

#[test]
fn step_then_flat_is_no_trend() {
    let t = times(600);
    let y: Vec<f64> = t
        .iter()
        .map(|&x| if x < 300.0 { 100.0 * MIB } else { 200.0 * MIB })
        .collect();
    let f = run(&t, &y, limit(4.0 * GIB), &Settings::default());
    // The flat tail has nothing to explain (R² 0) and any window across the
    // step has R² ≤ 0.75, so no window qualifies.
    assert_eq!(f.verdict, Verdict::NoTrend, "{}", f.why);
    assert!(f.fit.is_none());
    assert!(f.best_r2 < 0.9);
}

#[test]
fn sawtooth_with_rising_minima_is_judged_by_its_last_tooth() {
    // 60 s teeth, each ramping 50 MiB; minima rise 5 MiB per tooth. The
    // series ends at the top of a tooth (t = 599).
    let t = times(600);
    let y: Vec<f64> = t
        .iter()
        .map(|&x| {
            let k = (x / 60.0).floor();
            100.0 * MIB + 5.0 * MIB * k + 50.0 * MIB * (x - 60.0 * k) / 60.0
        })
        .collect();
    let lbr = Settings {
        model: ModelChoice::Lbr,
        ..Settings::default()
    };
    // The combined default judges it by its floor: it rises 5 MiB a minute,
    // 1 GiB is hours away, so it is growing, not a leak.
    let f = run(&t, &y, limit(GIB), &Settings::default());
    assert_eq!(f.model, Model::Sawtooth, "{}", f.why);
    assert_eq!(f.verdict, Verdict::Growing, "{}", f.why);
    assert!(close(f.fit.unwrap().slope, 5.0 * MIB / 60.0, 1e-9));
    let f = run(&t, &y, limit(GIB), &lbr);
    // LBR sees only the last ramp (t = 540..=599): any window reaching into
    // the previous tooth's high end drops R² below 0.9. Its slope is the
    // ramp's 50 MiB / 60 s, not the 5 MiB / 60 s drift of the minima, and at
    // that rate 1 GiB is 16 min away: LBR alone flags it.
    assert_eq!(f.verdict, Verdict::Leak, "{}", f.why);
    let fit = f.fit.unwrap();
    assert_eq!(fit.points, 60);
    assert_eq!(fit.t_start, 540.0);
    assert!(close(fit.slope, 50.0 * MIB / 60.0, 1e-9), "{}", fit.slope);
    let last = 100.0 * MIB + 45.0 * MIB + 50.0 * MIB * 59.0 / 60.0;
    assert!(close(
        f.time_to_limit_s.unwrap(),
        (GIB - last) / (50.0 * MIB / 60.0),
        1e-9
    ));
}

#[test]
fn flat_with_noise_is_no_trend() {
    let t = times(600);
    let e = noise(600, 42);
    let y: Vec<f64> = e.iter().map(|&e| 200.0 * MIB + 64.0 * 1024.0 * e).collect();
    let f = run(&t, &y, limit(4.0 * GIB), &Settings::default());
    assert_eq!(f.verdict, Verdict::NoTrend, "{}", f.why);
    assert!(f.time_to_limit_s.is_none());
}

#[test]
fn decreasing_is_no_trend() {
    let t = times(600);
    let y: Vec<f64> = t.iter().map(|&x| GIB - MIB * x).collect();
    let f = run(&t, &y, limit(4.0 * GIB), &Settings::default());
    assert_eq!(f.verdict, Verdict::NoTrend, "{}", f.why);
    let fit = f.fit.unwrap();
    assert!(close(fit.slope, -MIB, 1e-9));
    assert_eq!(fit.points, 570);
    assert!(f.time_to_limit_s.is_none());
}

#[test]
fn slow_leak_beyond_horizon_is_growing_not_flagged() {
    let t = times(600);
    let rate = 20.0 * 1024.0;
    let y: Vec<f64> = t.iter().map(|&x| 100.0 * MIB + rate * x).collect();
    let f = run(&t, &y, limit(4.0 * GIB), &Settings::default());
    assert_eq!(f.verdict, Verdict::Growing, "{}", f.why);
    let fit = f.fit.unwrap();
    assert!(close(fit.slope, rate, 1e-9));
    let ttl = (4.0 * GIB - y[599]) / rate;
    assert!(close(f.time_to_limit_s.unwrap(), ttl, 1e-9));
    assert!(ttl > 3600.0);
    assert!(f.why.contains("beyond the 60 min horizon"), "{}", f.why);
    // With a horizon past the projection it becomes a leak.
    let s = Settings {
        horizon_s: 3.0 * 86400.0,
        ..Settings::default()
    };
    assert_eq!(run(&t, &y, limit(4.0 * GIB), &s).verdict, Verdict::Leak);
}

#[test]
fn page_jitter_is_never_a_leak() {
    // A staircase rising one 4 KiB page every 100 s fits a line well, and a
    // limit just above would be reached within the horizon, but the growth
    // is far below 1 MiB.
    let t = times(600);
    let y: Vec<f64> = t
        .iter()
        .map(|&x| 100.0 * MIB + 4096.0 * (x / 100.0).floor())
        .collect();
    let lim = limit(y[599] + 100.0 * 1024.0);
    let f = run(&t, &y, lim, &Settings::default());
    assert_eq!(f.verdict, Verdict::NoTrend, "{}", f.why);
    assert!(f.why.contains("rises only"), "{}", f.why);
    // Without the guard LBR alone would flag the same series.
    let s = Settings {
        min_growth_bytes: 0.0,
        min_growth_fraction: 0.0,
        model: ModelChoice::Lbr,
        ..Settings::default()
    };
    assert_eq!(run(&t, &y, lim, &s).verdict, Verdict::Leak);
}

#[test]
fn gap_splits_the_series_and_the_window_stays_after_it() {
    // Observed 0..=299 s and 400..=699 s; the 101 s gap is > max(5 × 1 s, 2 s).
    let t: Vec<f64> = (0..300).chain(400..700).map(f64::from).collect();
    let y: Vec<f64> = t.iter().map(|&x| 100.0 * MIB + MIB * x).collect();
    let f = run(&t, &y, limit(4.0 * GIB), &Settings::default());
    assert_eq!(f.verdict, Verdict::Leak);
    assert_eq!((f.segment, f.segments), (1, 2));
    let fit = f.fit.unwrap();
    assert_eq!(fit.points, 300);
    assert_eq!(fit.t_start, 400.0);
    assert!(close(fit.slope, MIB, 1e-9));
    assert!(close(f.time_to_limit_s.unwrap(), 4096.0 - 799.0, 1e-9));

    // A jump while the sampler was not looking is not a ramp.
    let y: Vec<f64> = t
        .iter()
        .map(|&x| if x < 300.0 { 100.0 * MIB } else { 300.0 * MIB })
        .collect();
    let f = run(&t, &y, limit(GIB), &Settings::default());
    assert_eq!(f.verdict, Verdict::NoTrend, "{}", f.why);
}

#[test]
fn unknown_limit_is_growing() {
    let t = times(600);
    let y: Vec<f64> = t.iter().map(|&x| 100.0 * MIB + MIB * x).collect();
    let f = run(&t, &y, Limit::UNKNOWN, &Settings::default());
    assert_eq!(f.verdict, Verdict::Growing);
    assert!(f.why.contains("no limit is known"));
}

#[test]
fn already_over_the_limit_is_urgent() {
    let t = times(600);
    let y: Vec<f64> = t.iter().map(|&x| 100.0 * MIB + MIB * x).collect();
    let f = run(&t, &y, limit(500.0 * MIB), &Settings::default());
    assert_eq!(f.verdict, Verdict::Leak);
    assert_eq!(f.time_to_limit_s, Some(0.0));
    assert!(f.why.contains("already"), "{}", f.why);
}

#[test]
fn bad_input_never_panics() {
    let s = Settings::default();
    let inp = |v: &'static [f64]| SeriesInput {
        metric: Metric::Vm,
        values: v,
        limit: Limit::UNKNOWN,
    };
    assert_eq!(
        analyse_series(&[], &[inp(&[])], 1.0, &s),
        Err(SkipReason::NoSamples)
    );
    assert!(analyse_series(&[0.0, 1.0], &[inp(&[f64::NAN, 1.0])], f64::NAN, &s).is_err());
    // Huge values and NaN sprinkled in a long series.
    let t = times(300);
    let mut y: Vec<f64> = t
        .iter()
        .map(|&x| u64::MAX as f64 - 1e9 * (300.0 - x))
        .collect();
    y[100] = f64::NAN;
    y[200] = f64::INFINITY;
    let f = run(&t, &y, limit(u64::MAX as f64), &s);
    assert!(f.fit.is_some());
    // Zero-length windows: all times equal.
    let t = vec![5.0; 100];
    let y = vec![1.0; 100];
    assert!(analyse_series(&t, &[inp_owned(&y)], 1.0, &s).is_err());
}

fn inp_owned(v: &[f64]) -> SeriesInput<'_> {
    SeriesInput {
        metric: Metric::Vm,
        values: v,
        limit: Limit::UNKNOWN,
    }
}

#[test]
fn settings_are_validated() {
    assert!(Settings::default().validate().is_ok());
    let bad = [
        Settings {
            r2: 1.5,
            ..Settings::default()
        },
        Settings {
            r2: f64::NAN,
            ..Settings::default()
        },
        Settings {
            min_points: 1,
            ..Settings::default()
        },
        Settings {
            horizon_s: 0.0,
            ..Settings::default()
        },
        Settings {
            metrics: vec![],
            ..Settings::default()
        },
        Settings {
            max_points: 10,
            ..Settings::default()
        },
    ];
    for s in bad {
        assert!(s.validate().is_err(), "{s:?}");
    }
}

/// A leak's plot is bounded whatever the series' length, and keeps what a
/// chart must show: the first and last points, every tooth's peak level and
/// the lowest point, in time order.
#[test]
fn plots_are_bounded_and_keep_peaks() {
    let n = 10_000;
    let t: Vec<f64> = (0..n).map(f64::from).collect();
    // Teeth of 37 points rising 1 per point on a slope of 0.01.
    let y: Vec<f64> = (0..n)
        .map(|i| f64::from(i % 37) + 0.01 * f64::from(i))
        .collect();
    let p = Plot::of(&t, &y);
    assert!(p.t.len() <= 2 * PLOT_BUCKETS + 2, "{}", p.t.len());
    assert_eq!((p.t[0], p.t[p.t.len() - 1]), (0.0, f64::from(n - 1)));
    assert!(p.t.windows(2).all(|w| w[0] < w[1]));
    let max = y.iter().copied().fold(f64::MIN, f64::max);
    assert!(p.y.contains(&max), "the highest point is kept");
    assert!(p.y.contains(&0.0), "the lowest point is kept");
    // Short series are kept whole.
    assert_eq!(Plot::of(&t[..100], &y[..100]).y, y[..100].to_vec());
}
