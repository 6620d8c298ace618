//! Phase attribution of a stored recording: the markers, and the series of
//! each process the analysis found growing, for [`crate::analyse::phases`].

use crate::analyse::phases::{attribute, phases_from_markers, ProcessPhases};
use crate::analyse::{Analysis, Verdict};
use crate::store::{Recording, StoreError};

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
        let same_pid = rec.processes_with_pid(r.process.id.pid)?;
        let Some(p) = same_pid.iter().find(|p| p.id == r.process.id) else {
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
