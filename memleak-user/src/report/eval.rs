//! `memleak eval`'s scores as text.

use crate::analyse::eval::{Labels, ModelScore};
use crate::analyse::units::fmt_duration;

fn opt(v: Option<f64>) -> String {
    v.map_or("-".into(), |x| format!("{x:.2}"))
}

/// The scores as text: a summary table, then every case.
pub fn render(labels: &Labels, scores: &[ModelScore]) -> String {
    let mut out = String::new();
    out.push_str(&format!(
        "memleak eval: {} labelled cases ({} leak, {} no-leak){}\n\n",
        labels.cases.len(),
        labels.cases.values().filter(|c| c.leak).count(),
        labels.cases.values().filter(|c| !c.leak).count(),
        labels
            .scale
            .as_deref()
            .map(|s| format!(", scale {s}"))
            .unwrap_or_default()
    ));
    out.push_str("  MODEL     PRECISION  RECALL    F1  TP FP FN TN  MEDIAN FIRST ALERT  FALSE POSITIVES / MISSED\n");
    for s in scores {
        let fps: Vec<&str> = s
            .cases
            .iter()
            .filter(|c| !c.leak && c.flagged)
            .map(|c| c.case.as_str())
            .collect();
        let missed: Vec<&str> = s
            .cases
            .iter()
            .filter(|c| c.leak && !c.flagged)
            .map(|c| c.case.as_str())
            .collect();
        out.push_str(&format!(
            "  {:<8} {:>10} {:>7} {:>5} {:>3} {:>2} {:>2} {:>2}  {:>18}  FP: {}; missed: {}\n",
            s.model.name(),
            opt(s.precision),
            opt(s.recall),
            opt(s.f1),
            s.tp,
            s.fp,
            s.fn_,
            s.tn,
            s.median_first_alert_s.map_or("-".into(), fmt_duration),
            if fps.is_empty() {
                "none".into()
            } else {
                fps.join(", ")
            },
            if missed.is_empty() {
                "none".into()
            } else {
                missed.join(", ")
            },
        ));
    }
    for s in scores {
        out.push_str(&format!("\nmodel {}:\n", s.model.name()));
        for c in &s.cases {
            let mark = match (c.leak, c.flagged) {
                (true, true) => "TP",
                (false, false) => "TN",
                (false, true) => "FP",
                (true, false) => "FN",
            };
            out.push_str(&format!(
                "  {mark} {:<16} {:<8} {}{}\n",
                c.case,
                if c.leak { "leak" } else { "no-leak" },
                c.first_alert_s
                    .map(|t| format!("first alert after {}; ", fmt_duration(t)))
                    .unwrap_or_default(),
                if c.processes == 0 {
                    "no process of this name in the recording".to_string()
                } else {
                    c.why
                        .clone()
                        .unwrap_or_else(|| "not judged (too short)".into())
                }
            ));
        }
    }
    out
}
