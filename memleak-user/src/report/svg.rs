//! A hand-written SVG chart of one flagged or growing process, inlined in
//! the HTML report (no script, nothing fetched):
//!
//! - **history**: the whole recorded series (the judged metric, and rss
//!   for context), marked phases (tests) as shaded, named bands, the
//!   fitted window shaded and its line drawn over it;
//! - **projection**: the fitted line carried on from the window to the
//!   memory limit, the horizon marked, so "reaches 8 GiB in 12 min" can be
//!   seen rather than only read.
//!
//! Times on the axis are wall clock (UTC) when the source says when it
//! started, else seconds since the start.

use std::fmt::Write;

use super::escape_xml as esc;
use crate::analyse::phases::Phase;
use crate::analyse::units::{fmt_bytes, fmt_duration, fmt_rate};
use crate::analyse::{Finding, Metric, ProcessRef, Verdict};

const W: f64 = 900.0;
const LEFT: f64 = 84.0;
const RIGHT: f64 = 24.0;
/// History panel: top edge and height.
const H_TOP: f64 = 70.0;
const H_H: f64 = 250.0;
/// Projection panel.
const P_TOP: f64 = 384.0;
const P_H: f64 = 140.0;
const H: f64 = 570.0;
/// At most this many polyline vertices per line (min/max per bucket, so
/// spikes stay visible): about one per pixel column, which keeps a report
/// of dozens of charts small.
const MAX_VERTICES: usize = 800;
/// Phases drawn at most (a long suite marks thousands of tests; past this
/// the bands would be narrower than a pixel anyway).
const MAX_BANDS: usize = 500;
/// Colours: the judged metric, other lines, the fit, the limit.
const C_MAIN: &str = "#1f5fbf";
const C_OTHER: &str = "#8a8a8a";
const C_FIT: &str = "#d62728";
const C_LIMIT: &str = "#7a0019";

/// What one chart shows.
pub struct Chart<'a> {
    pub process: &'a ProcessRef,
    pub finding: &'a Finding,
    /// Seconds since the start of the recording (or queried range).
    pub t: &'a [f64],
    /// The lines, the judged metric first; each as long as `t`.
    pub lines: Vec<(Metric, &'a [f64])>,
    pub phases: &'a [Phase],
    /// Wall clock (Unix seconds) at `t = 0`.
    pub start_unix: Option<f64>,
    pub horizon_s: f64,
}

/// Maps times to axis labels: wall clock when known.
struct Clock {
    start_unix: Option<f64>,
}

impl Clock {
    /// Tick positions (seconds since start) over `[t0, t1]`: round wall
    /// clock times (or round offsets), about six of them.
    fn ticks(&self, t0: f64, t1: f64) -> (Vec<f64>, f64) {
        const STEPS: [f64; 22] = [
            1.0, 2.0, 5.0, 10.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0, 900.0, 1800.0, 3600.0,
            7200.0, 10800.0, 21600.0, 43200.0, 86400.0, 172800.0, 604800.0, 2592000.0, 31536000.0,
        ];
        let span = (t1 - t0).max(1e-9);
        let step = STEPS
            .iter()
            .copied()
            .find(|s| span / s <= 7.0)
            .unwrap_or(span / 6.0);
        let origin = self.start_unix.unwrap_or(0.0);
        let first = ((t0 + origin) / step).ceil() * step - origin;
        let ticks = (0..64)
            .map(|i| first + step * i as f64)
            .take_while(|&t| t <= t1 + 1e-9)
            .collect();
        (ticks, step)
    }

    /// `t` as a label at tick spacing `step`.
    fn label(&self, t: f64, step: f64) -> String {
        let Some(s0) = self.start_unix else {
            return format!("{} s", fmt_num(t));
        };
        let iso = crate::source::range::fmt_unix(s0 + t);
        // 2026-12-01T06:24:10Z
        if iso.len() < 19 {
            return iso;
        }
        match step {
            s if s >= 86400.0 => iso[5..10].to_string(),
            s if s >= 3600.0 * 6.0 => format!("{} {}", &iso[5..10], &iso[11..16]),
            s if s >= 60.0 => iso[11..16].to_string(),
            _ => iso[11..19].to_string(),
        }
    }

