//! JUnit XML: one `<testcase>` per process (analysed or skipped); a
//! `<failure>` for each flagged process, `<skipped>` for those too short to
//! judge. CI systems show the failures next to the test suite's own.
//!
//! With phase markers, a second `<testsuite>` has one `<testcase>` per
//! measured test (phase), a `<failure>` for each test that kept more
//! anonymous memory than its threshold ([`crate::analyse::phases`]).

use std::fmt::Write;

use super::escape_xml as esc;
use crate::analyse::phases::TestVerdict;
use crate::analyse::units::{fmt_bytes, fmt_duration};
use crate::analyse::{Analysis, ProcessRef, Verdict};

fn case_name(p: &ProcessRef) -> String {
    format!("{} (pid {}, start {} ns)", p.comm, p.id.pid, p.id.start_ns)
}

/// Renders the JUnit document (ends with a newline).
pub fn render(a: &Analysis) -> String {
    render_with_tests(a, &[])
}

/// [`render`] plus a testsuite of per-test kept-memory verdicts (none when
/// `kept` is empty).
pub fn render_with_tests(a: &Analysis, kept: &[TestVerdict]) -> String {
    // Skipped processes past those listed are one testcase, so that a
    // machine-wide recording does not make a JUnit file of millions.
    let unlisted = a.skipped_total().saturating_sub(a.skipped.len());
    let process_tests = a.results.len() + a.skipped.len() + usize::from(unlisted > 0);
    let process_failures = a.count(Verdict::Leak);
    let kept_failures = kept.iter().filter(|t| t.flagged).count();
    let tests = process_tests + kept.len();
    let failures = process_failures + kept_failures;
    let skipped = a.skipped.len() + usize::from(unlisted > 0);
    let suite = match &a.recording.command {
        Some(c) => format!("memleak: {c}"),
        None => format!("memleak: {}", a.recording.path.display()),
    };
    let time = if a.recording.duration_s.is_finite() {
        a.recording.duration_s
    } else {
        0.0
    };
    let mut x = String::new();
    x.push_str("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    let _ = writeln!(
        x,
        "<testsuites name=\"memleak\" tests=\"{tests}\" failures=\"{failures}\" errors=\"0\" skipped=\"{skipped}\" time=\"{time:.3}\">"
    );
    let _ = writeln!(
        x,
        "  <testsuite name=\"{}\" tests=\"{process_tests}\" failures=\"{process_failures}\" errors=\"0\" skipped=\"{skipped}\" time=\"{time:.3}\">",
        esc(&suite)
    );
    for r in &a.results {
        let _ = write!(
            x,
            "    <testcase classname=\"memleak.{}\" name=\"{}\" time=\"{:.3}\"",
            r.top().map_or("lbr", |f| f.model.name()),
            esc(&case_name(&r.process)),
            if r.observed_s.is_finite() {
                r.observed_s
            } else {
                0.0
            }
        );
        let leak = r.findings.iter().find(|f| f.verdict == Verdict::Leak);
        match leak {
            Some(f) => {
                let _ = writeln!(x, ">");
                let message = format!(
                    "memory leak: {} ({})",
                    f.metric.name(),
                    f.time_to_limit_s
                        .map(|t| format!("limit in {}", fmt_duration(t)))
                        .unwrap_or_default()
                );
                let mut body = String::new();
                for f in &r.findings {
                    let _ = writeln!(
                        body,
                        "[{}/{}] {}: {}",
                        f.model.name(),
                        f.metric.name(),
                        f.verdict.name(),
                        f.why
                    );
                }
                if let Some(c) = &r.process.cmdline {
                    let _ = writeln!(body, "cmdline: {c}");
                }
                let _ = writeln!(
                    x,
                    "      <failure type=\"memory-leak\" message=\"{}\">{}</failure>",
                    esc(&message),
                    esc(&body)
                );
                let _ = writeln!(x, "    </testcase>");
            }
            None => {
                let _ = writeln!(x, "/>");
            }
        }
    }
    for s in &a.skipped {
        let _ = writeln!(
            x,
            "    <testcase classname=\"memleak.lbr\" name=\"{}\" time=\"0.000\">\n      <skipped message=\"{}\"/>\n    </testcase>",
            esc(&case_name(&s.process)),
            esc(&s.reason.to_string())
        );
    }
    if unlisted > 0 {
        let _ = writeln!(
            x,
            "    <testcase classname=\"memleak.lbr\" name=\"{unlisted} more processes not judged\" time=\"0.000\">\n      <skipped message=\"not listed one by one: {}\"/>\n    </testcase>",
            esc(&crate::report::summary_line(a))
        );
    }
    x.push_str("  </testsuite>\n");
    if !kept.is_empty() {
        write_kept_suite(&mut x, kept, kept_failures);
    }
    x.push_str("</testsuites>\n");
    x
}

