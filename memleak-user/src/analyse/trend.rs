//! Robust trend: Theil–Sen slope with Mann–Kendall significance.
//!
//! Least squares (LBR) needs a near-straight line (R² ≥ 0.9); a slow leak
//! buried in allocation noise never fits one. This model asks a different
//! question: *do later values tend to be larger than earlier ones?*
//!
//! - **Mann–Kendall**: `S = Σ_{i<j} sign(y_j - y_i)`; under "no trend" S is
//!   about normal with variance `[n(n-1)(2n+5) - Σ t(t-1)(2t+5)] / 18`, the
//!   sum running over groups of `t` equal values (**tie correction**). Flat
//!   memory is almost all ties: its S is near 0 and the corrected variance
//!   small, so it never scores as a trend by sheer count of pairs.
//! - **Theil–Sen**: the slope is the median of all pairwise slopes, robust
//!   to outliers and to up to ~29% of arbitrary points.
//!
//! Both are O(k²) in the number of points, so long series are subsampled to
//! at most [`MAX_POINTS`] evenly spaced points first: O(k² log k) with
//! bounded k, whatever the recording's length.
//!
//! A significant rise over the whole segment is not enough for a leak: a
//! warm-up that plateaus, a cache that fills to its cap, a single step all
//! rise overall. [`rising_to_the_end`] also asks that the median level of
//! each quarter of the segment be above the previous quarter's by a margin
//! (more than page jitter), and that the last quarter on its own rise
//! significantly ([`LAST_QUARTER_ALPHA`]): growth must still be going on at
//! the end.

/// Mann–Kendall p-value the last quarter must reach on its own.
pub const LAST_QUARTER_ALPHA: f64 = 0.01;

/// Points kept for the pairwise statistics.
pub const MAX_POINTS: usize = 160;

/// Evenly spaced indices of `n` points, at most `k` of them, always
/// including the first and the last.
pub fn subsample_indices(n: usize, k: usize) -> Vec<usize> {
    if n <= k || k < 2 {
        return (0..n).collect();
    }
    (0..k)
        .map(|j| ((j as f64) * (n - 1) as f64 / (k - 1) as f64).round() as usize)
        .collect()
}

/// Mann–Kendall statistic S and its tie-corrected variance.
pub fn mann_kendall(y: &[f64]) -> (f64, f64) {
    let n = y.len();
    let mut s = 0i64;
    for i in 0..n {
        for j in i + 1..n {
            if y[j] > y[i] {
                s += 1;
            } else if y[j] < y[i] {
                s -= 1;
            }
        }
    }
    let mut sorted = y.to_vec();
    sorted.sort_by(f64::total_cmp);
    let mut ties = 0.0;
    let mut i = 0;
    while i < sorted.len() {
        let mut j = i + 1;
        while j < sorted.len() && sorted[j] == sorted[i] {
            j += 1;
        }
        let t = (j - i) as f64;
        if t > 1.0 {
            ties += t * (t - 1.0) * (2.0 * t + 5.0);
        }
        i = j;
    }
    let nf = n as f64;
    let var = ((nf * (nf - 1.0) * (2.0 * nf + 5.0)) - ties) / 18.0;
    (s as f64, var.max(0.0))
}

/// One-sided p-value of an upward trend from S and its variance (with the
/// continuity correction); 1 when there is no variance (all values equal).
pub fn p_rising(s: f64, var: f64) -> f64 {
    if var <= 0.0 || s <= 0.0 {
        return 1.0;
    }
    let z = (s - 1.0) / var.sqrt();
    0.5 * erfc(z / std::f64::consts::SQRT_2)
}

/// Complementary error function (Numerical Recipes' Chebyshev fit,
/// relative error < 1.2e-7).
pub fn erfc(x: f64) -> f64 {
    let z = x.abs();
    let t = 1.0 / (1.0 + 0.5 * z);
    let r = t
        * (-z * z - 1.265_512_23
            + t * (1.000_023_68
                + t * (0.374_091_96
                    + t * (0.096_784_18
                        + t * (-0.186_288_06
                            + t * (0.278_868_07
                                + t * (-1.135_203_98
                                    + t * (1.488_515_87
                                        + t * (-0.822_152_23 + t * 0.170_872_77)))))))))
            .exp();
    if x >= 0.0 {
        r
    } else {
        2.0 - r
    }
}