    /// The axis title: the date(s) covered, or what the numbers mean.
    fn title(&self, t0: f64, t1: f64) -> String {
        let Some(s0) = self.start_unix else {
            return "seconds since the recording started".into();
        };
        let (a, b) = (
            crate::source::range::fmt_unix(s0 + t0),
            crate::source::range::fmt_unix(s0 + t1),
        );
        let day = |s: &str| s.get(..10).unwrap_or(s).to_string();
        if day(&a) == day(&b) {
            format!("time (UTC), {}", day(&a))
        } else {
            format!("time (UTC), {} to {}", day(&a), day(&b))
        }
    }

    /// A moment for a sentence: `06:24:10 UTC`, or `+12 s`.
    fn moment(&self, t: f64) -> String {
        match self.start_unix {
            Some(s0) => {
                let iso = crate::source::range::fmt_unix(s0 + t);
                match iso.get(11..19) {
                    Some(hms) => format!("{hms} UTC"),
                    None => iso,
                }
            }
            None => format!("{} s", fmt_num(t)),
        }
    }
}

fn fmt_num(v: f64) -> String {
    if v.abs() >= 100.0 || v.fract() == 0.0 {
        format!("{v:.0}")
    } else {
        format!("{v:.1}")
    }
}

/// One panel's mapping from data to pixels.
struct Panel {
    top: f64,
    h: f64,
    t0: f64,
    t1: f64,
    lo: f64,
    hi: f64,
}

impl Panel {
    fn x(&self, t: f64) -> f64 {
        let span = if self.t1 > self.t0 {
            self.t1 - self.t0
        } else {
            1.0
        };
        LEFT + (t - self.t0) / span * (W - LEFT - RIGHT)
    }
    fn y(&self, v: f64) -> f64 {
        self.top + self.h - (v - self.lo) / (self.hi - self.lo) * self.h
    }
    fn right(&self) -> f64 {
        W - RIGHT
    }

    /// The times where the line `v(t) = v1 + slope (t - t1)` stays within
    /// the value range, from `[ta, tb]`: a fitted line starting below 0
    /// must not be drawn below the panel.
    fn clip(&self, ta: f64, tb: f64, v: impl Fn(f64) -> f64, slope: f64) -> (f64, f64) {
        if slope <= 0.0 || !slope.is_finite() {
            return (ta, tb);
        }
        let lo_t = tb - (v(tb) - self.lo) / slope;
        let hi_t = tb + (self.hi - v(tb)) / slope;
        (ta.max(lo_t).min(tb), tb.min(hi_t))
    }

    /// Round byte values for the grid: steps of 1, 2 or 5 × a power of
    /// ten of the binary unit the range is counted in (128 MiB, 2 GiB).
    fn byte_ticks(&self) -> Vec<f64> {
        let range = (self.hi - self.lo).max(1.0);
        let unit = [1.0, 1024.0, 1048576.0, 1073741824.0, 1099511627776.0]
            .into_iter()
            .rev()
            .find(|u| range / u >= 2.0)
            .unwrap_or(1.0);
        let step = [
            1.0, 2.0, 5.0, 10.0, 16.0, 25.0, 50.0, 64.0, 100.0, 128.0, 256.0, 512.0,
        ]
        .into_iter()
        .map(|m| m * unit)
        .find(|st| range / st <= 5.0)
        .unwrap_or(range / 4.0);
        let first = (self.lo / step).ceil() * step;
        (0..12)
            .map(|i| first + step * i as f64)
            .take_while(|v| *v <= self.hi)
            .collect()
    }

