//! Sawtooth (cyclic) model: memory that grows and is partly freed again,
//! over and over (garbage collectors, batch jobs, caches that are flushed).
//!
//! LBR looks backwards from the end and sees only the last ramp of such a
//! series: a garbage collector's sawtooth with a flat floor looks like a
//! fast leak, and a cyclic leak (the floor creeps up) looks the same. What
//! separates them is the **floor**: the memory left after each collection.
//!
//! 1. Turning points with **hysteresis**: a peak is confirmed once the
//!    series falls at least `h` below it, a trough once it rises `h` above
//!    it (a zigzag filter). `h` is the larger of the smallest growth that
//!    counts (`min_growth`, page jitter is never a cycle) and 20% of the
//!    segment's range, so noise on a ramp is not a cycle.
//! 2. A series with at least two drops is **cyclic**. Its troughs (not
//!    counting one at the very start of the segment, which may be mid-ramp)
//!    are the cycle minima; with at least [`MIN_CYCLES`] of them a
//!    least-squares line is fitted through them.
//! 3. A cyclic leak: the minima's slope is positive with one-sided
//!    significance (t-test, 5%), the floor rose by more than `min_growth`,
//!    and at that rate the recent peak reaches the limit within the horizon.

/// Troughs needed before the minima's slope is judged.
pub const MIN_CYCLES: usize = 3;

/// Fraction of the segment's range a swing must reach to be a turning point.
pub const SWING_FRACTION: f64 = 0.2;

/// A turning point of a sawtooth: a local maximum or minimum.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Turn {
    Peak,
    Trough,
}

/// Confirmed turning points `(index, kind)` of `y` with hysteresis `h`.
pub fn turning_points(y: &[f64], h: f64) -> Vec<(usize, Turn)> {
    let mut out = Vec::new();
    let Some(&first) = y.first() else {
        return out;
    };
    let (mut hi, mut hi_i, mut lo, mut lo_i) = (first, 0usize, first, 0usize);
    let mut dir: Option<Turn> = None; // the kind of the next turn expected
    for (i, &v) in y.iter().enumerate().skip(1) {
        match dir {
            None => {
                if v > hi {
                    (hi, hi_i) = (v, i);
                }
                if v < lo {
                    (lo, lo_i) = (v, i);
                }
                if v - lo >= h {
                    out.push((lo_i, Turn::Trough));
                    dir = Some(Turn::Peak);
                    (hi, hi_i) = (v, i);
                } else if hi - v >= h {
                    out.push((hi_i, Turn::Peak));
                    dir = Some(Turn::Trough);
                    (lo, lo_i) = (v, i);
                }
            }
            Some(Turn::Peak) => {
                if v > hi {
                    (hi, hi_i) = (v, i);
                } else if hi - v >= h {
                    out.push((hi_i, Turn::Peak));
                    dir = Some(Turn::Trough);
                    (lo, lo_i) = (v, i);
                }
            }
            Some(Turn::Trough) => {
                if v < lo {
                    (lo, lo_i) = (v, i);
                } else if v - lo >= h {
                    out.push((lo_i, Turn::Trough));
                    dir = Some(Turn::Peak);
                    (hi, hi_i) = (v, i);
                }
            }
        }
    }
    out
}

/// One-sided 5% critical values of Student's t for 1..=10 degrees of freedom.
const T_CRIT_05: [f64; 10] = [
    6.314, 2.920, 2.353, 2.132, 2.015, 1.943, 1.895, 1.860, 1.833, 1.812,
];

/// One-sided 5% critical t for `df` degrees of freedom.
pub fn t_critical(df: usize) -> f64 {
    match df {
        0 => f64::INFINITY,
        1..=10 => T_CRIT_05[df - 1],
        11..=20 => 1.75,
        21..=40 => 1.70,
        _ => 1.645,
    }
}

/// What the model saw in one segment.
#[derive(Clone, Debug, PartialEq)]
pub struct Cycles {
    /// Hysteresis used, bytes.
    pub hysteresis: f64,
    /// Drops of at least `hysteresis` (peak followed by a trough).
    pub drops: usize,
    /// Cycle minima (time, value), in time order.
    pub minima: Vec<(f64, f64)>,
    /// Cycle maxima (time, value).
    pub maxima: Vec<(f64, f64)>,
    /// Least-squares line through the minima: slope (y per second), value
    /// at the last minimum, t statistic of the slope, R²; `None` with fewer
    /// than [`MIN_CYCLES`] minima.
    pub minima_fit: Option<MinimaFit>,
    /// Largest value since the last trough (the recent peak).
    pub recent_peak: f64,
}

/// The straight line through a sawtooth's minima, and its t statistic.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct MinimaFit {
    pub slope: f64,
    pub t_stat: f64,
    /// The slope is positive and significant (one-sided 5%).
    pub significant: bool,
    pub r2: f64,
    /// Fitted floor at the last minimum's time.
    pub fitted_last: f64,
    pub t_first: f64,
    pub t_last: f64,
}