/// Median of pairwise slopes of (`t`, `y`); `None` with fewer than two
/// distinct times.
///
/// The exact median of n²/2 slopes is the most expensive step of the
/// default models (at 160 points, 12,720 slopes per call), so the slopes
/// are selected as integer keys of the same total order (one conversion
/// each, instead of two per comparison in `f64::total_cmp`), in a buffer
/// reused across calls on the thread. The result is the same number.
pub fn theil_sen(t: &[f64], y: &[f64]) -> Option<f64> {
    let n = t.len().min(y.len());
    KEYS.with_borrow_mut(|keys| {
        keys.clear();
        keys.reserve(n * n.saturating_sub(1) / 2);
        for i in 0..n {
            for j in i + 1..n {
                let dt = t[j] - t[i];
                if dt > 0.0 {
                    keys.push(order_key((y[j] - y[i]) / dt));
                }
            }
        }
        median_key(keys)
    })
}

thread_local! {
    /// The slope keys of [`theil_sen`] and [`pairs`], reused across calls on
    /// the thread (160 points: 12,720 keys).
    static KEYS: std::cell::RefCell<Vec<i64>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// The median of slope keys as a slope (the mean of the middle two for an
/// even count); `None` without keys. Reorders `keys`.
fn median_key(keys: &mut [i64]) -> Option<f64> {
    if keys.is_empty() {
        return None;
    }
    let (len, mid) = (keys.len(), keys.len() / 2);
    let (lower, m, _) = keys.select_nth_unstable(mid);
    let m = from_order_key(*m);
    if len % 2 == 1 {
        return Some(m);
    }
    let below = lower.iter().copied().max().map(from_order_key)?;
    Some((below + m) / 2.0)
}

/// Theil–Sen slope and Mann–Kendall statistic of the same points.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Pairs {
    /// Median pairwise slope ([`theil_sen`]).
    pub slope: f64,
    /// Mann–Kendall S and its tie-corrected variance ([`mann_kendall`]).
    pub s: f64,
    pub var: f64,
}

/// [`theil_sen`] and [`mann_kendall`] in one pass over the pairs, for the
/// usual input: strictly increasing times (a resampled grid) and finite
/// values. `None` otherwise, and the caller uses the two functions.
///
/// Both statistics visit the same n²/2 pairs, and together were the larger
/// part of the default models' time; the numbers are the same as the two
/// functions' (a test checks).
///
/// - With every `dt > 0` the pair loop has no branch: each row (a point
///   against all later ones) fills a slice of slope keys and counts rises
///   and falls, which the compiler turns into vector code.
/// - The tie correction needs the sizes of groups of equal values. A group
///   of size g whose members have c = g-1, …, 0 equal later values has
///   g(g-1)(2g+5) = Σ (6c² + 12c), so counting each point's equal later
///   values replaces the sort.
///
/// Selecting the median among the keys is now the larger cost. Bracketing
/// the median's rank with a pilot sample and selecting only inside the
/// bracket was measured and gained nothing: keeping the bracketed keys
/// costs a pass as long as the selection it saves.
pub fn pairs(t: &[f64], y: &[f64]) -> Option<Pairs> {
    let n = t.len().min(y.len());
    let (t, y) = (&t[..n], &y[..n]);
    if n < 2 || !t.windows(2).all(|w| w[1] > w[0]) || !y.iter().all(|v| v.is_finite()) {
        return None;
    }
    KEYS.with_borrow_mut(|keys| {
        keys.clear();
        keys.resize(n * (n - 1) / 2, 0);
        let (mut s, mut ties) = (0i64, 0i64);
        let mut rest = keys.as_mut_slice();
        for i in 0..n - 1 {
            let (ti, yi) = (t[i], y[i]);
            let (row, tail) = rest.split_at_mut(n - 1 - i);
            rest = tail;
            let (mut up, mut down) = (0i64, 0i64);
            for ((k, &tj), &yj) in row.iter_mut().zip(&t[i + 1..]).zip(&y[i + 1..]) {
                let dy = yj - yi;
                *k = order_key(dy / (tj - ti));
                up += i64::from(dy > 0.0);
                down += i64::from(dy < 0.0);
            }
            let equal = row.len() as i64 - up - down;
            s += up - down;
            ties += 6 * equal * equal + 12 * equal;
        }
        let slope = median_key(keys)?;
        let nf = n as f64;
        let var = ((nf * (nf - 1.0) * (2.0 * nf + 5.0)) - ties as f64) / 18.0;
        Some(Pairs {
            slope,
            s: s as f64,
            var: var.max(0.0),
        })
    })
}