    /// Frame, horizontal grid with byte labels, time ticks with labels.
    fn axes(&self, s: &mut String, clock: &Clock, x_title: Option<&str>) {
        for v in self.byte_ticks() {
            let yy = self.y(v);
            let _ = writeln!(
                s,
                "<line x1=\"{LEFT}\" y1=\"{yy:.1}\" x2=\"{:.1}\" y2=\"{yy:.1}\" stroke=\"#e4e4e4\"/><text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">{}</text>",
                self.right(),
                LEFT - 6.0,
                yy + 4.0,
                esc(&fmt_bytes(v))
            );
        }
        let (ticks, step) = clock.ticks(self.t0, self.t1);
        for t in ticks {
            let xx = self.x(t);
            let _ = writeln!(
                s,
                "<line x1=\"{xx:.1}\" y1=\"{:.1}\" x2=\"{xx:.1}\" y2=\"{:.1}\" stroke=\"#888888\"/><text x=\"{xx:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{}</text>",
                self.top + self.h,
                self.top + self.h + 4.0,
                self.top + self.h + 17.0,
                esc(&clock.label(t, step))
            );
        }
        let _ = writeln!(
            s,
            "<rect x=\"{LEFT}\" y=\"{:.1}\" width=\"{:.1}\" height=\"{:.1}\" fill=\"none\" stroke=\"#888888\"/>",
            self.top,
            W - LEFT - RIGHT,
            self.h
        );
        if let Some(title) = x_title {
            let _ = writeln!(
                s,
                "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\" fill=\"#555555\">{}</text>",
                LEFT + (W - LEFT - RIGHT) / 2.0,
                self.top + self.h + 33.0,
                esc(title)
            );
        }
    }

    /// A polyline of `pts`, decimated by min/max per bucket.
    fn polyline(&self, pts: &[(f64, f64)], color: &str, width: f64, title: &str) -> String {
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
            let _ = write!(poly, "{:.1},{:.1} ", self.x(first.0), self.y(first.1));
            if stride > 1 {
                let _ = write!(poly, "{:.1},{:.1} ", self.x(second.0), self.y(second.1));
            }
        }
        format!(
            "<polyline fill=\"none\" stroke=\"{color}\" stroke-width=\"{width}\" stroke-linejoin=\"round\" points=\"{}\"><title>{}</title></polyline>\n",
            poly.trim_end(),
            esc(title)
        )
    }
}

/// Finite points of a line.
fn points(t: &[f64], y: &[f64]) -> Vec<(f64, f64)> {
    t.iter()
        .zip(y)
        .filter(|(t, y)| t.is_finite() && y.is_finite())
        .map(|(&t, &y)| (t, y))
        .collect()
}

