//! A hand-written SVG plot of one finding: memory over time (the analysed,
//! resampled segment), the chosen window shaded, the fitted line over it.

use std::fmt::Write;

use super::escape_xml as esc;
use crate::analyse::units::{fmt_bytes, fmt_duration, fmt_rate};
use crate::analyse::{Finding, ProcessRef};

const W: f64 = 760.0;
const H: f64 = 340.0;
const LEFT: f64 = 84.0;
const RIGHT: f64 = 20.0;
const TOP: f64 = 48.0;
const BOTTOM: f64 = 44.0;
/// At most this many polyline vertices (the series is decimated by
/// min/max per pixel column so spikes stay visible).
const MAX_VERTICES: usize = 1400;

/// Renders the plot, or `None` when the finding has no plot data or fit.
pub fn render(p: &ProcessRef, f: &Finding) -> Option<String> {
    let plot = f.plot.as_ref()?;
    let fit = f.fit?;
    let pts: Vec<(f64, f64)> = plot
        .t
        .iter()
        .zip(&plot.y)
        .filter(|(t, y)| t.is_finite() && y.is_finite())
        .map(|(&t, &y)| (t, y))
        .collect();
    if pts.len() < 2 {
        return None;
    }
    let (t0, t1) = (pts[0].0, pts[pts.len() - 1].0);
    let fit_start = fit.fitted_start();
    let mut lo = pts
        .iter()
        .map(|p| p.1)
        .fold(f64::INFINITY, f64::min)
        .min(fit_start);
    let mut hi = pts
        .iter()
        .map(|p| p.1)
        .fold(f64::NEG_INFINITY, f64::max)
        .max(fit.fitted_end);
    if hi <= lo {
        hi = lo + 1.0;
    }
    let pad = (hi - lo) * 0.05;
    lo = (lo - pad).max(0.0);
    hi += pad;
    let tspan = if t1 > t0 { t1 - t0 } else { 1.0 };
    let pw = W - LEFT - RIGHT;
    let ph = H - TOP - BOTTOM;
    let x = |t: f64| LEFT + (t - t0) / tspan * pw;
    let y = |v: f64| TOP + ph - (v - lo) / (hi - lo) * ph;

    let mut s = String::new();
    let _ = writeln!(
        s,
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{W}\" height=\"{H}\" viewBox=\"0 0 {W} {H}\" font-family=\"sans-serif\" font-size=\"12\">"
    );
    let title = format!("{} (pid {}): {}", p.comm, p.id.pid, f.metric.name());
    let _ = writeln!(s, "<title>{}</title>", esc(&title));
    let _ = writeln!(s, "<rect width=\"{W}\" height=\"{H}\" fill=\"#ffffff\"/>");
    let _ = writeln!(
        s,
        "<text x=\"{LEFT}\" y=\"20\" font-size=\"14\" font-weight=\"bold\">{}</text>",
        esc(&title)
    );
    let subtitle = format!(
        "{} over {}, R² {:.3}; limit {}",
        fmt_rate(fit.slope),
        fmt_duration(fit.span_s()),
        fit.r2,
        f.time_to_limit_s
            .map(|t| format!("in {}", fmt_duration(t)))
            .unwrap_or_else(|| "not projected".into())
    );
    let _ = writeln!(
        s,
        "<text x=\"{LEFT}\" y=\"37\" fill=\"#555555\">{}</text>",
        esc(&subtitle)
    );
    // Window.
    let (wx0, wx1) = (x(fit.t_start.max(t0)), x(fit.t_end.min(t1)));
    let _ = writeln!(
        s,
        "<rect x=\"{wx0:.1}\" y=\"{TOP}\" width=\"{:.1}\" height=\"{ph}\" fill=\"#fdd9a8\" fill-opacity=\"0.6\"><title>fitted window: {} points</title></rect>",
        (wx1 - wx0).max(0.0),
        fit.points
    );
    // Grid and axes.
    for i in 0..=4 {
        let v = lo + (hi - lo) * i as f64 / 4.0;
        let yy = y(v);
        let _ = writeln!(
            s,
            "<line x1=\"{LEFT}\" y1=\"{yy:.1}\" x2=\"{:.1}\" y2=\"{yy:.1}\" stroke=\"#e0e0e0\"/><text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">{}</text>",
            W - RIGHT,
            LEFT - 6.0,
            yy + 4.0,
            esc(&fmt_bytes(v))
        );
        let t = t0 + tspan * i as f64 / 4.0;
        let _ = writeln!(
            s,
            "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{t:.0} s</text>",
            x(t),
            H - BOTTOM + 18.0
        );
    }
    let _ = writeln!(
        s,
        "<rect x=\"{LEFT}\" y=\"{TOP}\" width=\"{pw}\" height=\"{ph}\" fill=\"none\" stroke=\"#888888\"/>"
    );
    let _ = writeln!(
        s,
        "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\" fill=\"#555555\">time since the recording started</text>",
        LEFT + pw / 2.0,
        H - 6.0
    );
    // Data, decimated.
    let mut poly = String::new();
    let stride = pts.len().div_ceil(MAX_VERTICES / 2).max(1);
    for chunk in pts.chunks(stride) {
        let (mut a, mut b) = (chunk[0], chunk[0]);
        for &q in chunk {
            if q.1 < a.1 {
                a = q;
            }
            if q.1 > b.1 {
                b = q;
            }
        }
        let (first, second) = if a.0 <= b.0 { (a, b) } else { (b, a) };
        let _ = write!(poly, "{:.1},{:.1} ", x(first.0), y(first.1));
        if stride > 1 {
            let _ = write!(poly, "{:.1},{:.1} ", x(second.0), y(second.1));
        }
    }
    let _ = writeln!(
        s,
        "<polyline fill=\"none\" stroke=\"#1f5fbf\" stroke-width=\"1.5\" points=\"{}\"/>",
        poly.trim_end()
    );
    // Fitted line.
    let _ = writeln!(
        s,
        "<line x1=\"{:.1}\" y1=\"{:.1}\" x2=\"{:.1}\" y2=\"{:.1}\" stroke=\"#d62728\" stroke-width=\"2\" stroke-dasharray=\"6 3\"><title>least-squares fit</title></line>",
        x(fit.t_start),
        y(fit_start),
        x(fit.t_end),
        y(fit.fitted_end)
    );
    s.push_str("</svg>\n");
    Some(s)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::load::tests::tiny_analysis;

    #[test]
    fn plot_is_well_formed_and_escaped() {
        let a = tiny_analysis();
        let r = &a.results[0];
        let svg = render(&r.process, r.top().unwrap()).unwrap();
        let doc = roxmltree::Document::parse(&svg).expect("well-formed SVG");
        assert_eq!(doc.root_element().tag_name().name(), "svg");
        assert!(svg.contains("leaky&lt;&amp;&gt;"));
        assert!(doc.descendants().any(|n| n.has_tag_name("polyline")));
        // No plot for a finding without data.
        assert!(render(&a.results[1].process, a.results[1].top().unwrap()).is_none());
    }
}
