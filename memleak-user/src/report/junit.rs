//! JUnit XML: one `<testcase>` per process (analysed or skipped); a
//! `<failure>` for each flagged process, `<skipped>` for those too short to
//! judge. CI systems show the failures next to the test suite's own.
//!
//! With phase markers, a second `<testsuite>` has one `<testcase>` per
//! measured test (phase), a `<failure>` for each test that kept more
//! anonymous memory than its threshold ([`crate::analyse::phases`]).

use std::collections::HashMap;
use std::fmt::Write;

use super::escape_xml as esc;
use crate::analyse::phases::TestVerdict;
use crate::analyse::units::{fmt_bytes, fmt_duration};
use crate::analyse::{Analysis, ProcessRef, Verdict};

/// Longest command line kept in a case name: enough to tell `python3 -m a`
/// from `python3 -m b`, short enough for a CI page's list.
const CMDLINE_CHARS: usize = 60;

/// A name that stays the same when the same command runs again: CI systems
/// track a test case's history by its name, and a pid or start time would
/// make every run a new test. Command name plus the start of the command
/// line, whitespace collapsed.
fn base_name(p: &ProcessRef) -> String {
    let cmdline = p
        .cmdline
        .as_deref()
        .map(|c| c.split_whitespace().collect::<Vec<_>>().join(" "))
        .unwrap_or_default();
    if cmdline.is_empty() || cmdline == p.comm {
        return p.comm.clone();
    }
    let short: String = cmdline.chars().take(CMDLINE_CHARS).collect();
    let ellipsis = if short.len() < cmdline.len() {
        "…"
    } else {
        ""
    };
    format!("{}: {short}{ellipsis}", p.comm)
}

/// Case names for `procs`, in the same order. Processes that share a base
/// name get ` #1`, ` #2`, ... in start order, which a rerun of the same
/// command reproduces where pids and start times do not.
fn case_names(procs: &[&ProcessRef]) -> Vec<String> {
    let bases: Vec<String> = procs.iter().map(|p| base_name(p)).collect();
    let mut names = bases.clone();
    let mut by_base: HashMap<&str, Vec<usize>> = HashMap::new();
    for (i, b) in bases.iter().enumerate() {
        by_base.entry(b).or_default().push(i);
    }
    for group in by_base.values_mut().filter(|g| g.len() > 1) {
        group.sort_by_key(|&i| (procs[i].id.start_ns, procs[i].id.pid));
        for (n, &i) in group.iter().enumerate() {
            names[i] = format!("{} #{}", bases[i], n + 1);
        }
    }
    names
}

