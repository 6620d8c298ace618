//! `memleak eval`'s reading side: the labels file and the labelled
//! recordings, each process read once and handed to the pure scoring in
//! [`crate::analyse::eval`].

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::{for_each_process, rule_for};
use crate::analyse::eval::{
    judge_cases, parse_labels, score, CaseLabel, CaseResult, Labels, Loaded, ModelScore,
    RecordingCases,
};
use crate::analyse::{AnalyseError, ModelChoice, Settings};
use crate::store::{Recording, StoreError};

/// Why `memleak eval` could not read a labelled directory.
#[derive(Debug, thiserror::Error)]
pub enum EvalError {
    #[error("cannot read the labels: {0}")]
    Read(#[from] crate::files::FileError),
    #[error("{path}: invalid labels: {why}")]
    Invalid { path: PathBuf, why: String },
    #[error(transparent)]
    Analyse(#[from] AnalyseError),
    #[error(transparent)]
    Store(#[from] StoreError),
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
    let labels = parse_labels(&text).map_err(|why| EvalError::Invalid {
        path: file.clone(),
        why,
    })?;
    let dir = file.parent().unwrap_or(Path::new(".")).to_path_buf();
    Ok((dir, labels))
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
        let rc = RecordingCases {
            cases: &cases,
            loaded: &loaded,
            end,
            interval_s,
            rule,
        };
        judge_cases(&rc, settings, models, &mut results);
    }
    Ok(models
        .iter()
        .zip(results)
        .map(|(&model, cases)| score(model, cases.into_values().collect()))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::eval::render;

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
        crate::load::tests::tiny_recording(dir.path());
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
        crate::load::tests::tiny_recording(dir.path());
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
