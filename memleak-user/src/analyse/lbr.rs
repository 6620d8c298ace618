//! Linear backward regression (LBR): least-squares lines fitted to windows
//! that grow backwards from the end of a series, all windows in O(n).
//!
//! The window ending at the last point and starting at point `n - k` is
//! fitted for every `k` from `min_points` to `n`. Instead of refitting each
//! window (the original tool's O(n²)), one pass from the end updates running,
//! *centred* co-moments (Welford's update: mean of x and y, Σ(x-x̄)²,
//! Σ(x-x̄)(y-ȳ), Σ(y-ȳ)²) as each earlier point joins the window. Before
//! that, times and values are shifted by the last point's (`x = t - t_last`,
//! `v = y - y_last`), so byte counts in the gigabytes and boot-relative
//! times never meet in one large sum: precision stays at the level of the
//! changes inside the window, not of the absolute values.
//!
//! **Which window.** Of all windows whose R² reaches the threshold, the
//! *longest* is chosen: it is the longest recent stretch that a straight
//! line explains, so its slope rests on the most evidence and is the long-run
//! rate rather than the last few samples' noise. A short window that fits
//! only because it is short (a single page-fault burst) loses to a long one.

use super::fit::LeastSquares;

/// A least-squares line over one window `[t_start, t_end]` of a series.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct WindowFit {
    /// Points in the window.
    pub points: usize,
    /// Units of y per second (bytes/s for memory).
    pub slope: f64,
    /// Coefficient of determination, in [0, 1]; 0 when the window's values
    /// are all equal (there is nothing for a line to explain).
    pub r2: f64,
    /// Fitted value at `t_end` (the last point of the series).
    pub fitted_end: f64,
    pub t_start: f64,
    pub t_end: f64,
}

impl WindowFit {
    /// Window length in seconds.
    pub fn span_s(&self) -> f64 {
        self.t_end - self.t_start
    }
    /// Fitted value at `t_start`.
    pub fn fitted_start(&self) -> f64 {
        self.fitted_end - self.slope * self.span_s()
    }
    /// Fitted growth across the window (`slope × span`).
    pub fn growth(&self) -> f64 {
        self.slope * self.span_s()
    }
}

/// Result of scanning all windows of a series.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Scan {
    /// The longest window with R² at or above the threshold.
    pub chosen: Option<WindowFit>,
    /// The best R² of any window considered (0 when none was), for messages.
    pub best_r2: f64,
    /// Windows considered.
    pub windows: usize,
}

/// Calls `f` with the fit of every window that ends at the last point and
/// has at least `min_points` points (clamped to at least 2), shortest first.
/// Windows whose times are all equal (no line through them) are skipped.
/// `t` and `y` must have equal length; extra elements of the longer are
/// ignored. Non-finite inputs make the affected windows' numbers non-finite,
/// which [`scan`] treats as "no fit"; callers clean their input first.
pub fn for_each_window(t: &[f64], y: &[f64], min_points: usize, mut f: impl FnMut(WindowFit)) {
    let n = t.len().min(y.len());
    if n < 2 {
        return;
    }
    let min_points = min_points.max(2);
    let (t_last, y_last) = (t[n - 1], y[n - 1]);
    let (mut mx, mut my) = (0.0f64, 0.0f64);
    let (mut cxx, mut cxy, mut cyy) = (0.0f64, 0.0f64, 0.0f64);
    for (k, i) in (0..n).rev().enumerate() {
        let x = t[i] - t_last;
        let v = y[i] - y_last;
        let count = (k + 1) as f64;
        let dx = x - mx;
        let dy = v - my;
        mx += dx / count;
        my += dy / count;
        // Welford: the second factor uses the updated mean.
        cxx += dx * (x - mx);
        cxy += dx * (v - my);
        cyy += dy * (v - my);
        let points = k + 1;
        if points < min_points || cxx <= 0.0 {
            continue;
        }
        let slope = cxy / cxx;
        let r2 = if cyy > 0.0 {
            ((cxy * cxy) / (cxx * cyy)).clamp(0.0, 1.0)
        } else {
            0.0
        };
        // Fitted v at x = 0 (the last point) is ȳ - slope·x̄.
        let fitted_end = y_last + (my - slope * mx);
        f(WindowFit {
            points,
            slope,
            r2,
            fitted_end,
            t_start: t[i],
            t_end: t_last,
        });
    }
}

/// Scans every window (see [`for_each_window`]) and picks the longest whose
/// R² is at least `r2_min`. O(n) time, O(1) extra memory.
pub fn scan(t: &[f64], y: &[f64], min_points: usize, r2_min: f64) -> Scan {
    let mut out = Scan {
        chosen: None,
        best_r2: 0.0,
        windows: 0,
    };
    for_each_window(t, y, min_points, |w| {
        if !(w.slope.is_finite() && w.r2.is_finite() && w.fitted_end.is_finite()) {
            return;
        }
        out.windows += 1;
        if w.r2 > out.best_r2 {
            out.best_r2 = w.r2;
        }
        // Windows come shortest first, so the last qualifying one is longest.
        if w.r2 >= r2_min {
            out.chosen = Some(w);
        }
    });
    out
}

