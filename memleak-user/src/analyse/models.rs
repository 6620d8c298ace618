//! The models on one segment of one metric, and how `all` combines them
//! (see the parent module's documentation).

use super::lbr::{direct_fit, WindowFit};
use super::units::{fmt_bytes, fmt_duration, fmt_rate};
use super::{
    judge_over, lbr_finding, sawtooth, trend, Finding, Model, ModelChoice, Plot, SeriesInput,
    Settings, Verdict,
};

/// Mann–Kendall p-value below which a rise is significant.
pub const TREND_ALPHA: f64 = 0.001;

/// Combined mode: LBR's flag stands only if the slope over the last quarter
/// and the last eighth of its window could be at least this fraction of the
/// window's slope (within two standard errors): growth still going on.
pub const TAIL_SLOPE_FRACTION: f64 = 0.3;

/// Whether growth at `slope` over the last `points` points has stopped at
/// the end: over the last quarter or eighth of them, the slope is below
/// [`TAIL_SLOPE_FRACTION`] of it by more than two standard errors, and that
/// flat end is longer than the pauses the growth took before
/// ([`trend::ordinary_pause`], rises of more than `jitter`). Returns that
/// stretch's slope and length in seconds.
fn growth_stopped(
    t: &[f64],
    y: &[f64],
    points: usize,
    slope: f64,
    jitter: f64,
) -> Option<(f64, f64)> {
    let n = t.len().min(y.len());
    if trend::ordinary_pause(&y[n - points.min(n)..n], jitter) {
        return None;
    }
    [points / 4, points / 8]
        .into_iter()
        .filter(|&l| l >= 8 && l <= n)
        .find_map(|l| {
            let (tail, se) = slope_with_se(&t[n - l..n], &y[n - l..n])?;
            (tail + 2.0 * se < TAIL_SLOPE_FRACTION * slope).then(|| (tail, t[n - 1] - t[n - l]))
        })
}

/// Least-squares slope of (`t`, `y`) and its standard error.
fn slope_with_se(t: &[f64], y: &[f64]) -> Option<(f64, f64)> {
    let f = super::fit::LeastSquares::of_slices(t, y)?;
    Some((f.slope(), f.slope_se()?))
}

/// The finding of `settings.model` on one segment.
pub(super) fn segment_finding(
    t: &[f64],
    y: &[f64],
    input: &SeriesInput<'_>,
    segment: usize,
    segments: usize,
    settings: &Settings,
) -> Finding {
    let ctx = Ctx {
        t,
        y,
        input,
        segment,
        segments,
        settings,
    };
    match settings.model {
        ModelChoice::Lbr => lbr_finding(t, y, input, segment, segments, settings),
        ModelChoice::Trend => ctx.trend(),
        ModelChoice::Sawtooth => ctx.sawtooth(&ctx.cycles()),
        ModelChoice::All => ctx.combined(),
    }
}

struct Ctx<'a> {
    t: &'a [f64],
    y: &'a [f64],
    input: &'a SeriesInput<'a>,
    segment: usize,
    segments: usize,
    settings: &'a Settings,
}