/// Renders the chart, or `None` without a fit or two finite points.
pub fn render(c: &Chart<'_>) -> Option<String> {
    let f = c.finding;
    let fit = f.fit?;
    let lines: Vec<(Metric, Vec<(f64, f64)>)> = c
        .lines
        .iter()
        .map(|(m, y)| (*m, points(c.t, y)))
        .filter(|(_, p)| p.len() >= 2)
        .collect();
    let main = &lines.first()?.1;
    let clock = Clock {
        start_unix: c.start_unix,
    };

    // History: the whole series and the fit window.
    let t0 = main[0].0.min(fit.t_start);
    let t1 = main[main.len() - 1].0.max(fit.t_end);
    let all = lines.iter().flat_map(|(_, p)| p.iter().map(|q| q.1));
    let (mut lo, mut hi) = all.fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), v| {
        (a.min(v), b.max(v))
    });
    lo = lo.min(fit.fitted_start());
    hi = hi.max(fit.fitted_end);
    if hi <= lo {
        hi = lo + 1.0;
    }
    let pad = (hi - lo) * 0.08;
    let hist = Panel {
        top: H_TOP,
        h: H_H,
        t0,
        t1,
        lo: (lo - pad).max(0.0),
        hi: hi + pad,
    };

    let mut s = String::new();
    let title = format!(
        "{} (pid {}): {} {}",
        c.process.comm,
        c.process.id.pid,
        f.metric.name(),
        f.verdict.name().replace('_', " ")
    );
    let _ = writeln!(
        s,
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{W}\" height=\"{H}\" viewBox=\"0 0 {W} {H}\" font-family=\"sans-serif\" font-size=\"12\" role=\"img\">"
    );
    let _ = writeln!(s, "<title>{}</title>", esc(&title));
    let _ = writeln!(s, "<rect width=\"{W}\" height=\"{H}\" fill=\"#ffffff\"/>");
    let _ = writeln!(
        s,
        "<text x=\"{LEFT}\" y=\"20\" font-size=\"15\" font-weight=\"bold\">{}</text>",
        esc(&title)
    );
    let _ = writeln!(
        s,
        "<text x=\"{LEFT}\" y=\"38\" fill=\"#444444\">{}</text>",
        esc(&format!(
            "{} over the {} window, R² {:.3}; {}",
            fmt_rate(fit.slope),
            fmt_duration(fit.span_s()),
            fit.r2,
            match (f.time_to_limit_s, f.limit.bytes) {
                (Some(ttl), Some(l)) => format!(
                    "reaches {} ({}) in {}",
                    fmt_bytes(l),
                    f.limit.source.describe(),
                    fmt_duration(ttl)
                ),
                _ => "no limit reached at this rate".into(),
            }
        ))
    );
    legend(&mut s, &lines, !c.phases.is_empty());

    // Phase bands under everything else, names at their top when they fit.
    let visible: Vec<&Phase> = c
        .phases
        .iter()
        .filter(|p| p.start_s < t1 && p.end_s.unwrap_or(t1) > t0)
        .take(MAX_BANDS)
        .collect();
    for (i, p) in visible.iter().enumerate() {
        let (a, b) = (
            hist.x(p.start_s.max(t0)),
            hist.x(p.end_s.unwrap_or(t1).min(t1)),
        );
        let w = (b - a).max(0.5);
        let fill = if i % 2 == 0 { "#dfe7f7" } else { "#ece3f5" };
        let _ = write!(
            s,
            "<g><title>{}</title><rect x=\"{a:.1}\" y=\"{H_TOP}\" width=\"{w:.1}\" height=\"{H_H}\" fill=\"{fill}\" fill-opacity=\"0.75\" stroke=\"#ffffff\" stroke-width=\"0.5\"/>",
            esc(&format!(
                "{}: {} to {}",
                p.name,
                clock.moment(p.start_s),
                p.end_s
                    .map(|e| clock.moment(e))
                    .unwrap_or_else(|| "never ended".into())
            ))
        );
        // About 6.5 px per character at 11 px.
        let fits = ((w - 6.0) / 6.5).floor() as usize;
        if fits >= 4 {
            let name: String = if p.name.chars().count() > fits {
                let mut n: String = p.name.chars().take(fits - 1).collect();
                n.push('…');
                n
            } else {
                p.name.clone()
            };
            let _ = write!(
                s,
                "<text x=\"{:.1}\" y=\"{:.1}\" font-size=\"11\" fill=\"#333366\">{}</text>",
                a + 3.0,
                H_TOP + 13.0 + 12.0 * (i % 2) as f64,
                esc(&name)
            );
        }
        s.push_str("</g>\n");
    }
    // The grid, then the fitted window as a strip along the bottom with
    // dotted edges (a full-height fill would hide the phase bands), then
    // the lines and the fit over it.
    let x_title = clock.title(t0, t1);
    hist.axes(&mut s, &clock, Some(&x_title));
    let (wx0, wx1) = (hist.x(fit.t_start), hist.x(fit.t_end));
    let _ = writeln!(
        s,
        "<g><title>fitted window: {} points, {}</title><rect x=\"{wx0:.1}\" y=\"{:.1}\" width=\"{:.1}\" height=\"7\" fill=\"#f5a54a\"/><line x1=\"{wx0:.1}\" y1=\"{H_TOP}\" x2=\"{wx0:.1}\" y2=\"{:.1}\" stroke=\"#f5a54a\" stroke-width=\"1.5\" stroke-dasharray=\"2 3\"/><line x1=\"{wx1:.1}\" y1=\"{H_TOP}\" x2=\"{wx1:.1}\" y2=\"{:.1}\" stroke=\"#f5a54a\" stroke-width=\"1.5\" stroke-dasharray=\"2 3\"/></g>",
        fit.points,
        esc(&fmt_duration(fit.span_s())),
        H_TOP + H_H - 7.0,
        (wx1 - wx0).max(1.0),
        H_TOP + H_H,
        H_TOP + H_H
    );
    for (i, (m, p)) in lines.iter().enumerate().rev() {
        let (color, width) = if i == 0 {
            (C_MAIN, 1.8)
        } else {
            (C_OTHER, 1.2)
        };
        s.push_str(&hist.polyline(p, color, width, m.name()));
    }
    let fitted = |t: f64| fit.fitted_end + fit.slope * (t - fit.t_end);
    let (fa, fb) = hist.clip(fit.t_start, fit.t_end, fitted, fit.slope);
    let _ = writeln!(
        s,
        "<line x1=\"{:.1}\" y1=\"{:.1}\" x2=\"{:.1}\" y2=\"{:.1}\" stroke=\"{C_FIT}\" stroke-width=\"2\" stroke-opacity=\"0.9\" stroke-dasharray=\"7 4\"><title>least-squares fit</title></line>",
        hist.x(fa),
        hist.y(fitted(fa)),
        hist.x(fb),
        hist.y(fitted(fb))
    );

    projection(&mut s, c, &clock, main);
    s.push_str("</svg>\n");
    Some(s)
}

