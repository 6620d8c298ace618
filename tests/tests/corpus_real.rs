//! End-to-end: the real-runtime corpus (`cargo xtask corpus --set real`,
//! the `memleak-corpus` crate) recorded with the real eBPF sampler — eight
//! leaking and six non-leaking Python, Node.js, Java and C programs, all at
//! once for a minute — then scored by `memleak eval` with the default
//! analysis settings.
//!
//! What must hold: every case's processes are in the recording (the labels
//! find them by name and command line), and precision and recall are at
//! least 0.95. The per-case verdicts are printed.

use std::path::Path;
use std::process::Command;

use memleak::analyse::eval::ModelScore;
use memleak::analyse::{ModelChoice, Settings};
use memleak::load::eval::{evaluate, load_labels};
use memleak_corpus::{prepare, CorpusError, INTERVAL_MS, RUN_SECONDS};
use memleak_tests::{memleak_bin, require_ebpf};

/// Records the corpus into `dir` and scores the default model; `None`
/// (after printing why) when Node.js, Java or a compiler is missing.
fn record_and_evaluate(dir: &Path) -> Option<ModelScore> {
    let mut prepared = match prepare(dir, RUN_SECONDS) {
        Ok(p) => p,
        Err(e @ CorpusError::Missing { .. }) => {
            eprintln!("SKIPPED: {e}");
            return None;
        }
        Err(e) => panic!("preparing the corpus: {e}"),
    };
    for (name, why) in &prepared.skipped {
        eprintln!("case {name} left out here: {why}");
    }
    let driver = dir.join("driver.sh");
    std::fs::write(&driver, prepared.driver_script()).unwrap();
    let status = Command::new(memleak_bin())
        .args(["record", "-q", "--sampler", "ebpf", "-i"])
        .arg(format!("{INTERVAL_MS}ms"))
        .arg("-o")
        .arg(dir.join("corpus.memleak"))
        .args(["--", "sh"])
        .arg(&driver)
        .status()
        .unwrap();
    let leftover = prepared.cleanup();
    assert!(status.success(), "memleak record failed: {status}");
    assert!(leftover.is_empty(), "cgroups left behind: {leftover:?}");
    std::fs::write(
        dir.join("labels.toml"),
        prepared.labels_toml("corpus.memleak"),
    )
    .unwrap();

    let (d, labels) = load_labels(dir).unwrap();
    let mut scores = evaluate(&d, &labels, &Settings::default(), &[ModelChoice::All]).unwrap();
    let score = scores.remove(0);
    eprintln!("verdicts of the default analysis (case, label, flagged, processes, why):");
    for c in &score.cases {
        eprintln!(
            "  {:<22} {:<8} {:<9} {} process(es)  {}",
            c.case,
            if c.leak { "leak" } else { "no-leak" },
            if c.flagged { "FLAGGED" } else { "not" },
            c.processes,
            c.why.as_deref().unwrap_or("-")
        );
    }
    eprintln!(
        "precision {:?}, recall {:?} (tp {}, fp {}, fn {}, tn {})",
        score.precision, score.recall, score.tp, score.fp, score.fn_, score.tn
    );
    Some(score)
}

/// One recording (a minute) serves both checks: every case's processes are
/// there, and the default analysis gets the real runtimes right, not only
/// the synthetic shapes.
#[test]
fn real_corpus_is_recorded_and_judged_right_at_default_settings() {
    require_ebpf!();
    let dir = tempfile::tempdir().unwrap();
    let Some(score) = record_and_evaluate(dir.path()) else {
        return;
    };
    assert!(!score.cases.is_empty());
    let missing: Vec<&str> = score
        .cases
        .iter()
        .filter(|c| c.processes == 0)
        .map(|c| c.case.as_str())
        .collect();
    assert!(
        missing.is_empty(),
        "cases with no process in the recording: {missing:?}"
    );
    // The worker case has two processes (parent and worker).
    let mp = score
        .cases
        .iter()
        .find(|c| c.case == "py-mp-worker-leak")
        .unwrap();
    assert!(mp.processes >= 2, "{mp:?}");

    let wrong: Vec<String> = score
        .cases
        .iter()
        .filter(|c| c.leak != c.flagged)
        .map(|c| format!("{} ({})", c.case, c.why.as_deref().unwrap_or("-")))
        .collect();
    let (precision, recall) = (score.precision.unwrap_or(0.0), score.recall.unwrap_or(0.0));
    assert!(
        precision >= 0.95 && recall >= 0.95,
        "precision {precision:.2}, recall {recall:.2}; wrong: {wrong:?}"
    );
}