/// An integer that orders as `f64::total_cmp` orders `x`.
fn order_key(x: f64) -> i64 {
    let b = x.to_bits() as i64;
    b ^ (((b >> 63) as u64) >> 1) as i64
}

/// The inverse of [`order_key`].
fn from_order_key(k: i64) -> f64 {
    f64::from_bits((k ^ (((k >> 63) as u64) >> 1) as i64) as u64)
}

/// Median (the mean of the middle two for an even count).
pub fn median(v: &mut [f64]) -> Option<f64> {
    if v.is_empty() {
        return None;
    }
    let mid = v.len() / 2;
    let (_, m, _) = v.select_nth_unstable_by(mid, f64::total_cmp);
    let m = *m;
    if v.len() % 2 == 1 {
        return Some(m);
    }
    let lower = v[..mid].iter().copied().fold(f64::NEG_INFINITY, f64::max);
    Some((lower + m) / 2.0)
}

/// Medians of the four quarters of `y`.
pub fn quarter_medians(y: &[f64]) -> Option<[f64; 4]> {
    if y.len() < 8 {
        return None;
    }
    let mut out = [0.0; 4];
    for (q, o) in out.iter_mut().enumerate() {
        let a = q * y.len() / 4;
        let b = (q + 1) * y.len() / 4;
        *o = median(&mut y[a..b].to_vec())?;
    }
    Some(out)
}

/// How long a pause at the end can be, as a multiple of the longest pause
/// between new highs earlier in the series, and still be the growth's own
/// rhythm rather than the end of growth.
pub const PAUSE_FACTOR: f64 = 1.5;

/// Whether the series' current pause (points since it last rose more than
/// `jitter` above its running maximum) is no longer than [`PAUSE_FACTOR`]
/// times the longest pause between earlier new highs. A leak that grows in
/// steps (a cache flushed to a list every few seconds, a pool grown by
/// chunks) pauses between steps: a flat stretch at the end as long as those
/// is not evidence that growth stopped, whatever a slope over it says. A
/// warm-up that plateaus rises at every point and then stops for good: its
/// final pause is far longer than any before it. Points are on a uniform
/// grid, so indices measure time.
pub fn ordinary_pause(y: &[f64], jitter: f64) -> bool {
    let Some(&first) = y.first() else {
        return false;
    };
    let (mut high, mut last_new, mut longest) = (first, 0usize, 0usize);
    let mut highs = 0;
    for (i, &v) in y.iter().enumerate().skip(1) {
        if v > high + jitter {
            longest = longest.max(i - last_new);
            last_new = i;
            high = v;
            highs += 1;
        }
    }
    let current = y.len() - 1 - last_new;
    // Too few steps to know the rhythm: no excuse for a flat end.
    highs >= 3 && current as f64 <= PAUSE_FACTOR * longest as f64
}

/// Each quarter's median more than `margin` above the previous one's, and
/// the last quarter rising significantly on its own (or pausing no longer
/// than the growth did before, [`ordinary_pause`]): growth still going on at
/// the end, not a warm-up, a filled cache or a single step.
pub fn rising_to_the_end(y: &[f64], margin: f64) -> bool {
    let Some(q) = quarter_medians(y) else {
        return false;
    };
    if !q.windows(2).all(|w| w[1] - w[0] > margin) {
        return false;
    }
    let last = &y[3 * y.len() / 4..];
    let idx = subsample_indices(last.len(), MAX_POINTS);
    let ys: Vec<f64> = idx.iter().map(|&i| last[i]).collect();
    let (s, var) = mann_kendall(&ys);
    p_rising(s, var) < LAST_QUARTER_ALPHA || ordinary_pause(y, margin)
}

/// The trend of one segment.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Trend {
    /// Theil–Sen slope, units of y per second.
    pub slope: f64,
    /// Theil–Sen line's value at the last time.
    pub fitted_end: f64,
    /// One-sided Mann–Kendall p-value of a rise.
    pub p_value: f64,
    /// Points the statistics used (after subsampling).
    pub points: usize,
    /// Quarter medians (for messages).
    pub quarters: Option<[f64; 4]>,
}

