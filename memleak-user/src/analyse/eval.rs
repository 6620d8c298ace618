//! Scoring the analyser on labelled recordings (`memleak eval`).
//!
//! A corpus directory holds recordings and a `labels.toml` (written by
//! `cargo xtask corpus`):
//!
//! ```toml
//! recording = "corpus.memleak"   # default recording of every case
//! [cases.steady-leak]
//! leak = true                    # the label
//! comm = "steady-leak"           # process name (default: the case name)
//! # recording = "other.memleak"  # optional, per case
//! # cmdline = "worker.py"        # optional: a substring of the command line
//! # why = "..."                  # optional: why the label is what it is
//! ```
//!
//! A case's processes are those whose name is `comm` (when given) and
//! whose recorded command line contains `cmdline` (when given); with
//! neither, the name must be the case name. `cmdline` tells apart cases
//! that run the same interpreter (every Python case is `python3`). A case
//! is **flagged** when any of its processes gets a leak verdict. Precision, recall and F1 count cases. The **time to first
//! alert** of a flagged leak case is the earliest cut point (the recording
//! analysed as if it had ended there, [`CUTS`] evenly spaced cuts) at which
//! it was flagged, measured from the case's first sample: each series is
//! loaded once and its prefixes analysed, so this stays cheap.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::life::ProcessEnd;
use super::{analyse_process, LoadedProcess, ModelChoice, Rule, Settings, Verdict};

/// Cut points per recording for the time to first alert.
pub const CUTS: usize = 20;

/// The label of one case of a labelled directory (`labels.toml`).
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct CaseLabel {
    pub leak: bool,
    pub comm: Option<String>,
    pub recording: Option<String>,
    pub command: Option<String>,
    pub about: Option<String>,
    /// A substring the recorded command line of the case's processes holds.
    pub cmdline: Option<String>,
    /// Why the label is what it is (for readers; not used in scoring).
    pub why: Option<String>,
}

impl CaseLabel {
    /// Whether a recorded process (`comm`, `cmdline`) belongs to the case
    /// called `name`: its name is `comm` when given, its command line
    /// holds `cmdline` when given, and with neither its name is `name`.
    pub fn matches(&self, name: &str, comm: &str, cmdline: Option<&str>) -> bool {
        let comm_ok = match (&self.comm, &self.cmdline) {
            (Some(want), _) => want == comm,
            (None, Some(_)) => true,
            (None, None) => name == comm,
        };
        comm_ok
            && self
                .cmdline
                .as_deref()
                .is_none_or(|want| cmdline.is_some_and(|c| c.contains(want)))
    }
}

/// The labels of a directory of cases.
#[derive(Clone, Debug, Deserialize, PartialEq)]
pub struct Labels {
    pub scale: Option<String>,
    pub seed: Option<u64>,
    pub recording: Option<String>,
    #[serde(default)]
    pub cases: BTreeMap<String, CaseLabel>,
}

/// Parses and checks the text of a `labels.toml`; the error says what is
/// wrong with it.
pub fn parse_labels(text: &str) -> Result<Labels, String> {
    let labels: Labels = toml::from_str(text).map_err(|e| e.to_string())?;
    if labels.cases.is_empty() {
        return Err("no [cases.NAME] tables".into());
    }
    for (name, c) in &labels.cases {
        if c.cmdline.as_deref() == Some("") {
            // An empty substring is in every command line: the case would
            // take every process of the recording.
            return Err(format!("case `{name}` has an empty cmdline"));
        }
        if c.recording.is_none() && labels.recording.is_none() {
            return Err(format!(
                "case `{name}` names no recording (and there is no default)"
            ));
        }
    }
    Ok(labels)
}

/// One case under one model.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct CaseResult {
    pub case: String,
    pub leak: bool,
    pub flagged: bool,
    /// Processes of the case found in the recording.
    pub processes: usize,
    /// Seconds from the case's first sample to the first cut flagged.
    pub first_alert_s: Option<f64>,
    /// Why the flagged (or, failing that, the most severe) finding said so.
    pub why: Option<String>,
}

/// A model's scores over the labelled cases.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ModelScore {
    pub model: ModelChoice,
    pub cases: Vec<CaseResult>,
    pub tp: usize,
    pub fp: usize,
    pub fn_: usize,
    pub tn: usize,
    pub precision: Option<f64>,
    pub recall: Option<f64>,
    pub f1: Option<f64>,
    pub median_first_alert_s: Option<f64>,
}

fn ratio(a: usize, b: usize) -> Option<f64> {
    (b > 0).then(|| a as f64 / b as f64)
}

fn median(mut v: Vec<f64>) -> Option<f64> {
    super::trend::median(&mut v)
}

/// One process's series, loaded once, with what cases are matched on.
pub struct Loaded {
    pub comm: String,
    pub cmdline: Option<String>,
    pub process: LoadedProcess,
}

/// The labelled cases of one recording, with its processes.
pub struct RecordingCases<'a> {
    pub cases: &'a [(&'a String, &'a CaseLabel)],
    pub loaded: &'a [Loaded],
    /// The recording's last time: the cut points for the time to first
    /// alert are spread up to it.
    pub end: f64,
    pub interval_s: f64,
    pub rule: Rule,
}