/// The legend line under the subtitle.
fn legend(s: &mut String, lines: &[(Metric, Vec<(f64, f64)>)], phases: bool) {
    // (line or box, colour, dashed, text)
    let mut items: Vec<(bool, &str, bool, String)> = lines
        .iter()
        .enumerate()
        .map(|(i, (m, _))| match i {
            0 => (true, C_MAIN, false, format!("{} (judged)", m.name())),
            _ => (true, C_OTHER, false, m.name().to_string()),
        })
        .collect();
    items.push((true, C_FIT, true, "fit and projection".into()));
    items.push((false, "#f5a54a", false, "fitted window".into()));
    if phases {
        items.push((false, "#dfe7f7", false, "marked phases (tests)".into()));
    }
    let mut x = LEFT;
    for (line, color, dashed, text) in items {
        if line {
            let dash = if dashed {
                " stroke-dasharray=\"5 2\""
            } else {
                ""
            };
            let _ = write!(
                s,
                "<line x1=\"{x:.1}\" y1=\"54\" x2=\"{:.1}\" y2=\"54\" stroke=\"{color}\" stroke-width=\"2\"{dash}/>",
                x + 18.0
            );
        } else {
            let _ = write!(
                s,
                "<rect x=\"{x:.1}\" y=\"48\" width=\"18\" height=\"11\" fill=\"{color}\"/>"
            );
        }
        let _ = write!(
            s,
            "<text x=\"{:.1}\" y=\"58\" fill=\"#333333\">{}</text>",
            x + 22.0,
            esc(&text)
        );
        x += 30.0 + 7.0 * text.chars().count() as f64;
    }
    s.push('\n');
}