impl Cycles {
    /// At least two drops: the series goes up and down, LBR's last-ramp
    /// view does not apply.
    pub fn cyclic(&self) -> bool {
        self.drops >= 2
    }
}

/// Least squares through `pts` with the slope's t statistic.
pub fn fit_minima(pts: &[(f64, f64)]) -> Option<MinimaFit> {
    let k = pts.len();
    if k < MIN_CYCLES {
        return None;
    }
    let fit = super::fit::LeastSquares::of(pts.iter().copied())?;
    let slope = fit.slope();
    let se = fit.slope_se()?;
    let t_stat = if se > 0.0 {
        slope / se
    } else if slope > 0.0 {
        f64::INFINITY
    } else if slope < 0.0 {
        f64::NEG_INFINITY
    } else {
        0.0
    };
    let r2 = fit.r2();
    let t_last = pts[k - 1].0;
    Some(MinimaFit {
        slope,
        t_stat,
        significant: slope > 0.0 && t_stat >= t_critical(k - 2),
        r2,
        fitted_last: fit.at(t_last),
        t_first: pts[0].0,
        t_last,
    })
}

/// Finds the cycles of one segment; `min_swing` is the smallest swing that
/// counts whatever the range (the analysis's `min_growth`).
pub fn analyse(t: &[f64], y: &[f64], min_swing: f64) -> Cycles {
    let n = t.len().min(y.len());
    let (lo, hi) = y[..n]
        .iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), &v| {
            (a.min(v), b.max(v))
        });
    let range = if n > 0 { hi - lo } else { 0.0 };
    let h = min_swing.max(SWING_FRACTION * range).max(f64::MIN_POSITIVE);
    let turns = turning_points(&y[..n], h);
    let mut drops = 0;
    let mut minima = Vec::new();
    let mut maxima = Vec::new();
    let mut seen_peak = false;
    for &(i, kind) in &turns {
        match kind {
            Turn::Peak => {
                seen_peak = true;
                if i > 0 {
                    maxima.push((t[i], y[i]));
                }
            }
            Turn::Trough => {
                if seen_peak {
                    drops += 1;
                }
                if i > 0 {
                    minima.push((t[i], y[i]));
                }
            }
        }
    }
    let last_trough = turns
        .iter()
        .rev()
        .find(|(_, k)| *k == Turn::Trough)
        .map_or(0, |(i, _)| *i);
    let recent_peak = y[last_trough.min(n.saturating_sub(1))..n]
        .iter()
        .copied()
        .fold(f64::NEG_INFINITY, f64::max);
    Cycles {
        hysteresis: h,
        drops,
        minima_fit: fit_minima(&minima),
        minima,
        maxima,
        recent_peak,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn saw(n: usize, period: f64, amp: f64, drift: f64) -> (Vec<f64>, Vec<f64>) {
        let t: Vec<f64> = (0..n).map(|i| i as f64).collect();
        let y = t
            .iter()
            .map(|&x| {
                let k = (x / period).floor();
                1000.0 + drift * k + amp * (x - period * k) / period
            })
            .collect();
        (t, y)
    }

    #[test]
    fn flat_floor_is_cyclic_without_rising_minima() {
        let (t, y) = saw(600, 60.0, 50.0, 0.0);
        let c = analyse(&t, &y, 1.0);
        assert!(c.cyclic());
        assert_eq!(c.drops, 9);
        assert_eq!(c.minima.len(), 9);
        let f = c.minima_fit.unwrap();
        assert_eq!(f.slope, 0.0);
        assert!(!f.significant);
    }

    #[test]
    fn rising_floor_is_significant() {
        let (t, y) = saw(600, 60.0, 50.0, 5.0);
        let c = analyse(&t, &y, 1.0);
        let f = c.minima_fit.unwrap();
        assert!((f.slope - 5.0 / 60.0).abs() < 1e-12, "{}", f.slope);
        assert!(f.significant);
        assert_eq!(c.minima[0], (60.0, 1005.0));
    }

    #[test]
    fn a_ramp_with_noise_is_not_cyclic() {
        let t: Vec<f64> = (0..300).map(f64::from).collect();
        let y: Vec<f64> = t
            .iter()
            .map(|&x| 10.0 * x + if (x as i64) % 2 == 0 { 30.0 } else { 0.0 })
            .collect();
        let c = analyse(&t, &y, 1.0);
        assert_eq!(c.drops, 0);
        assert!(!c.cyclic());
        assert!(c.minima_fit.is_none());
    }

    #[test]
    fn t_table() {
        assert_eq!(t_critical(1), 6.314);
        assert_eq!(t_critical(0), f64::INFINITY);
        assert_eq!(t_critical(1000), 1.645);
    }
}
