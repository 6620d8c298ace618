//! The "phases" part of reports: for each flagged process, which marked
//! phases (tests) ran while it grew and how much each saw
//! ([`crate::analyse::phases`]).

use crate::analyse::phases::ProcessPhases;
use crate::analyse::units::{fmt_bytes, fmt_duration};

use super::{printable, Format};
use crate::analyse::Analysis;

/// At most this many phases per process in the table (all are in JSON).
const TABLE_PHASES: usize = 10;

/// Renders `a` as `format` with the phase attribution: a section after the
/// table, a `phases` array in JSON; other formats are unchanged.
pub fn render(a: &Analysis, format: Format, phases: &[ProcessPhases]) -> String {
    let base = super::render(a, format);
    if phases.is_empty() {
        return base;
    }
    match format {
        Format::Table => base + &render_table(phases),
        Format::Json => add_to_json(&base, phases),
        _ => base,
    }
}

/// A text section for the table report ("" when there is nothing).
pub fn render_table(all: &[ProcessPhases]) -> String {
    let mut out = String::new();
    for p in all {
        out.push_str(&format!(
            "memleak: phases while pid {} ({}) {} grew ({}..{}):\n",
            p.pid,
            printable(&p.comm),
            p.metric,
            fmt_duration(p.window_start_s),
            fmt_duration(p.window_end_s)
        ));
        for g in p.phases.iter().take(TABLE_PHASES) {
            let sign = if g.growth_bytes < 0.0 { "-" } else { "+" };
            out.push_str(&format!(
                "  {sign}{:>10}  {:>8}  {}\n",
                fmt_bytes(g.growth_bytes.abs()),
                fmt_duration(g.overlap_s),
                printable(&g.name)
            ));
        }
        if p.phases.len() > TABLE_PHASES {
            out.push_str(&format!(
                "  ... {} more (see --format json)\n",
                p.phases.len() - TABLE_PHASES
            ));
        }
    }
    out
}

/// Adds `"phases": [...]` to a JSON report (optional field of schema
/// version 1). Returns the input unchanged when it is not a JSON object.
pub fn add_to_json(report: &str, all: &[ProcessPhases]) -> String {
    let Ok(serde_json::Value::Object(mut map)) = serde_json::from_str(report) else {
        return report.to_string();
    };
    let Ok(v) = serde_json::to_value(all) else {
        return report.to_string();
    };
    map.insert("phases".into(), v);
    let mut s = serde_json::to_string_pretty(&serde_json::Value::Object(map))
        .unwrap_or_else(|_| report.to_string());
    s.push('\n');
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analyse::phases::{PhaseGrowth, ProcessPhases};
    use crate::analyse::Metric;

    fn sample() -> Vec<ProcessPhases> {
        vec![ProcessPhases {
            pid: 42,
            start_ns: 7,
            comm: "python3".into(),
            metric: Metric::Rss,
            window_start_s: 3.0,
            window_end_s: 30.0,
            phases: vec![PhaseGrowth {
                name: "test_a.py::test_leaky".into(),
                start_s: 10.0,
                end_s: Some(20.0),
                overlap_s: 10.0,
                growth_bytes: 100.0 * 1048576.0,
            }],
        }]
    }

    #[test]
    fn table_names_the_phase_and_its_growth() {
        let t = render_table(&sample());
        assert!(t.contains("pid 42 (python3) rss grew"), "{t}");
        assert!(t.contains("test_a.py::test_leaky"), "{t}");
        assert!(t.contains("+"), "{t}");
        assert_eq!(render_table(&[]), "");
    }

    #[test]
    fn json_gets_a_phases_array() {
        let j = add_to_json("{\"schema_version\": 1}", &sample());
        let v: serde_json::Value = serde_json::from_str(&j).unwrap();
        assert_eq!(v["phases"][0]["pid"], 42);
        assert_eq!(v["phases"][0]["metric"], "rss");
        assert_eq!(v["phases"][0]["phases"][0]["name"], "test_a.py::test_leaky");
    }
}