/// Which process a case is, for whoever needs it: kept out of the name so
/// the name stays stable.
fn identity(p: &ProcessRef) -> String {
    format!(
        "      <system-out>pid {}, start {} ns since boot</system-out>",
        p.id.pid, p.id.start_ns
    )
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
    let procs: Vec<&ProcessRef> = a
        .results
        .iter()
        .map(|r| &r.process)
        .chain(a.skipped.iter().map(|s| &s.process))
        .collect();
    let names = case_names(&procs);
    let (result_names, skipped_names) = names.split_at(a.results.len());
    for (r, name) in a.results.iter().zip(result_names) {
        let _ = writeln!(
            x,
            "    <testcase classname=\"memleak.{}\" name=\"{}\" time=\"{:.3}\">",
            r.top().map_or("lbr", |f| f.model.name()),
            esc(name),
            if r.observed_s.is_finite() {
                r.observed_s
            } else {
                0.0
            }
        );
        let leak = r.findings.iter().find(|f| f.verdict == Verdict::Leak);
        if let Some(f) = leak {
            let message = format!(
                "memory leak, {}: {} ({})",
                f.evidence.map_or("leak", |e| e.describe()),
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
        }
        // Ambiguous growth goes to the case's output, which CI pages show
        // beside it: JUnit has no "warning" outcome, a failure would fail
        // the build on no evidence, and "skipped" would read as not judged.
        let grew = r
            .top()
            .filter(|f| f.verdict == Verdict::GrewUntilExit)
            .map(|f| {
                format!(
                    "\nmemleak: grew until exit (not a failure; peak {}, growth {}): {}",
                    fmt_bytes(f.peak.unwrap_or(f.last_value)),
                    fmt_bytes(f.fit.map_or(0.0, |w| w.growth())),
                    f.why
                )
            })
            .unwrap_or_default();
        let _ = writeln!(
            x,
            "      <system-out>pid {}, start {} ns since boot{}</system-out>\n    </testcase>",
            r.process.id.pid,
            r.process.id.start_ns,
            esc(&grew)
        );
    }
    for (s, name) in a.skipped.iter().zip(skipped_names) {
        let _ = writeln!(
            x,
            "    <testcase classname=\"memleak.lbr\" name=\"{}\" time=\"0.000\">\n      <skipped message=\"{}\"/>\n{}\n    </testcase>",
            esc(name),
            esc(&s.reason.to_string()),
            identity(&s.process)
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
        let message = format!("{} of anonymous memory", super::phases::flagged_because(t));
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
    use crate::load::tests::tiny_analysis;

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
        let name = failed[0].attribute("name").unwrap();
        assert!(name.starts_with("leaky<&>"), "{name}");
        assert!(!name.contains("100"), "no pid in the name: {name}");
        let out = failed[0]
            .children()
            .find(|n| n.has_tag_name("system-out"))
            .expect("the process's identity");
        assert!(out.text().unwrap().contains("pid 100"));
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
            threshold_bytes: 256.0 * 1024.0,
            floor_bytes: 256.0 * 1024.0,
            reruns: 2,
            confirmed: true,
            inconclusive: false,
            cleared: false,
            flagged: true,
            runs: vec![run.clone(), run.clone(), run.clone()],
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

    fn names(xml: &str) -> Vec<String> {
        let doc = roxmltree::Document::parse(xml).expect("well-formed XML");
        doc.descendants()
            .filter(|n| n.has_tag_name("testcase"))
            .map(|n| n.attribute("name").unwrap().to_string())
            .collect()
    }

    #[test]
    fn names_do_not_change_when_pids_and_start_times_do() {
        let first = tiny_analysis();
        let mut again = tiny_analysis();
        for (i, r) in again.results.iter_mut().enumerate() {
            r.process.id.pid += 1000 + i as u32;
            r.process.id.start_ns += 123_456_789;
        }
        for s in &mut again.skipped {
            s.process.id.pid += 7;
            s.process.id.start_ns += 987_654_321;
        }
        assert_eq!(names(&render(&first)), names(&render(&again)));
    }

    #[test]
    fn same_command_twice_is_numbered_in_start_order() {
        let mut a = tiny_analysis();
        let mut late = a.results[0].clone();
        late.process.id.pid = 5;
        late.process.id.start_ns = a.results[0].process.id.start_ns + 1;
        a.results.insert(0, late);
        let n = names(&render(&a));
        let base = base_name(&a.results[1].process);
        assert_eq!(n[0], format!("{base} #2"), "{n:?}");
        assert_eq!(n[1], format!("{base} #1"), "{n:?}");
        let unique: std::collections::HashSet<_> = n.iter().collect();
        assert_eq!(unique.len(), n.len(), "{n:?}");
    }

    #[test]
    fn long_command_lines_are_shortened() {
        let mut a = tiny_analysis();
        a.results[0].process.comm = "python3".into();
        a.results[0].process.cmdline = Some(format!("python3  -m   pytest {}", "x".repeat(500)));
        let name = base_name(&a.results[0].process);
        assert!(name.starts_with("python3: python3 -m pytest xx"), "{name}");
        assert!(name.chars().count() < 80, "{name}");
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
