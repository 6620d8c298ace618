//! GitHub Actions workflow commands: `::error` per flagged process (and per
//! marked test that kept memory), `::warning` per growing one, a `::notice`
//! summary. Printed to stdout in a workflow step, they show up as
//! annotations on the run.

use std::fmt::Write;

use super::{printable, summary_line};
use crate::analyse::phases::TestVerdict;
use crate::analyse::{Analysis, Verdict};

/// Escapes a workflow command's message (`%`, CR, LF).
fn data(s: &str) -> String {
    s.replace('%', "%25")
        .replace('\r', "%0D")
        .replace('\n', "%0A")
}

/// Escapes a workflow command's property value (also `:` and `,`).
fn property(s: &str) -> String {
    data(s).replace(':', "%3A").replace(',', "%2C")
}

/// Renders the annotations (one per line, ends with a newline).
pub fn render(a: &Analysis) -> String {
    render_with_tests(a, &[])
}

/// [`render`] plus an `::error` per flagged test of `kept`, before the
/// summary.
pub fn render_with_tests(a: &Analysis, kept: &[TestVerdict]) -> String {
    let mut out = String::new();
    for r in &a.results {
        let Some(f) = r.top() else { continue };
        let (cmd, what) = match f.verdict {
            Verdict::Leak => ("error", "Memory leak"),
            Verdict::GrewUntilExit => ("warning", "Memory grew until exit"),
            Verdict::Growing => ("warning", "Memory growth"),
            Verdict::NoTrend => continue,
        };
        let title = format!("{what}: {}", super::process_label(&r.process));
        let mut message = format!("{}.", printable(&f.why));
        if let Some(c) = &r.process.cmdline {
            message.push_str(&format!("\ncmdline: {}", printable(c)));
        }
        let _ = writeln!(
            out,
            "::{cmd} title={}::{}",
            property(&title),
            data(&message)
        );
    }
    for t in kept.iter().filter(|t| t.flagged) {
        let title = format!("Memory kept by test: {}", printable(&t.name));
        let message = format!(
            "The test {} of anonymous memory.",
            super::phases::flagged_because(t)
        );
        let _ = writeln!(
            out,
            "::error title={}::{}",
            property(&title),
            data(&message)
        );
    }
    let _ = writeln!(out, "::notice title=memleak::{}", data(&summary_line(a)));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::load::tests::tiny_analysis;

    #[test]
    fn one_error_for_the_leak() {
        let mut a = tiny_analysis();
        a.results[0].process.comm = "x,y:z%\n::error::forged".into();
        let out = render(&a);
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines.len(), 2, "{out}");
        assert!(
            lines[0].starts_with("::error title=Memory leak%3A x%2Cy%3Az%25\u{fffd}%3A%3Aerror%3A%3Aforged (pid 100)::anon grows"),
            "{out}"
        );
        assert!(lines[0].contains("%0Acmdline: "), "{out}");
        assert!(
            lines[1].starts_with("::notice title=memleak::2 processes analysed: 1 leak flagged")
        );
    }

    #[test]
    fn a_flagged_test_is_an_error_annotation() {
        use crate::analyse::phases::TestVerdict;
        let t = TestVerdict {
            name: "t.py::test_x[a,b]".into(),
            kept_bytes: 64.0 * 1048576.0,
            threshold_bytes: 32.0 * 1048576.0,
            floor_bytes: 256.0 * 1024.0,
            reruns: 0,
            confirmed: false,
            inconclusive: false,
            cleared: false,
            flagged: true,
            runs: vec![crate::analyse::phases::TestRun {
                pid: 7,
                start_ns: 1,
                comm: "python".into(),
                start_s: 1.0,
                end_s: 2.0,
                anon_start_bytes: 0.0,
                kept_bytes: 64.0 * 1048576.0,
                by_pid: true,
            }],
        };
        let calm = TestVerdict {
            name: "t.py::test_calm".into(),
            flagged: false,
            ..t.clone()
        };
        let out = render_with_tests(&tiny_analysis(), &[t, calm]);
        let line = out
            .lines()
            .find(|l| l.contains("Memory kept by test"))
            .expect("an annotation for the flagged test");
        assert!(line.starts_with("::error title="), "{line}");
        // `:` and `,` in a property value are escaped.
        assert!(line.contains("t.py%3A%3Atest_x[a%2Cb]"), "{line}");
        assert!(line.contains("kept 64.0 MiB"), "{line}");
        assert!(!out.contains("test_calm"), "{out}");
    }
}
