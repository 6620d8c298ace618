//! Ordinary least squares of y on t: the one line fit every model uses
//! (LBR's reported window, the tail-slope test, the sawtooth's minima).
//!
//! Two passes: the means first, then the centred sums Σ(t-t̄)², Σ(t-t̄)(y-ȳ)
//! and Σ(y-ȳ)², so that byte counts in the gigabytes and boot-relative times
//! never meet in one large product and precision is that of the changes,
//! not of the absolute values. LBR's scan over all windows
//! ([`super::lbr::for_each_window`]) keeps the same centred sums with a
//! running (Welford) update; this is the reference it is tested against.
//!
//! Why not `linfa-linear`: for one regressor the closed form below is the
//! whole of ordinary least squares, and it also gives the slope's standard
//! error, which linfa's `LinearRegression` does not expose. linfa solved the
//! same normal equations through `ndarray` (13 more crates) to reproduce, to
//! 1e-9, numbers the scan had already computed exactly.

/// The centred sums of one least-squares fit.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LeastSquares {
    pub n: usize,
    pub mean_t: f64,
    pub mean_y: f64,
    /// Σ(t-t̄)².
    pub sxx: f64,
    /// Σ(t-t̄)(y-ȳ).
    pub sxy: f64,
    /// Σ(y-ȳ)².
    pub syy: f64,
}

impl LeastSquares {
    /// Fits the pairs; `None` with fewer than 2 points, or when all times
    /// are equal (no line through them) or not finite.
    pub fn of(points: impl Iterator<Item = (f64, f64)> + Clone) -> Option<LeastSquares> {
        let (mut n, mut st, mut sy) = (0usize, 0.0, 0.0);
        for (t, y) in points.clone() {
            n += 1;
            st += t;
            sy += y;
        }
        if n < 2 {
            return None;
        }
        let nf = n as f64;
        let (mean_t, mean_y) = (st / nf, sy / nf);
        let (mut sxx, mut sxy, mut syy) = (0.0, 0.0, 0.0);
        for (t, y) in points {
            let (dx, dy) = (t - mean_t, y - mean_y);
            sxx += dx * dx;
            sxy += dx * dy;
            syy += dy * dy;
        }
        (sxx > 0.0 && sxx.is_finite()).then_some(LeastSquares {
            n,
            mean_t,
            mean_y,
            sxx,
            sxy,
            syy,
        })
    }

    /// Fits `y` on `t` (the shorter length counts).
    pub fn of_slices(t: &[f64], y: &[f64]) -> Option<LeastSquares> {
        LeastSquares::of(t.iter().copied().zip(y.iter().copied()))
    }

    /// Slope of the least-squares line (y per unit of t).
    pub fn slope(&self) -> f64 {
        self.sxy / self.sxx
    }

    /// The line's value at `t`.
    pub fn at(&self, t: f64) -> f64 {
        self.mean_y + self.slope() * (t - self.mean_t)
    }

    /// Coefficient of determination in [0, 1]; 0 when every y is equal
    /// (there is nothing for a line to explain).
    pub fn r2(&self) -> f64 {
        if self.syy > 0.0 {
            ((self.sxy * self.sxy) / (self.sxx * self.syy)).clamp(0.0, 1.0)
        } else {
            0.0
        }
    }

    /// Standard error of the slope; `None` with fewer than 3 points.
    pub fn slope_se(&self) -> Option<f64> {
        if self.n < 3 {
            return None;
        }
        let ssr = (self.syy - self.slope() * self.sxy).max(0.0);
        Some((ssr / (self.n as f64 - 2.0) / self.sxx).sqrt())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exact_line_is_recovered() {
        let t = [0.0, 1.0, 2.0, 3.0];
        let y = [10.0, 12.0, 14.0, 16.0];
        let f = LeastSquares::of_slices(&t, &y).unwrap();
        assert_eq!(f.slope(), 2.0);
        assert_eq!(f.at(3.0), 16.0);
        assert_eq!(f.r2(), 1.0);
        assert_eq!(f.slope_se(), Some(0.0));
    }

    #[test]
    fn degenerate_inputs_have_no_fit() {
        assert!(LeastSquares::of_slices(&[1.0], &[1.0]).is_none());
        assert!(LeastSquares::of_slices(&[3.0; 4], &[1.0, 2.0, 3.0, 4.0]).is_none());
        assert!(LeastSquares::of_slices(&[0.0, f64::INFINITY], &[1.0, 2.0]).is_none());
        // Flat values: a zero slope that explains nothing.
        let f = LeastSquares::of_slices(&[0.0, 1.0, 2.0], &[5.0; 3]).unwrap();
        assert_eq!((f.slope(), f.r2()), (0.0, 0.0));
    }

    #[test]
    fn standard_error_matches_the_textbook_formula() {
        // y = 1, 3, 2, 5, 4 at t = 0..5: slope 0.8, residual SS 3.6,
        // se = sqrt(3.6 / 3 / 10).
        let t = [0.0, 1.0, 2.0, 3.0, 4.0];
        let y = [1.0, 3.0, 2.0, 5.0, 4.0];
        let f = LeastSquares::of_slices(&t, &y).unwrap();
        assert!((f.slope() - 0.8).abs() < 1e-12);
        assert!((f.slope_se().unwrap() - (3.6f64 / 3.0 / 10.0).sqrt()).abs() < 1e-12);
    }
}
