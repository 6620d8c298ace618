//! The whole series of the processes an HTML report charts, and the
//! recording's marked phases: read here, drawn by `report::html`.

use crate::analyse::phases::{phases_from_markers, Phase};
use crate::analyse::{Analysis, Metric, Verdict};
use crate::sample::ProcId;
use crate::store::{Recording, StoreError};

/// Charts at most: the most urgent processes (results are sorted so);
/// each chart is some 30 KB of SVG.
pub const MAX_CHARTS: usize = 40;

/// The whole recorded series of one process, for its chart.
#[derive(Clone, Debug, PartialEq)]
pub struct ChartSeries {
    pub id: ProcId,
    /// Seconds since the recording's start.
    pub t: Vec<f64>,
    /// Metrics to draw, each as long as `t`.
    pub columns: Vec<(Metric, Vec<f64>)>,
}

/// What the charts show beyond the analysis: the whole series and the
/// marked phases of a recording. Other sources (Prometheus, directories)
/// give none: their charts show the analysed stretch of each leak.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Charts {
    pub series: Vec<ChartSeries>,
    pub phases: Vec<Phase>,
}

/// Reads, for each flagged or growing process of `analysis` (the first
/// [`MAX_CHARTS`]), its judged metric over its whole recorded life, and rss
/// beside it when that is not what was judged (rss shows what a
/// process holds in all; vm is drawn only when judged, since address
/// space dwarfs resident memory and would flatten the other lines).
pub fn for_analysis(rec: &Recording, analysis: &Analysis) -> Result<Charts, StoreError> {
    let mut series = Vec::new();
    let charted = analysis
        .results
        .iter()
        .filter(|r| r.verdict >= Verdict::Growing)
        .take(MAX_CHARTS);
    for r in charted {
        let Some(f) = r.top() else { continue };
        let same_pid = rec.processes_with_pid(r.process.id.pid)?;
        let Some(p) = same_pid.iter().find(|p| p.id == r.process.id) else {
            continue;
        };
        let s = rec.series(p)?;
        let mut metrics = vec![f.metric];
        if f.metric != Metric::Rss {
            metrics.push(Metric::Rss);
        }
        series.push(ChartSeries {
            id: r.process.id,
            columns: metrics
                .into_iter()
                .map(|m| (m, s.mem.iter().map(|x| m.of(x)).collect()))
                .collect(),
            t: s.t,
        });
    }
    Ok(Charts {
        series,
        phases: phases_from_markers(&rec.markers()?),
    })
}