/// One testcase per measured test, named as the harness named it, so a CI
/// page lists the leaking test by its own name.
fn write_kept_suite(x: &mut String, kept: &[TestVerdict], failures: usize) {
    let _ = writeln!(
        x,
        "  <testsuite name=\"memleak: memory kept per test\" tests=\"{}\" failures=\"{failures}\" errors=\"0\" skipped=\"0\">",
        kept.len()
    );
    for t in kept {
        let time: f64 = t.runs.iter().map(|r| r.end_s - r.start_s).sum();
        let _ = write!(
            x,
            "    <testcase classname=\"memleak.kept\" name=\"{}\" time=\"{:.3}\"",
            esc(&t.name),
            if time.is_finite() { time } else { 0.0 }
        );
        if !t.flagged {
            let _ = writeln!(x, "/>");
            continue;
        }
        let message = format!(
            "kept {} of anonymous memory (threshold {})",
            fmt_bytes(t.kept_bytes),
            fmt_bytes(t.threshold_bytes)
        );
        let mut body = String::new();
        for r in &t.runs {
            let _ = writeln!(
                body,
                "{} (pid {}): {} at the start, kept {}",
                r.comm,
                r.pid,
                fmt_bytes(r.anon_start_bytes),
                fmt_bytes(r.kept_bytes)
            );
        }
        let _ = writeln!(
            x,
            ">\n      <failure type=\"memory-kept\" message=\"{}\">{}</failure>\n    </testcase>",
            esc(&message),
            esc(&body)
        );
    }
    x.push_str("  </testsuite>\n");
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analyse::tests::tiny_analysis;

    #[test]
    fn well_formed_with_one_testcase_per_process() {
        let a = tiny_analysis();
        let xml = render(&a);
        let doc = roxmltree::Document::parse(&xml).expect("well-formed XML");
        let cases: Vec<_> = doc
            .descendants()
            .filter(|n| n.has_tag_name("testcase"))
            .collect();
        assert_eq!(cases.len(), 3);
        let failed: Vec<_> = cases
            .iter()
            .filter(|c| c.children().any(|n| n.has_tag_name("failure")))
            .collect();
        assert_eq!(failed.len(), 1);
        assert!(failed[0]
            .attribute("name")
            .unwrap()
            .starts_with("leaky<&> (pid 100"));
        let failure = failed[0]
            .children()
            .find(|n| n.has_tag_name("failure"))
            .unwrap();
        assert!(failure.text().unwrap().contains("--arg \"&<>\""));
        let skipped = cases
            .iter()
            .filter(|c| c.children().any(|n| n.has_tag_name("skipped")))
            .count();
        assert_eq!(skipped, 1);
        let suites = doc.root_element();
        assert_eq!(suites.attribute("tests"), Some("3"));
        assert_eq!(suites.attribute("failures"), Some("1"));
    }

    #[test]
    fn kept_tests_get_their_own_suite_with_failures() {
        use crate::analyse::phases::{TestRun, TestVerdict};
        let run = TestRun {
            pid: 7,
            start_ns: 1,
            comm: "python".into(),
            start_s: 1.0,
            end_s: 4.0,
            anon_start_bytes: 30.0 * 1048576.0,
            kept_bytes: 120.0 * 1048576.0,
            by_pid: true,
        };
        let leaky = TestVerdict {
            name: "t.py::test_<leaky>".into(),
            kept_bytes: 120.0 * 1048576.0,
            threshold_bytes: 32.0 * 1048576.0,
            flagged: true,
            runs: vec![run.clone()],
        };
        let fine = TestVerdict {
            name: "t.py::test_fine".into(),
            kept_bytes: 0.0,
            flagged: false,
            runs: vec![TestRun {
                kept_bytes: 0.0,
                ..run
            }],
            ..leaky.clone()
        };
        let xml = render_with_tests(&tiny_analysis(), &[leaky, fine]);
        let doc = roxmltree::Document::parse(&xml).expect("well-formed XML");
        assert_eq!(doc.root_element().attribute("tests"), Some("5"));
        assert_eq!(doc.root_element().attribute("failures"), Some("2"));
        let suite = doc
            .descendants()
            .find(|n| n.attribute("name") == Some("memleak: memory kept per test"))
            .expect("a per-test suite");
        assert_eq!(suite.attribute("failures"), Some("1"));
        let failed: Vec<_> = suite
            .children()
            .filter(|c| c.children().any(|n| n.has_tag_name("failure")))
            .collect();
        assert_eq!(failed.len(), 1);
        assert_eq!(failed[0].attribute("name"), Some("t.py::test_<leaky>"));
    }

    #[test]
    fn hostile_names_stay_well_formed() {
        let mut a = tiny_analysis();
        a.results[0].process.comm = "\u{1b}]0;x\u{7}<!--]]>&".into();
        a.results[0].process.cmdline = Some("\u{0}\u{fffe}".into());
        a.recording.command = Some("a\"b".into());
        let xml = render(&a);
        roxmltree::Document::parse(&xml).expect("well-formed XML");
    }
}
