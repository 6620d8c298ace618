//! JSON report, schema `report/schema/report.schema.json`.
//!
//! Versioning: `schema_version` is 1. Adding optional fields keeps the
//! version; renaming, removing or changing the meaning of a field bumps it.
//! Numbers that cannot be computed are `null`, never NaN. Sizes are bytes,
//! times are seconds (process start times: ns since boot, as recorded).

use serde::Serialize;

use crate::analyse::{Analysis, Finding, ProcessRef, Settings};

/// Version of the JSON report format.
pub const SCHEMA_VERSION: u32 = 1;

/// The JSON Schema (draft 2020-12) the output follows.
pub const SCHEMA: &str = include_str!("schema/report.schema.json");

use super::phases::Marked;
use crate::analyse::phases::{ProcessPhases, TestVerdict};

#[derive(Serialize)]
struct Report<'a> {
    schema_version: u32,
    tool: Tool,
    recording: Recording<'a>,
    settings: &'a Settings,
    summary: Summary,
    processes: Vec<Process<'a>>,
    skipped: Vec<Skip<'a>>,
    /// Marked phases during each flagged process's growth (optional in
    /// schema version 1: absent without markers).
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    phases: &'a [ProcessPhases],
    /// Kept memory per marked test (absent without markers).
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    tests: &'a [TestVerdict],
    /// Code paths that touched new memory first (`--locate`; absent
    /// without it).
    #[serde(skip_serializing_if = "Option::is_none")]
    located: Option<crate::report::located::JsonLocated<'a>>,
}

#[derive(Serialize)]
struct Tool {
    name: &'static str,
    version: &'static str,
}

#[derive(Serialize)]
struct Recording<'a> {
    path: String,
    command: Option<&'a str>,
    sampler: &'a str,
    host: &'a str,
    interval_s: Option<f64>,
    duration_s: Option<f64>,
    exit_code: Option<i32>,
    processes: usize,
}

#[derive(Serialize)]
struct Summary {
    analysed: usize,
    leaks: usize,
    grew_until_exit: usize,
    growing: usize,
    skipped: usize,
    skipped_by_reason: std::collections::BTreeMap<&'static str, usize>,
}

#[derive(Serialize)]
struct Proc<'a> {
    pid: u32,
    start_ns: u64,
    ppid: u32,
    comm: &'a str,
    cmdline: Option<&'a str>,
    exit_code: Option<i32>,
}

impl<'a> From<&'a ProcessRef> for Proc<'a> {
    fn from(p: &'a ProcessRef) -> Self {
        Proc {
            pid: p.id.pid,
            start_ns: p.id.start_ns,
            ppid: p.ppid,
            comm: &p.comm,
            cmdline: p.cmdline.as_deref(),
            exit_code: p.exit_code,
        }
    }
}

#[derive(Serialize)]
struct Process<'a> {
    #[serde(flatten)]
    process: Proc<'a>,
    verdict: &'static str,
    observed_s: Option<f64>,
    end: crate::analyse::life::ProcessEnd,
    released_at_exit_bytes: Option<f64>,
    findings: Vec<FindingOut<'a>>,
}

#[derive(Serialize)]
struct FindingOut<'a> {
    model: &'static str,
    metric: &'static str,
    verdict: &'static str,
    why: &'a str,
    slope_bytes_per_s: Option<f64>,
    r2: Option<f64>,
    best_r2: Option<f64>,
    window_points: Option<usize>,
    window_s: Option<f64>,
    window_start_s: Option<f64>,
    window_end_s: Option<f64>,
    growth_bytes: Option<f64>,
    fitted_last_bytes: Option<f64>,
    last_value_bytes: Option<f64>,
    limit_bytes: Option<f64>,
    limit_source: &'static str,
    time_to_limit_s: Option<f64>,
    segment: usize,
    segments: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    p_value: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    cycles: Option<usize>,
    /// Highest value over the process's recorded life.
    peak_bytes: Option<f64>,
    /// What a `leak` verdict rests on; `null` otherwise.
    evidence: Option<&'static str>,
}

#[derive(Serialize)]
struct Skip<'a> {
    #[serde(flatten)]
    process: Proc<'a>,
    reason: &'static str,
    detail: String,
}

fn num(v: f64) -> Option<f64> {
    v.is_finite().then_some(v)
}

