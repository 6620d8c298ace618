//! Reports of analysis results: table, JSON, JUnit, GitHub annotations, SVG, HTML.
//!
//! Every renderer takes an [`Analysis`] whose
//! results are already sorted by urgency (leaks first, shortest time to the
//! limit first). Text that comes from a recording (process names, command
//! lines, test names, meta fields such as the sampler) is untrusted: it is
//! escaped for XML/HTML ([`escape_xml`]) and stripped of control characters
//! for terminals and CI logs ([`printable`]), the one sanitiser every text
//! renderer uses.

pub mod baseline;
pub mod eval;
pub mod flamegraph;
pub mod github;
pub mod html;
pub mod json;
pub mod junit;
pub mod located;
pub mod phases;
pub mod sparkline;
pub mod svg;
pub mod table;

use std::path::Path;

use crate::analyse::{Analysis, ProcessRef};

/// Output formats.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// Terminal table, most urgent first, with sparklines.
    Table,
    /// JSON, see `report/schema/report.schema.json` (schema_version 1).
    Json,
    /// JUnit XML: one testcase per process, a failure per flagged one.
    Junit,
    /// GitHub Actions workflow commands (`::error`, `::warning`).
    Github,
    /// A directory with index.html: the table and an inline SVG chart per
    /// flagged or growing process.
    Html,
}

#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error("cannot write the report: {0}")]
    Write(#[from] crate::files::FileError),
}

/// Renders a single-document format (everything but HTML).
pub fn render(analysis: &Analysis, format: Format) -> String {
    match format {
        Format::Table => table::render(analysis),
        Format::Json => json::render(analysis),
        Format::Junit => junit::render(analysis),
        Format::Github => github::render(analysis),
        Format::Html => {
            html::render_index(analysis, &html::Charts::default(), &Default::default(), &[])
        }
    }
}

/// Writes `text` to `path` without following a link planted there (see
/// [`crate::files::output`]).
pub fn write_file(path: &Path, text: &str) -> Result<(), ReportError> {
    Ok(crate::files::write_output(
        path,
        text.as_bytes(),
        crate::files::Audience::Owner,
    )?)
}

/// Escapes text for XML/HTML content and attribute values, and drops the
/// characters XML 1.0 cannot carry at all (control characters other than
/// tab/newline/CR, U+FFFE, U+FFFF), replacing them with U+FFFD.
pub fn escape_xml(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            // Line breaks as references: a recorded name must not start a
            // new line of output (CI logs read `::error::` lines as commands).
            '\n' => out.push_str("&#10;"),
            '\r' => out.push_str("&#13;"),
            '\t' => out.push(c),
            c if (c as u32) < 0x20 || c == '\u{7f}' || c == '\u{fffe}' || c == '\u{ffff}' => {
                out.push('\u{fffd}')
            }
            c => out.push(c),
        }
    }
    out
}

pub use crate::diag::printable;

/// `name (pid 123)`, printable; `name` alone when the pid is unknown.
pub fn process_label(p: &ProcessRef) -> String {
    match p.id.pid {
        0 => printable(&p.comm),
        pid => format!("{} (pid {pid})", printable(&p.comm)),
    }
}

/// A pid for people: "–" when unknown (series from Prometheus without a
/// `pid` label read as 0, which is never a user process: it is the
/// kernel's idle task).
pub fn fmt_pid(pid: u32) -> String {
    match pid {
        0 => "–".into(),
        pid => pid.to_string(),
    }
}

/// One-line summary: "2 processes analysed: 1 leak flagged, 0 growing, 1 skipped (too_short: 1)".
pub fn summary_line(a: &Analysis) -> String {
    use crate::analyse::Verdict;
    // "grew until exit" only when there is one: most reports have none,
    // and the line is read by people and matched by scripts.
    let grew = match a.count(Verdict::GrewUntilExit) {
        0 => String::new(),
        n => format!("{n} grew until exit (not flagged), "),
    };
    let mut s = format!(
        "{} processes analysed: {} leak{} flagged, {grew}{} growing, {} skipped",
        a.results.len(),
        a.count(Verdict::Leak),
        if a.count(Verdict::Leak) == 1 { "" } else { "s" },
        a.count(Verdict::Growing),
        a.skipped_total()
    );
    let counts = a.skip_counts();
    if !counts.is_empty() {
        let parts: Vec<String> = counts
            .iter()
            .map(|(k, n)| format!("{}: {n}", k.replace('_', " ")))
            .collect();
        s.push_str(&format!(" ({})", parts.join(", ")));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_pids_print_as_a_dash_not_zero() {
        let mut a = crate::load::tests::tiny_analysis();
        a.results[0].process.id.pid = 0;
        let t = table::render(&a);
        let row = t.lines().find(|l| l.contains("LEAK")).unwrap();
        assert!(row.contains(" – "), "{t}");
        assert!(!row.contains(" 0 "), "{t}");
        assert!(!t.contains("(pid 0)"), "{t}");
        assert!(!github::render(&a).contains("(pid 0)"));
    }

    #[test]
    fn escapes() {
        assert_eq!(
            escape_xml("a<b>&\"c'\u{1b}[31m\u{0}"),
            "a&lt;b&gt;&amp;&quot;c&#39;\u{fffd}[31m\u{fffd}"
        );
        assert_eq!(printable("x\u{1b}[2Jy\nz"), "x\u{fffd}[2Jy\u{fffd}z");
    }
}