/// Judges the cases of one recording under every model of `models`,
/// adding each case's result to `results[model index]`. Pure.
pub fn judge_cases(
    rc: &RecordingCases<'_>,
    settings: &Settings,
    models: &[ModelChoice],
    results: &mut [BTreeMap<String, CaseResult>],
) {
    let RecordingCases {
        cases,
        loaded,
        end,
        interval_s,
        rule,
    } = *rc;
    let cuts: Vec<f64> = (1..=CUTS).map(|k| end * k as f64 / CUTS as f64).collect();
    for (mi, &model) in models.iter().enumerate() {
        let s = Settings {
            model,
            ..settings.clone()
        };
        for &(name, c) in cases {
            let procs: Vec<&Loaded> = loaded
                .iter()
                .filter(|l| c.matches(name, &l.comm, l.cmdline.as_deref()))
                .collect();
            let start = procs
                .iter()
                .filter_map(|l| l.process.t.first().copied())
                .fold(f64::INFINITY, f64::min);
            let mut first_alert = None;
            let mut final_why: Option<(Verdict, String)> = None;
            for (k, &cut) in cuts.iter().enumerate() {
                let last = k + 1 == cuts.len();
                // Only the full recording matters once an alert was seen.
                if first_alert.is_some() && !last {
                    continue;
                }
                let mut flagged = false;
                for l in &procs {
                    let p = &l.process;
                    let n = if last {
                        p.t.len()
                    } else {
                        p.t.partition_point(|&x| x <= cut)
                    };
                    // Cut before it ended: it was still running then.
                    let end = if n == p.t.len() {
                        p.end
                    } else {
                        ProcessEnd::Running
                    };
                    let inputs = p.inputs(n);
                    let Ok(judged) = analyse_process(&p.t[..n], &inputs, end, interval_s, rule, &s)
                    else {
                        continue;
                    };
                    let findings = judged.findings;
                    if let Some(f) = findings.first() {
                        flagged |= f.verdict == Verdict::Leak;
                        if last && final_why.as_ref().is_none_or(|(v, _)| f.verdict > *v) {
                            final_why =
                                Some((f.verdict, format!("[{}] {}", f.model.name(), f.why)));
                        }
                    }
                }
                if flagged && first_alert.is_none() {
                    first_alert = Some((cut - start).max(0.0));
                }
                if last {
                    results[mi].insert(
                        name.clone(),
                        CaseResult {
                            case: name.clone(),
                            leak: c.leak,
                            flagged,
                            processes: procs.len(),
                            first_alert_s: if flagged { first_alert } else { None },
                            why: final_why.take().map(|(_, w)| w),
                        },
                    );
                }
            }
        }
    }
}

/// Counts and ratios of one model's case results.
pub fn score(model: ModelChoice, cases: Vec<CaseResult>) -> ModelScore {
    let count = |leak: bool, flagged: bool| {
        cases
            .iter()
            .filter(|c| c.leak == leak && c.flagged == flagged)
            .count()
    };
    let (tp, fp, fn_, tn) = (
        count(true, true),
        count(false, true),
        count(true, false),
        count(false, false),
    );
    let precision = ratio(tp, tp + fp);
    let recall = ratio(tp, tp + fn_);
    let f1 = match (precision, recall) {
        (Some(p), Some(r)) if p + r > 0.0 => Some(2.0 * p * r / (p + r)),
        (Some(_), Some(_)) => Some(0.0),
        _ => None,
    };
    let alerts: Vec<f64> = cases
        .iter()
        .filter(|c| c.leak && c.flagged)
        .filter_map(|c| c.first_alert_s)
        .collect();
    ModelScore {
        model,
        tp,
        fp,
        fn_,
        tn,
        precision,
        recall,
        f1,
        median_first_alert_s: median(alerts),
        cases,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn case(name: &str, leak: bool, flagged: bool, alert: Option<f64>) -> CaseResult {
        CaseResult {
            case: name.into(),
            leak,
            flagged,
            processes: 1,
            first_alert_s: alert,
            why: None,
        }
    }

    #[test]
    fn scores_count_cases() {
        let s = score(
            ModelChoice::All,
            vec![
                case("a", true, true, Some(4.0)),
                case("b", true, true, Some(10.0)),
                case("c", true, false, None),
                case("d", false, true, Some(1.0)),
                case("e", false, false, None),
            ],
        );
        assert_eq!((s.tp, s.fp, s.fn_, s.tn), (2, 1, 1, 1));
        assert_eq!(s.precision, Some(2.0 / 3.0));
        assert_eq!(s.recall, Some(2.0 / 3.0));
        assert!((s.f1.unwrap() - 2.0 / 3.0).abs() < 1e-12);
        // Only true positives count towards the time to first alert.
        assert_eq!(s.median_first_alert_s, Some(7.0));
        let none = score(ModelChoice::Lbr, vec![case("x", false, false, None)]);
        assert_eq!((none.precision, none.recall, none.f1), (None, None, None));
    }

    #[test]
    fn a_case_matches_by_comm_and_cmdline() {
        let label = |comm: Option<&str>, cmdline: Option<&str>| CaseLabel {
            leak: true,
            comm: comm.map(Into::into),
            recording: None,
            command: None,
            about: None,
            cmdline: cmdline.map(Into::into),
            why: None,
        };
        let py = Some("/usr/bin/python3 /corpus/real/py-late-leak.py 24");
        // Neither given: the process name must be the case name.
        assert!(label(None, None).matches("x", "x", None));
        assert!(!label(None, None).matches("x", "python3", py));
        // comm alone: any command line.
        assert!(label(Some("python3"), None).matches("x", "python3", None));
        // Both: the name and the substring.
        let late = label(Some("python3"), Some("/py-late-leak.py"));
        assert!(late.matches("x", "python3", py));
        assert!(!late.matches(
            "x",
            "python3",
            Some("python3 /corpus/real/py-flat-churn.py")
        ));
        assert!(!late.matches("x", "sh", py), "the name still counts");
        assert!(
            !late.matches("x", "python3", None),
            "no command line recorded"
        );
        // cmdline alone: any name.
        assert!(label(None, Some("late-leak")).matches("x", "python3.11", py));
    }
}
