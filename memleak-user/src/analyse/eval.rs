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
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::life::ProcessEnd;
use super::units::fmt_duration;
use super::{
    analyse_process, for_each_process, rule_for, LoadedProcess, ModelChoice, Settings, Verdict,
};
use crate::store::Recording;

/// Cut points per recording for the time to first alert.
pub const CUTS: usize = 20;

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

#[derive(Clone, Debug, Deserialize, PartialEq)]
pub struct Labels {
    pub scale: Option<String>,
    pub seed: Option<u64>,
    pub recording: Option<String>,
    #[serde(default)]
    pub cases: BTreeMap<String, CaseLabel>,
}

#[derive(Debug, thiserror::Error)]
pub enum EvalError {
    #[error("cannot read the labels: {0}")]
    Read(#[from] crate::files::FileError),
    #[error("{path}: invalid labels: {why}")]
    Invalid { path: PathBuf, why: String },
    #[error(transparent)]
    Analyse(#[from] super::AnalyseError),
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
}

/// Labels are a few lines per case; this bounds what a wrong path costs.
const MAX_LABELS_BYTES: u64 = 4 << 20;

/// Reads `DIR/labels.toml` (or the file itself when `path` is a file).
pub fn load_labels(path: &Path) -> Result<(PathBuf, Labels), EvalError> {
    let file = if path.is_dir() {
        path.join("labels.toml")
    } else {
        path.to_path_buf()
    };
    let text = crate::files::read_text(&file, MAX_LABELS_BYTES)?;
    let labels: Labels = toml::from_str(&text).map_err(|e| EvalError::Invalid {
        path: file.clone(),
        why: e.to_string(),
    })?;
    if labels.cases.is_empty() {
        return Err(EvalError::Invalid {
            path: file,
            why: "no [cases.NAME] tables".into(),
        });
    }
    for (name, c) in &labels.cases {
        if c.cmdline.as_deref() == Some("") {
            // An empty substring is in every command line: the case would
            // take every process of the recording.
            return Err(EvalError::Invalid {
                path: file,
                why: format!("case `{name}` has an empty cmdline"),
            });
        }
        if c.recording.is_none() && labels.recording.is_none() {
            return Err(EvalError::Invalid {
                path: file,
                why: format!("case `{name}` names no recording (and there is no default)"),
            });
        }
    }
    let dir = file.parent().unwrap_or(Path::new(".")).to_path_buf();
    Ok((dir, labels))
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

/// One process's series, loaded once.
struct Loaded {
    comm: String,
    cmdline: Option<String>,
    process: LoadedProcess,
}

fn ratio(a: usize, b: usize) -> Option<f64> {
    (b > 0).then(|| a as f64 / b as f64)
}

fn median(mut v: Vec<f64>) -> Option<f64> {
    super::trend::median(&mut v)
}

/// Scores every model in `models` on the labelled corpus in `dir`.
pub fn evaluate(
    dir: &Path,
    labels: &Labels,
    settings: &Settings,
    models: &[ModelChoice],
) -> Result<Vec<ModelScore>, EvalError> {
    settings.validate()?;
    // Cases grouped by recording.
    let mut by_rec: BTreeMap<String, Vec<(&String, &CaseLabel)>> = BTreeMap::new();
    for (name, c) in &labels.cases {
        let rec = c
            .recording
            .clone()
            .or_else(|| labels.recording.clone())
            .unwrap_or_default();
        by_rec.entry(rec).or_default().push((name, c));
    }
    // results[model][case name]
    let mut results: Vec<BTreeMap<String, CaseResult>> = vec![BTreeMap::new(); models.len()];
    for (rec_name, cases) in by_rec {
        let rec = Recording::open(&dir.join(&rec_name))?;
        let interval_s = rec.meta.interval_ns as f64 / 1e9;
        let rule = rule_for(&rec, settings);
        let mut loaded = Vec::new();
        let mut end = 0.0f64;
        for_each_process(
            &rec,
            settings,
            |p| {
                cases
                    .iter()
                    .any(|(n, c)| c.matches(n, &p.comm, p.cmdline.as_deref()))
            },
            |p, process| {
                end = end.max(process.t.last().copied().unwrap_or(0.0));
                loaded.push(Loaded {
                    comm: p.comm.clone(),
                    cmdline: p.cmdline.clone(),
                    process,
                });
            },
        )?;
        let cuts: Vec<f64> = (1..=CUTS).map(|k| end * k as f64 / CUTS as f64).collect();
        for (mi, &model) in models.iter().enumerate() {
            let s = Settings {
                model,
                ..settings.clone()
            };
            for &(name, c) in &cases {
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
                        let Ok(judged) =
                            analyse_process(&p.t[..n], &inputs, end, interval_s, rule, &s)
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
    Ok(models
        .iter()
        .zip(results)
        .map(|(&model, cases)| score(model, cases.into_values().collect()))
        .collect())
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
    fn labels_need_cases_and_recordings() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("labels.toml");
        std::fs::write(&p, "recording = \"r.memleak\"\n").unwrap();
        assert!(load_labels(dir.path())
            .unwrap_err()
            .to_string()
            .contains("no [cases"));
        std::fs::write(&p, "[cases.a]\nleak = true\n").unwrap();
        assert!(load_labels(&p)
            .unwrap_err()
            .to_string()
            .contains("names no recording"));
        std::fs::write(
            &p,
            "recording = \"r.memleak\"\n[cases.a]\nleak = true\ncomm = \"x\"\n",
        )
        .unwrap();
        let (d, l) = load_labels(dir.path()).unwrap();
        assert_eq!(d, dir.path());
        assert_eq!(l.cases["a"].comm.as_deref(), Some("x"));
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

    #[test]
    fn labels_refuse_an_empty_cmdline() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("labels.toml"),
            "recording = \"r.memleak\"\n[cases.a]\nleak = true\ncmdline = \"\"\n",
        )
        .unwrap();
        let err = load_labels(dir.path()).unwrap_err().to_string();
        assert!(err.contains("empty cmdline"), "{err}");
    }

    /// Cases told apart by command line: in the tiny recording every
    /// process's command line is `COMM --arg "&<>"`.
    #[test]
    fn evaluates_cases_chosen_by_cmdline() {
        let dir = tempfile::tempdir().unwrap();
        super::super::tests::tiny_recording(dir.path());
        std::fs::write(
            dir.path().join("labels.toml"),
            "recording = \"tiny.memleak\"\n\
             [cases.by-cmdline]\nleak = true\ncmdline = \"leaky<&> --arg\"\nwhy = \"grows\"\n\
             [cases.wrong-cmdline]\nleak = false\ncomm = \"steady\"\ncmdline = \"leaky\"\n\
             [cases.steady-by-both]\nleak = false\ncomm = \"steady\"\ncmdline = \"--arg\"\n\
             [cases.everyone]\nleak = true\ncmdline = \"--arg\"\n",
        )
        .unwrap();
        let (d, labels) = load_labels(dir.path()).unwrap();
        assert_eq!(labels.cases["by-cmdline"].why.as_deref(), Some("grows"));
        let scores = evaluate(&d, &labels, &Settings::default(), &[ModelChoice::All]).unwrap();
        let case = |name: &str| scores[0].cases.iter().find(|c| c.case == name).unwrap();
        assert_eq!(
            (case("by-cmdline").processes, case("by-cmdline").flagged),
            (1, true)
        );
        assert_eq!(case("wrong-cmdline").processes, 0);
        assert_eq!(
            (
                case("steady-by-both").processes,
                case("steady-by-both").flagged
            ),
            (1, false)
        );
        // leaky, steady and brief: flagged because one of them leaks.
        assert_eq!(
            (case("everyone").processes, case("everyone").flagged),
            (3, true)
        );
    }

    /// The tiny recording: `leaky<&>` leaks, `steady` does not.
    #[test]
    fn evaluates_a_labelled_recording() {
        let dir = tempfile::tempdir().unwrap();
        super::super::tests::tiny_recording(dir.path());
        std::fs::write(
            dir.path().join("labels.toml"),
            "recording = \"tiny.memleak\"\n\
             [cases.leaky]\nleak = true\ncomm = \"leaky<&>\"\n\
             [cases.steady]\nleak = false\n\
             [cases.absent]\nleak = false\n",
        )
        .unwrap();
        let (d, labels) = load_labels(dir.path()).unwrap();
        let scores = evaluate(
            &d,
            &labels,
            &Settings::default(),
            &[ModelChoice::Lbr, ModelChoice::All],
        )
        .unwrap();
        for s in &scores {
            assert_eq!((s.tp, s.fp, s.fn_, s.tn), (1, 0, 0, 2), "{:?}", s.model);
            let leaky = s.cases.iter().find(|c| c.case == "leaky").unwrap();
            // 120 s recording, 20 cuts of 6 s: flagged once 20 points exist
            // after the warm-up, well before the end.
            let first = leaky.first_alert_s.unwrap();
            assert!(first > 0.0 && first < 120.0, "{first}");
            assert_eq!(
                s.cases
                    .iter()
                    .find(|c| c.case == "absent")
                    .unwrap()
                    .processes,
                0
            );
        }
        let text = render(&labels, &scores);
        assert!(text.contains("  lbr"), "{text}");
        assert!(text.contains("TP leaky"), "{text}");
        assert!(text.contains("no process of this name"), "{text}");
    }
}