/// The projection panel: from the fitted window to the limit (or the
/// horizon), with both marked.
fn projection(s: &mut String, c: &Chart<'_>, clock: &Clock, main: &[(f64, f64)]) {
    let f = c.finding;
    let Some(fit) = f.fit else { return };
    let horizon = c.horizon_s.max(1.0);
    let ttl = f.time_to_limit_s;
    // Show the limit crossing unless it is far past the horizon (then the
    // window would be a sliver): ten horizons at most.
    let ahead = match ttl {
        Some(t) => t.clamp(horizon, 10.0 * horizon),
        None => horizon,
    } * 1.06;
    let t0 = fit.t_start;
    let t1 = fit.t_end + ahead;
    let at = |t: f64| fit.fitted_end + fit.slope * (t - fit.t_end);
    let limit = f.limit.bytes.filter(|l| l.is_finite() && *l > 0.0);
    let window: Vec<(f64, f64)> = main
        .iter()
        .copied()
        .filter(|(t, _)| *t >= fit.t_start && *t <= fit.t_end)
        .collect();
    let top_value = [
        at(t1),
        limit.unwrap_or(0.0),
        window.iter().map(|p| p.1).fold(0.0, f64::max),
    ]
    .into_iter()
    .filter(|v| v.is_finite())
    .fold(1.0, f64::max);
    let p = Panel {
        top: P_TOP,
        h: P_H,
        t0,
        t1,
        lo: 0.0,
        hi: top_value * 1.08,
    };
    let _ = writeln!(
        s,
        "<text x=\"{LEFT}\" y=\"{:.1}\" font-size=\"13\" font-weight=\"bold\">{}</text>",
        P_TOP - 10.0,
        esc(&format!("Projection at {}", fmt_rate(fit.slope)))
    );
    // The horizon: from the last sample to `horizon` later.
    let (hx0, hx1) = (p.x(fit.t_end), p.x((fit.t_end + horizon).min(t1)));
    let _ = writeln!(
        s,
        "<rect x=\"{hx0:.1}\" y=\"{P_TOP}\" width=\"{:.1}\" height=\"{P_H}\" fill=\"#fff1c2\" fill-opacity=\"0.7\"><title>horizon: {}</title></rect>",
        (hx1 - hx0).max(0.0),
        esc(&fmt_duration(horizon))
    );
    p.axes(s, clock, None);
    // Labelled at the bottom (the limit's label is at the top), on the
    // side of the line that has room.
    let (hanchor, hdx) = if hx1 > W - 240.0 {
        ("end", -5.0)
    } else {
        ("start", 5.0)
    };
    let _ = writeln!(
        s,
        "<line x1=\"{hx1:.1}\" y1=\"{P_TOP}\" x2=\"{hx1:.1}\" y2=\"{:.1}\" stroke=\"#b08800\" stroke-width=\"1.5\"/><text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"{hanchor}\" fill=\"#7a5c00\">{}</text>",
        P_TOP + P_H,
        hx1 + hdx,
        P_TOP + P_H - 8.0,
        esc(&format!(
            "horizon {} ({})",
            fmt_duration(horizon),
            clock.moment(fit.t_end + horizon)
        ))
    );
    if let Some(l) = limit {
        let ly = p.y(l);
        let _ = writeln!(
            s,
            "<line x1=\"{LEFT}\" y1=\"{ly:.1}\" x2=\"{:.1}\" y2=\"{ly:.1}\" stroke=\"{C_LIMIT}\" stroke-width=\"1.5\"/><text x=\"{:.1}\" y=\"{:.1}\" fill=\"{C_LIMIT}\">{}</text>",
            p.right(),
            LEFT + 6.0,
            ly - 5.0,
            esc(&format!(
                "limit {} ({})",
                fmt_bytes(l),
                f.limit.source.describe()
            ))
        );
    }
    if !window.is_empty() {
        s.push_str(&p.polyline(&window, C_MAIN, 1.8, f.metric.name()));
    }
    // The fitted line from the window's start to the limit or the edge.
    let end_t = match ttl {
        Some(t) if fit.t_end + t <= t1 => fit.t_end + t,
        _ => t1,
    };
    let (fa, fb) = p.clip(fit.t_start, end_t, at, fit.slope);
    let _ = writeln!(
        s,
        "<line x1=\"{:.1}\" y1=\"{:.1}\" x2=\"{:.1}\" y2=\"{:.1}\" stroke=\"{C_FIT}\" stroke-width=\"2\" stroke-opacity=\"0.9\" stroke-dasharray=\"7 4\"><title>fitted line, extended</title></line>",
        p.x(fa),
        p.y(at(fa)),
        p.x(fb),
        p.y(at(fb))
    );
    let note = match (ttl, limit) {
        (Some(t), Some(_)) if fit.t_end + t <= t1 => {
            let (cx, cy) = (p.x(fit.t_end + t), p.y(at(fit.t_end + t)));
            let _ = writeln!(
                s,
                "<circle cx=\"{cx:.1}\" cy=\"{cy:.1}\" r=\"4.5\" fill=\"{C_FIT}\"/>"
            );
            Some(format!(
                "limit reached {} (in {})",
                clock.moment(fit.t_end + t),
                fmt_duration(t)
            ))
        }
        (Some(t), Some(_)) => Some(format!("limit in {}, off the chart →", fmt_duration(t))),
        _ => None,
    };
    if let Some(text) = note {
        // Right-aligned on the panel's title line: inside the panel it
        // would cross the rising line.
        let _ = writeln!(
            s,
            "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\" font-weight=\"bold\" fill=\"{C_FIT}\">{}</text>",
            W - RIGHT,
            P_TOP - 10.0,
            esc(&text)
        );
    }
    let _ = writeln!(
        s,
        "<text x=\"{LEFT}\" y=\"{:.1}\" fill=\"#555555\">{}</text>",
        H - 8.0,
        esc(&format!(
            "{}; {}",
            clock.title(t0, t1),
            match f.verdict {
                Verdict::Leak => "flagged: a leak",
                Verdict::GrewUntilExit => "grew until it exited by itself, not flagged",
                Verdict::Growing => "growing, not flagged",
                Verdict::NoTrend => "no trend",
            }
        ))
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::load::tests::tiny_analysis;

    fn chart_of(a: &crate::analyse::Analysis, i: usize, phases: &[Phase]) -> Option<String> {
        let r = &a.results[i];
        let f = r.top().unwrap();
        let plot = f.plot.as_ref()?;
        render(&Chart {
            process: &r.process,
            finding: f,
            t: &plot.t,
            lines: vec![(f.metric, &plot.y)],
            phases,
            start_unix: Some(1_764_570_000.0),
            horizon_s: 3600.0,
        })
    }

    #[test]
    fn chart_is_well_formed_escaped_and_marks_phases_and_the_limit() {
        let a = tiny_analysis();
        let phases = vec![
            Phase {
                name: "test_one<&>".into(),
                pid: None,
                start_s: 30.0,
                end_s: Some(70.0),
                inconclusive: false,
                cleared: false,
            },
            Phase {
                name: "unended".into(),
                pid: None,
                start_s: 80.0,
                end_s: None,
                inconclusive: false,
                cleared: false,
            },
        ];
        let svg = chart_of(&a, 0, &phases).unwrap();
        let doc = roxmltree::Document::parse(&svg).expect("well-formed SVG");
        assert_eq!(doc.root_element().tag_name().name(), "svg");
        assert!(svg.contains("leaky&lt;&amp;&gt;"));
        assert!(svg.contains("test_one&lt;&amp;&gt;"));
        assert!(svg.contains("never ended"));
        let lines = doc.descendants().filter(|n| n.has_tag_name("polyline"));
        assert_eq!(lines.count(), 2, "history and projection");
        // Wall-clock ticks (HH:MM:SS) and the date in the axis title.
        assert!(svg.contains("time (UTC), 2025-12-01"), "{svg}");
        assert!(svg.contains("horizon 60 min"), "{svg}");
        assert!(svg.contains("limit reached") || svg.contains("off the chart"));
        // Without a plot or fit there is no chart.
        assert!(chart_of(&a, 1, &[]).is_none());
    }

    #[test]
    fn ticks_fall_on_round_clock_times() {
        let clock = Clock {
            start_unix: Some(1_764_570_007.0),
        };
        let (ticks, step) = clock.ticks(0.0, 600.0);
        assert_eq!(step, 120.0);
        assert!(ticks
            .iter()
            .all(|t| ((t + 1_764_570_007.0) % 120.0).abs() < 1e-6));
        assert_eq!(clock.label(ticks[0], step).len(), 5, "HH:MM");
        let plain = Clock { start_unix: None };
        assert_eq!(plain.label(30.0, 10.0), "30 s");
    }
}