impl Ctx<'_> {
    fn span(&self) -> f64 {
        match (self.t.first(), self.t.last()) {
            (Some(a), Some(b)) => b - a,
            _ => 0.0,
        }
    }

    fn blank(&self, model: Model, why: String) -> Finding {
        Finding {
            model,
            metric: self.input.metric,
            verdict: Verdict::NoTrend,
            fit: None,
            best_r2: 0.0,
            limit: self.input.limit,
            last_value: self.y.last().copied().unwrap_or(f64::NAN),
            peak: None,
            time_to_limit_s: None,
            segment: self.segment,
            segments: self.segments,
            why,
            p_value: None,
            cycles: None,
            evidence: None,
            plot: None,
        }
    }

    fn with_plot(&self, mut f: Finding) -> Finding {
        if f.verdict == Verdict::Leak {
            f.plot = Some(Plot::of(self.t, self.y));
        }
        f
    }

    fn lowest(&self) -> f64 {
        self.y.iter().copied().fold(f64::INFINITY, f64::min)
    }

    fn cycles(&self) -> sawtooth::Cycles {
        let floor = self.lowest();
        sawtooth::analyse(self.t, self.y, self.settings.min_growth(floor))
    }

    /// Theil–Sen + Mann–Kendall, growth still going on at the end.
    fn trend(&self) -> Finding {
        let metric = self.input.metric;
        let Some(tr) = trend::analyse(self.t, self.y) else {
            return self.blank(
                Model::Trend,
                format!("{metric}: too few points for a trend test"),
            );
        };
        let mut f = self.blank(Model::Trend, String::new());
        f.p_value = Some(tr.p_value);
        let r2 = direct_fit(self.t, self.y).map_or(0.0, |d| d.r2);
        f.best_r2 = r2;
        let fit = WindowFit {
            points: self.t.len(),
            slope: tr.slope,
            r2,
            fitted_end: tr.fitted_end,
            t_start: self.t[0],
            t_end: self.t[self.t.len() - 1],
        };
        let over = format!("the last {}", fmt_duration(self.span()));
        let p = fmt_p(tr.p_value);
        if tr.p_value > TREND_ALPHA || tr.slope <= 0.0 {
            f.why = format!(
                "{metric} shows no significant rise over {over} (Mann–Kendall {p}, \
                 Theil–Sen slope {})",
                fmt_rate(tr.slope)
            );
            return f;
        }
        f.fit = Some(fit);
        let margin = tr
            .quarters
            .map_or(0.0, |q| self.settings.min_growth(q[0]) / 8.0);
        if !trend::rising_to_the_end(self.y, margin) {
            let q = tr
                .quarters
                .map(|q| {
                    q.iter()
                        .map(|v| fmt_bytes(*v))
                        .collect::<Vec<_>>()
                        .join(", ")
                })
                .unwrap_or_default();
            f.why = format!(
                "{metric} rose over {over} ({p}) but is not still rising at the end: \
                 the medians of its quarters are {q}, and each must be more than {} above \
                 the last with the last quarter rising on its own (this looks like a \
                 warm-up, a cache reaching its size or a one-off step, not a leak)",
                fmt_bytes(margin)
            );
            return f;
        }
        if let Some((tail, span)) = growth_stopped(self.t, self.y, self.t.len(), tr.slope, margin) {
            f.why = format!(
                "{metric} rose {} over {over} ({p}) but only {} over its last {}: \
                 growth has stopped (a warm-up or a cache filling up), not a leak",
                fmt_rate(tr.slope),
                fmt_rate(tail),
                fmt_duration(span)
            );
            return f;
        }
        let window = format!(
            "{over} (Theil–Sen slope, Mann–Kendall {p}, every quarter above the one before)"
        );
        let (verdict, ttl, why) =
            judge_over(metric, &fit, self.input.limit, self.settings, &window);
        f.verdict = verdict;
        f.time_to_limit_s = ttl;
        f.why = why;
        self.with_plot(f)
    }

    /// Rising cycle minima.
    fn sawtooth(&self, c: &sawtooth::Cycles) -> Finding {
        let metric = self.input.metric;
        let mut f = self.blank(Model::Sawtooth, String::new());
        f.cycles = Some(c.drops);
        let h = fmt_bytes(c.hysteresis);
        if !c.cyclic() {
            f.why = format!(
                "{metric} is not cyclic: {} drop{} of at least {h} (2 needed)",
                c.drops,
                if c.drops == 1 { "" } else { "s" }
            );
            return f;
        }
        let Some(mf) = c.minima_fit else {
            f.why = format!(
                "{metric} goes up and down ({} drops of at least {h}) but has only {} \
                 cycle minima; {} are needed to judge its floor",
                c.drops,
                c.minima.len(),
                sawtooth::MIN_CYCLES
            );
            return f;
        };
        f.best_r2 = mf.r2;
        let t_end = self.t[self.t.len() - 1];
        let floor_now = mf.fitted_last + mf.slope * (t_end - mf.t_last);
        let fit = WindowFit {
            points: c.minima.len(),
            slope: mf.slope,
            r2: mf.r2,
            // The projection starts from the recent peak: peaks reach the
            // limit first.
            fitted_end: c.recent_peak.max(floor_now),
            t_start: mf.t_first,
            t_end,
        };
        let cycles = format!(
            "a sawtooth ({} cycles of drops ≥ {h}; the floor after each drop, {} → {})",
            c.drops,
            fmt_bytes(c.minima[0].1),
            fmt_bytes(c.minima[c.minima.len() - 1].1),
        );
        if !mf.significant {
            f.fit = Some(fit);
            f.why = format!(
                "{metric} is {cycles} whose floor does not rise significantly \
                 ({}, t = {:.1}): memory is given back each cycle, like a garbage \
                 collector's, not leaked",
                fmt_rate(mf.slope),
                mf.t_stat
            );
            return f;
        }
        let window = format!(
            "the last {} as the floor of {cycles} (t = {:.1})",
            fmt_duration(fit.span_s()),
            mf.t_stat
        );
        let (verdict, ttl, why) =
            judge_over(metric, &fit, self.input.limit, self.settings, &window);
        f.fit = Some(fit);
        f.verdict = verdict;
        f.time_to_limit_s = ttl;
        f.why = why;
        self.with_plot(f)
    }

    /// LBR, demoted when its window's last quarter no longer rises.
    fn lbr_still_rising(&self) -> Finding {
        let s = self.settings;
        let mut f = lbr_finding(self.t, self.y, self.input, self.segment, self.segments, s);
        let Some(fit) = f.fit else { return f };
        if f.verdict == Verdict::NoTrend || fit.slope <= 0.0 {
            return f;
        }
        let jitter = s.min_growth(fit.fitted_start()) / 8.0;
        let Some((tail_slope, tail_span)) =
            growth_stopped(self.t, self.y, fit.points, fit.slope, jitter)
        else {
            return f;
        };
        f.verdict = Verdict::NoTrend;
        f.time_to_limit_s = None;
        f.plot = None;
        f.why = format!(
            "{} grew {} over the last {} (R² {:.3}) but only {} over its last {}: \
             growth has stopped (a warm-up or a cache filling up), not a leak",
            self.input.metric,
            fmt_rate(fit.slope),
            fmt_duration(fit.span_s()),
            fit.r2,
            fmt_rate(tail_slope),
            fmt_duration(tail_span)
        );
        f
    }

    fn combined(&self) -> Finding {
        let c = self.cycles();
        if c.cyclic() {
            let saw = self.sawtooth(&c);
            if saw.verdict == Verdict::Leak {
                return saw;
            }
            let tr = self.trend();
            if tr.verdict == Verdict::Leak {
                return tr;
            }
            let mut saw = saw;
            if saw.verdict == Verdict::NoTrend {
                saw.why.push_str(
                    " (LBR is not used on a cyclic series: it would see only the last ramp)",
                );
            }
            return saw;
        }
        let lbr = self.lbr_still_rising();
        if lbr.verdict == Verdict::Leak {
            return lbr;
        }
        let tr = self.trend();
        if tr.verdict > lbr.verdict {
            tr
        } else {
            lbr
        }
    }
}

/// "p = 0.003" or "p < 1e-6".
fn fmt_p(p: f64) -> String {
    if p < 1e-6 {
        "p < 1e-6".into()
    } else if p < 0.001 {
        format!("p = {p:.1e}")
    } else {
        format!("p = {p:.3}")
    }
}