/// Theil–Sen and Mann–Kendall over (`t`, `y`) (subsampled to
/// [`MAX_POINTS`]); `None` with fewer than 8 points or no time span.
pub fn analyse(t: &[f64], y: &[f64]) -> Option<Trend> {
    let n = t.len().min(y.len());
    if n < 8 {
        return None;
    }
    let idx = subsample_indices(n, MAX_POINTS);
    let ts: Vec<f64> = idx.iter().map(|&i| t[i]).collect();
    let ys: Vec<f64> = idx.iter().map(|&i| y[i]).collect();
    let (slope, s, var) = match pairs(&ts, &ys) {
        Some(p) => (p.slope, p.s, p.var),
        None => {
            let (s, var) = mann_kendall(&ys);
            (theil_sen(&ts, &ys)?, s, var)
        }
    };
    // Theil–Sen intercept: median of y - slope·t, evaluated at the end.
    let t_end = ts[ts.len() - 1];
    let mut resid: Vec<f64> = ts
        .iter()
        .zip(&ys)
        .map(|(&a, &b)| b - slope * (a - t_end))
        .collect();
    let fitted_end = median(&mut resid)?;
    let quarters = quarter_medians(&y[..n]);
    Some(Trend {
        slope,
        fitted_end,
        p_value: p_rising(s, var),
        points: ys.len(),
        quarters,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Deterministic numbers in [0, 1) from `seed`.
    fn uniform(mut seed: u64) -> impl FnMut() -> f64 {
        move || {
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (seed >> 11) as f64 / (1u64 << 53) as f64
        }
    }

    #[test]
    fn erfc_matches_known_values() {
        for (x, v) in [
            (0.0, 1.0),
            (0.5, 0.479_500_122),
            (1.0, 0.157_299_207),
            (2.0, 0.004_677_735),
            (-1.0, 1.842_700_793),
        ] {
            assert!((erfc(x) - v).abs() < 2e-7, "erfc({x}) = {}", erfc(x));
        }
    }

    #[test]
    fn mann_kendall_counts_pairs_and_corrects_ties() {
        // 1 2 3: three rising pairs; no ties: var = 3·2·11/18.
        let (s, var) = mann_kendall(&[1.0, 2.0, 3.0]);
        assert_eq!(s, 3.0);
        assert!((var - 66.0 / 18.0).abs() < 1e-12);
        // All equal: S = 0 and the tie correction removes all variance.
        let (s, var) = mann_kendall(&[5.0; 50]);
        assert_eq!((s, var), (0.0, 0.0));
        assert_eq!(p_rising(s, var), 1.0);
        // Flat with one late page more: far from significant.
        let mut y = vec![100.0; 100];
        y[99] = 104.0;
        let (s, var) = mann_kendall(&y);
        assert_eq!(s, 99.0);
        assert!(p_rising(s, var) > 0.01, "{}", p_rising(s, var));
    }

    /// The integer keys order exactly as `total_cmp`, and the fast
    /// Theil–Sen gives the same number as the plain median of the slopes.
    #[test]
    fn theil_sen_matches_the_plain_median() {
        let xs = [
            f64::NEG_INFINITY,
            -1e300,
            -2.5,
            -0.0,
            0.0,
            1e-310,
            3.0,
            1e300,
            f64::INFINITY,
        ];
        for w in xs.windows(2) {
            assert!(order_key(w[0]) < order_key(w[1]), "{w:?}");
            assert_eq!(from_order_key(order_key(w[0])).to_bits(), w[0].to_bits());
        }
        let mut rnd = uniform(7);
        for n in [2usize, 3, 4, 17, 160] {
            let t: Vec<f64> = (0..n).map(|i| i as f64 + rnd() * 0.5).collect();
            let y: Vec<f64> = (0..n).map(|_| rnd() * 1e6 - 5e5).collect();
            let mut slopes = Vec::new();
            for i in 0..n {
                for j in i + 1..n {
                    if t[j] > t[i] {
                        slopes.push((y[j] - y[i]) / (t[j] - t[i]));
                    }
                }
            }
            assert_eq!(theil_sen(&t, &y), median(&mut slopes), "n = {n}");
        }
        assert_eq!(theil_sen(&[1.0, 1.0], &[2.0, 3.0]), None);
    }

    /// The fused pass gives the very numbers of the two functions, on
    /// series with ties, plateaus, steps and noise.
    #[test]
    fn pairs_matches_theil_sen_and_mann_kendall() {
        let mut rnd = uniform(11);
        for n in [2usize, 3, 8, 33, 160] {
            let t: Vec<f64> = (0..n).map(|i| 1e6 + i as f64 * 2.5).collect();
            let series: [Vec<f64>; 4] = [
                (0..n).map(|_| rnd() * 1e6).collect(),
                (0..n).map(|_| (rnd() * 4.0).floor() * 4096.0).collect(),
                (0..n).map(|i| 1e9 + (i / 7) as f64 * 4096.0).collect(),
                vec![5e8; n],
            ];
            for y in &series {
                let p = pairs(&t, y).expect("increasing times, finite values");
                let (s, var) = mann_kendall(y);
                assert_eq!(p.slope, theil_sen(&t, y).unwrap(), "n = {n}");
                assert_eq!((p.s, p.var), (s, var), "n = {n}");
            }
        }
        // Outside its domain it declines, and `analyse` falls back.
        assert_eq!(pairs(&[0.0, 0.0, 1.0], &[1.0, 2.0, 3.0]), None);
        assert_eq!(pairs(&[0.0, 1.0], &[1.0, f64::INFINITY]), None);
        let t = [0.0, 1.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0];
        let y = [0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0];
        assert!(analyse(&t, &y).unwrap().p_value < 0.01);
    }

    #[test]
    fn theil_sen_ignores_outliers() {
        let t: Vec<f64> = (0..50).map(f64::from).collect();
        let mut y: Vec<f64> = t.iter().map(|x| 3.0 * x + 7.0).collect();
        y[10] = 1e9;
        y[40] = -1e9;
        assert_eq!(theil_sen(&t, &y), Some(3.0));
        let tr = analyse(&t, &y).unwrap();
        assert_eq!(tr.slope, 3.0);
        assert_eq!(tr.fitted_end, 3.0 * 49.0 + 7.0);
        assert!(tr.p_value < 1e-6);
        assert!(rising_to_the_end(&y, 0.0));
    }

    #[test]
    fn subsampling_bounds_the_work() {
        let idx = subsample_indices(100_000, MAX_POINTS);
        assert_eq!(idx.len(), MAX_POINTS);
        assert_eq!((idx[0], idx[MAX_POINTS - 1]), (0, 99_999));
        assert_eq!(subsample_indices(5, MAX_POINTS), vec![0, 1, 2, 3, 4]);
    }

    #[test]
    fn steps_keep_rising_through_their_pauses() {
        // 8 steps of 10, every 12 points, with ±1 churn; the series ends 8
        // points into a pause (shorter than the 12-point rhythm).
        let y: Vec<f64> = (0..92)
            .map(|i| (i / 12) as f64 * 10.0 + if i % 2 == 0 { 1.0 } else { -1.0 })
            .collect();
        assert!(ordinary_pause(&y, 2.5));
        assert!(rising_to_the_end(&y, 2.5));
        // The same growth, then flat for 40 points: it stopped.
        let mut stopped = y.clone();
        stopped.extend((0..40).map(|i| 70.0 + if i % 2 == 0 { 1.0 } else { -1.0 }));
        assert!(!ordinary_pause(&stopped, 2.5));
        // A steady ramp that then stays flat as long: stopped too.
        let ramp: Vec<f64> = (0..100).map(|i| f64::from(i.min(60))).collect();
        assert!(!ordinary_pause(&ramp, 0.5));
    }

    #[test]
    fn plateau_is_not_rising_to_the_end() {
        let y: Vec<f64> = (0..100).map(|i| (i.min(60)) as f64).collect();
        assert!(!rising_to_the_end(&y, 0.0));
        let y: Vec<f64> = (0..100).map(f64::from).collect();
        assert!(rising_to_the_end(&y, 0.0));
        // Each quarter rises 25: a margin of 25 or more refuses it.
        assert!(rising_to_the_end(&y, 24.0));
        assert!(!rising_to_the_end(&y, 25.0));
        // A step in the last quarter: quarters rise, the last one on its
        // own is a step, still significant; the margin test holds it.
        let y: Vec<f64> = (0..100).map(|i| if i < 90 { 0.0 } else { 50.0 }).collect();
        assert!(!rising_to_the_end(&y, 1.0));
    }
}