/// Direct two-pass least squares over the whole of `t`/`y` ([`LeastSquares`]):
/// the reported numbers of a chosen window, and the reference the running
/// sums are checked against.
pub fn direct_fit(t: &[f64], y: &[f64]) -> Option<WindowFit> {
    let n = t.len().min(y.len());
    let f = LeastSquares::of_slices(&t[..n], &y[..n])?;
    let t_end = t[n - 1];
    Some(WindowFit {
        points: n,
        slope: f.slope(),
        r2: f.r2(),
        fitted_end: f.at(t_end),
        t_start: t[0],
        t_end,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn close(a: f64, b: f64, rel: f64) -> bool {
        let scale = a.abs().max(b.abs()).max(1e-300);
        (a - b).abs() <= rel * scale
    }

    #[test]
    fn exact_line_has_r2_one_everywhere() {
        let t: Vec<f64> = (0..100).map(|i| i as f64 * 0.5).collect();
        let y: Vec<f64> = t.iter().map(|&x| 1e9 + 4096.0 * x).collect();
        let mut seen = 0;
        for_each_window(&t, &y, 20, |w| {
            seen += 1;
            assert!(close(w.slope, 4096.0, 1e-12), "{w:?}");
            assert!(w.r2 > 1.0 - 1e-12);
            assert!(close(w.fitted_end, y[99], 1e-15));
        });
        assert_eq!(seen, 81);
        let s = scan(&t, &y, 20, 0.9);
        assert_eq!(s.chosen.unwrap().points, 100);
    }

    #[test]
    fn degenerate_inputs_do_not_panic() {
        assert_eq!(scan(&[], &[], 20, 0.9).windows, 0);
        assert_eq!(scan(&[1.0], &[1.0], 0, 0.9).windows, 0);
        // All times equal: no line.
        assert!(scan(&[1.0; 30], &[2.0; 30], 2, 0.9).chosen.is_none());
        // Constant values: R² 0, slope 0.
        let t: Vec<f64> = (0..30).map(f64::from).collect();
        let s = scan(&t, &[7.0; 30], 2, 0.9);
        assert!(s.chosen.is_none());
        assert_eq!(s.best_r2, 0.0);
        // NaN poisons windows, which are then ignored.
        let mut y: Vec<f64> = t.clone();
        y[0] = f64::NAN;
        let s = scan(&t, &y, 2, 0.9);
        assert_eq!(s.chosen.unwrap().points, 29);
        // Huge values stay finite.
        let y: Vec<f64> = t.iter().map(|&x| u64::MAX as f64 - 1e12 * x).collect();
        let s = scan(&t, &y, 2, 0.9);
        assert!(s.chosen.unwrap().slope < 0.0);
        assert!(direct_fit(&[], &[]).is_none());
        assert!(direct_fit(&[3.0; 4], &[1.0, 2.0, 3.0, 4.0]).is_none());
    }

    #[test]
    fn direct_fit_is_exact_far_from_the_origin() {
        // Gigabytes at boot-relative times of days: an exact line must come
        // back exact, whatever the offsets.
        let t: Vec<f64> = (0..500).map(|i| 400_000.0 + i as f64).collect();
        let y: Vec<f64> = t.iter().map(|&x| 3e10 + 1e5 * (x - 400_000.0)).collect();
        let d = direct_fit(&t, &y).unwrap();
        assert!(close(d.slope, 1e5, 1e-12), "{d:?}");
        assert!(close(d.fitted_end, 3e10 + 1e5 * 499.0, 1e-15));
        assert_eq!(d.r2, 1.0);
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        /// Running-sum windows equal a direct fit of the same window within
        /// 1e-9 relative.
        #[test]
        fn running_sums_match_direct_fit(
            n in 3usize..300,
            t0 in 0.0f64..1e6,
            step in 1e-3f64..10.0,
            base in 0.0f64..1e12,
            slope in -1e7f64..1e7,
            noise in proptest::collection::vec(-1.0f64..1.0, 300),
            amp in 0.0f64..1e8,
            min_points in 2usize..40,
            jitter in proptest::collection::vec(0.0f64..0.5, 300),
        ) {
            // Irregular but increasing times.
            let mut t = Vec::with_capacity(n);
            let mut now = t0;
            for j in jitter.iter().take(n) {
                t.push(now);
                now += step * (0.5 + j);
            }
            let y: Vec<f64> = t.iter().zip(&noise)
                .map(|(&x, &e)| base + slope * (x - t0) + amp * e)
                .collect();
            let mut windows = Vec::new();
            for_each_window(&t, &y, min_points, |w| windows.push(w));
            let mut checked = 0;
            for w in windows {
                let s = n - w.points;
                let d = direct_fit(&t[s..], &y[s..]).unwrap();
                // R² and slope are compared relative to their scale; where the
                // signal vanishes (slope ≈ 0) the fit is compared against the
                // size of the noise instead.
                let slope_scale = d.slope.abs().max(amp / (t[n - 1] - t[s]).max(1e-9) * 1e-3);
                prop_assert!((w.slope - d.slope).abs() <= 1e-9 * slope_scale.max(1e-300),
                    "slope {} vs {} (k={})", w.slope, d.slope, w.points);
                // Relative, with a floor of 1e-12 for R² ≈ 0 (pure noise).
                prop_assert!((w.r2 - d.r2).abs() <= 1e-9 * d.r2.max(1e-3),
                    "r2 {} vs {}", w.r2, d.r2);
                let y_scale = d.fitted_end.abs().max(1.0);
                prop_assert!((w.fitted_end - d.fitted_end).abs() <= 1e-9 * y_scale);
                checked += 1;
            }
            prop_assert_eq!(checked, n + 1 - min_points.max(2).min(n + 1));
        }
    }
}
