//! Phase attribution: which marked phases (tests) ran while a flagged
//! process's memory grew, and how much it grew during each.
//!
//! Phases come from the recording's `markers` table (the `MEMLEAK_MARKERS`
//! protocol: `begin NAME` / `end NAME`; see docs/markers.md). A `begin`
//! without its `end` lasts to the end of the recording. For every process
//! whose most urgent finding is a leak or growing, the growth window is that
//! finding's fitted window; each phase overlapping it gets the growth of the
//! process's (held, densified) series between the overlap's start and end.
//!
//! Markers carry no process: attribution is by time. With one harness
//! process (pytest, `cargo test`) that is exact; with parallel tests it says
//! which tests were *running* while memory grew.

use serde::Serialize;

use super::{Analysis, Metric, Verdict};
use crate::store::{Recording, StoreError};

/// A `begin`..`end` interval, seconds since the recording's start.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Phase {
    pub name: String,
    pub start_s: f64,
    /// `None`: never ended (the harness died, or the recording stopped first).
    pub end_s: Option<f64>,
}

/// How much one phase saw a process grow.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct PhaseGrowth {
    pub name: String,
    pub start_s: f64,
    pub end_s: Option<f64>,
    /// Seconds of the phase inside the growth window.
    pub overlap_s: f64,
    /// Change of the metric across that overlap (bytes; negative: shrank).
    pub growth_bytes: f64,
}

/// Phase attribution of one flagged (leak or growing) process.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ProcessPhases {
    pub pid: u32,
    pub start_ns: u64,
    pub comm: String,
    pub metric: Metric,
    /// The growth window (the chosen fit), seconds since the recording's start.
    pub window_start_s: f64,
    pub window_end_s: f64,
    /// Overlapping phases, the largest growth first.
    pub phases: Vec<PhaseGrowth>,
}

/// Pairs `begin`/`end` markers by name (nested and repeated names are
/// fine: an `end` closes the latest open phase of that name). `mark`
/// events are not phases.
pub fn phases_from_markers(markers: &[(f64, String, String)]) -> Vec<Phase> {
    let mut out: Vec<Phase> = Vec::new();
    for (t, kind, name) in markers {
        match kind.as_str() {
            "begin" => out.push(Phase {
                name: name.clone(),
                start_s: *t,
                end_s: None,
            }),
            "end" => {
                if let Some(p) = out
                    .iter_mut()
                    .rev()
                    .find(|p| p.end_s.is_none() && p.name == *name)
                {
                    p.end_s = Some(*t);
                }
            }
            _ => {}
        }
    }
    out
}

/// Value of a held (step) series at `at`: the last point at or before it
/// (the first point before the series starts).
fn value_at(t: &[f64], y: &[f64], at: f64) -> Option<f64> {
    if t.is_empty() {
        return None;
    }
    let i = t.partition_point(|&x| x <= at);
    Some(y[i.saturating_sub(1)])
}

/// Growth of `(t, y)` during each phase overlapping `[w0, w1]`, the
/// largest growth first. Phases without overlap are left out.
pub fn attribute(t: &[f64], y: &[f64], w0: f64, w1: f64, phases: &[Phase]) -> Vec<PhaseGrowth> {
    let mut out: Vec<PhaseGrowth> = phases
        .iter()
        .filter_map(|p| {
            let a = p.start_s.max(w0);
            let b = p.end_s.unwrap_or(f64::INFINITY).min(w1);
            if b <= a {
                return None;
            }
            let growth = value_at(t, y, b)? - value_at(t, y, a)?;
            Some(PhaseGrowth {
                name: p.name.clone(),
                start_s: p.start_s,
                end_s: p.end_s,
                overlap_s: b - a,
                growth_bytes: growth,
            })
        })
        .collect();
    out.sort_by(|a, b| b.growth_bytes.total_cmp(&a.growth_bytes));
    out
}

/// Attribution for every leak or growing process of `analysis`, read from
/// `rec` (the recording it was made from). Empty without markers.
pub fn for_analysis(
    rec: &Recording,
    analysis: &Analysis,
) -> Result<Vec<ProcessPhases>, StoreError> {
    let phases = phases_from_markers(&rec.markers()?);
    if phases.is_empty() {
        return Ok(Vec::new());
    }
    let mut out = Vec::new();
    for r in &analysis.results {
        if r.verdict < Verdict::Growing {
            continue;
        }
        let Some(f) = r.top() else { continue };
        let Some(fit) = f.fit else { continue };
        let Some(p) = rec.processes.iter().find(|p| p.id == r.process.id) else {
            continue;
        };
        let series = rec.series(p)?;
        let y: Vec<f64> = series.mem.iter().map(|m| f.metric.of(m)).collect();
        let got = attribute(&series.t, &y, fit.t_start, fit.t_end, &phases);
        if got.is_empty() {
            continue;
        }
        out.push(ProcessPhases {
            pid: r.process.id.pid,
            start_ns: r.process.id.start_ns,
            comm: r.process.comm.clone(),
            metric: f.metric,
            window_start_s: fit.t_start,
            window_end_s: fit.t_end,
            phases: got,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(t: f64, k: &str, n: &str) -> (f64, String, String) {
        (t, k.into(), n.into())
    }

    #[test]
    fn pairs_begin_and_end_by_name() {
        let p = phases_from_markers(&[
            m(1.0, "begin", "a"),
            m(2.0, "mark", "x"),
            m(3.0, "end", "a"),
            m(3.0, "begin", "b"),
            m(4.0, "begin", "c"),
            m(6.0, "end", "c"),
            m(7.0, "end", "nothing-open"),
        ]);
        assert_eq!(p.len(), 3);
        assert_eq!((p[0].start_s, p[0].end_s), (1.0, Some(3.0)));
        assert_eq!((p[1].name.as_str(), p[1].end_s), ("b", None));
        assert_eq!(p[2].end_s, Some(6.0));
    }

    #[test]
    fn growth_goes_to_the_phase_that_ran_while_memory_rose() {
        // Flat at 100 during "stable" (0..10 s), +10/s during "leaky"
        // (10..20 s), flat again during "after" (20..30 s, never ended).
        let t: Vec<f64> = (0..=30).map(f64::from).collect();
        let y: Vec<f64> = t
            .iter()
            .map(|&x| 100.0 + 10.0 * (x - 10.0).clamp(0.0, 10.0))
            .collect();
        let phases = phases_from_markers(&[
            m(0.0, "begin", "stable"),
            m(10.0, "end", "stable"),
            m(10.0, "begin", "leaky"),
            m(20.0, "end", "leaky"),
            m(20.0, "begin", "after"),
            m(40.0, "begin", "outside"),
        ]);
        let g = attribute(&t, &y, 5.0, 30.0, &phases);
        let names: Vec<_> = g.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(names, ["leaky", "stable", "after"]);
        assert_eq!(g[0].growth_bytes, 100.0);
        assert_eq!(g[0].overlap_s, 10.0);
        assert_eq!(g[1].growth_bytes, 0.0);
        assert_eq!(g[1].overlap_s, 5.0);
        assert_eq!(g[2].overlap_s, 10.0);
    }
}