fn finding(f: &Finding) -> FindingOut<'_> {
    let fit = f.fit.as_ref();
    FindingOut {
        model: f.model.name(),
        metric: f.metric.name(),
        verdict: f.verdict.name(),
        why: &f.why,
        slope_bytes_per_s: fit.and_then(|w| num(w.slope)),
        r2: fit.and_then(|w| num(w.r2)),
        best_r2: num(f.best_r2),
        window_points: fit.map(|w| w.points),
        window_s: fit.and_then(|w| num(w.span_s())),
        window_start_s: fit.and_then(|w| num(w.t_start)),
        window_end_s: fit.and_then(|w| num(w.t_end)),
        growth_bytes: fit.and_then(|w| num(w.growth())),
        fitted_last_bytes: fit.and_then(|w| num(w.fitted_end)),
        last_value_bytes: num(f.last_value),
        limit_bytes: f.limit.bytes.and_then(num),
        limit_source: f.limit.source.name(),
        time_to_limit_s: f.time_to_limit_s.and_then(num),
        segment: f.segment,
        segments: f.segments,
        p_value: f.p_value.and_then(num),
        cycles: f.cycles,
        peak_bytes: f.peak.and_then(num),
        evidence: f.evidence.map(|e| e.name()),
    }
}

/// Where `report` breaks the schema, one line each (for tests).
#[cfg(test)]
pub(crate) fn schema_errors(report: &serde_json::Value) -> Vec<String> {
    let schema: serde_json::Value = serde_json::from_str(SCHEMA).unwrap();
    let validator = jsonschema::validator_for(&schema).expect("schema is valid");
    validator
        .iter_errors(report)
        .map(|e| format!("{} at {}", e, e.instance_path()))
        .collect()
}

/// Renders the report as pretty-printed JSON (ends with a newline).
pub fn render(a: &Analysis) -> String {
    render_marked(a, &Marked::default())
}

/// [`render`] with what the recording's markers add: the `phases` and
/// `tests` arrays.
pub fn render_marked(a: &Analysis, marked: &Marked) -> String {
    use crate::analyse::Verdict;
    let rec = &a.recording;
    let report = Report {
        schema_version: SCHEMA_VERSION,
        tool: Tool {
            name: "memleak",
            version: env!("CARGO_PKG_VERSION"),
        },
        recording: Recording {
            path: rec.path.display().to_string(),
            command: rec.command.as_deref(),
            sampler: &rec.sampler,
            host: &rec.host,
            interval_s: num(rec.interval_s),
            duration_s: num(rec.duration_s),
            exit_code: rec.exit_code,
            processes: rec.processes,
        },
        settings: &a.settings,
        summary: Summary {
            analysed: a.results.len(),
            leaks: a.count(Verdict::Leak),
            grew_until_exit: a.count(Verdict::GrewUntilExit),
            growing: a.count(Verdict::Growing),
            skipped: a.skipped_total(),
            skipped_by_reason: a.skip_counts().into_iter().collect(),
        },
        processes: a
            .results
            .iter()
            .map(|r| Process {
                process: (&r.process).into(),
                verdict: r.verdict.name(),
                observed_s: num(r.observed_s),
                end: r.end,
                released_at_exit_bytes: r.released_at_exit.and_then(num),
                findings: r.findings.iter().map(finding).collect(),
            })
            .collect(),
        skipped: a
            .skipped
            .iter()
            .map(|s| Skip {
                process: (&s.process).into(),
                reason: s.reason.kind(),
                detail: s.reason.to_string(),
            })
            .collect(),
        phases: &marked.processes,
        tests: &marked.tests,
        located: (!marked.located.stacks.is_empty()).then(|| (&marked.located).into()),
    };
    // Serialising these plain structs cannot fail (string keys, no NaN).
    let mut s = serde_json::to_string_pretty(&report).unwrap_or_else(|e| {
        format!("{{\"schema_version\": {SCHEMA_VERSION}, \"error\": \"{e}\"}}")
    });
    s.push('\n');
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::load::tests::tiny_analysis;

    #[test]
    fn output_validates_against_the_schema() {
        let a = tiny_analysis();
        let out: serde_json::Value = serde_json::from_str(&render(&a)).unwrap();
        let errors = schema_errors(&out);
        assert!(errors.is_empty(), "{errors:#?}");
        assert_eq!(out["schema_version"], 1);
        assert_eq!(out["summary"]["leaks"], 1);
        assert_eq!(out["processes"][0]["pid"], 100);
        assert_eq!(out["processes"][0]["comm"], "leaky<&>");
        assert_eq!(out["processes"][0]["findings"][0]["verdict"], "leak");
        assert_eq!(out["skipped"][0]["reason"], "too_short");
    }

    #[test]
    fn schema_rejects_wrong_documents() {
        let schema: serde_json::Value = serde_json::from_str(SCHEMA).unwrap();
        let validator = jsonschema::validator_for(&schema).unwrap();
        let mut out: serde_json::Value = serde_json::from_str(&render(&tiny_analysis())).unwrap();
        assert!(validator.is_valid(&out));
        out["schema_version"] = 2.into();
        assert!(!validator.is_valid(&out));
        out["schema_version"] = 1.into();
        out["processes"][0]["verdict"] = "maybe".into();
        assert!(!validator.is_valid(&out));
    }
}
