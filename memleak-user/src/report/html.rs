//! HTML report: a directory with `index.html` and one SVG plot per flagged
//! finding, which the index shows and links.

use std::fmt::Write;
use std::path::{Path, PathBuf};

use super::{escape_xml as esc, plot_file_name, summary_line, write_file, ReportError};
use crate::analyse::units::{fmt_bytes, fmt_duration, fmt_rate};
use crate::analyse::{Analysis, Verdict};

const STYLE: &str = "body{font-family:sans-serif;margin:2em;color:#222}\
table{border-collapse:collapse}td,th{padding:4px 10px;border-bottom:1px solid #ddd;text-align:left}\
td.n{text-align:right;font-variant-numeric:tabular-nums}.leak{color:#b00020;font-weight:bold}\
.growing{color:#a05a00}.why{color:#444;max-width:60em}figure{margin:1.5em 0}code{background:#f4f4f4}";

/// Writes `index.html` and the plots into `dir` (created if needed) and
/// returns the index's path.
pub fn write(a: &Analysis, dir: &Path) -> Result<PathBuf, ReportError> {
    crate::files::create_output_dir(dir)?;
    let mut plots = Vec::new();
    for (i, r) in a.results.iter().enumerate() {
        for f in r.findings.iter().filter(|f| f.verdict == Verdict::Leak) {
            if let Some(svg) = super::svg::render(&r.process, f) {
                let name = plot_file_name(&r.process, f);
                write_file(&dir.join(&name), &svg)?;
                plots.push((i, name));
            }
        }
    }
    let index = dir.join("index.html");
    write_file(&index, &render_index(a, &plots))?;
    Ok(index)
}

/// The index page; `plots` pairs a result index with its SVG file name.
pub fn render_index(a: &Analysis, plots: &[(usize, String)]) -> String {
    let rec = &a.recording;
    let mut h = String::new();
    let title = match &rec.command {
        Some(c) => format!("memleak: {c}"),
        None => format!("memleak: {}", rec.path.display()),
    };
    let _ = writeln!(
        h,
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<title>{}</title>\n<style>{STYLE}</style>\n</head>\n<body>",
        esc(&title)
    );
    let _ = writeln!(h, "<h1>{}</h1>", esc(&title));
    let _ = writeln!(
        h,
        "<p>Recording <code>{}</code>{}: {} sampler, {} interval, {} recorded{}.</p>",
        esc(&rec.path.display().to_string()),
        if rec.host.is_empty() {
            String::new()
        } else {
            format!(" on {}", esc(&rec.host))
        },
        esc(if rec.sampler.is_empty() {
            "unknown"
        } else {
            &rec.sampler
        }),
        fmt_duration(rec.interval_s),
        fmt_duration(rec.duration_s),
        rec.exit_code
            .map(|c| format!(", command exited with {c}"))
            .unwrap_or_default()
    );
    let _ = writeln!(h, "<p><strong>{}</strong></p>", esc(&summary_line(a)));
    let s = &a.settings;
    let _ = writeln!(
        h,
        "<p>Flagged when a straight line fits the recent memory with R² ≥ {} and reaches the limit within {} (windows of at least {} points, growth above {}).</p>",
        s.r2,
        fmt_duration(s.horizon_s),
        s.min_points,
        fmt_bytes(s.min_growth_bytes)
    );

    let shown: Vec<_> = a
        .results
        .iter()
        .enumerate()
        .filter(|(_, r)| r.verdict != Verdict::NoTrend)
        .collect();
    if shown.is_empty() {
        h.push_str("<p>No process grows like a leak.</p>\n");
    } else {
        h.push_str("<table>\n<tr><th>Verdict</th><th>PID</th><th>Name</th><th>Metric</th><th>Slope</th><th>R²</th><th>Window</th><th>Time to limit</th><th>Limit</th><th>Why</th></tr>\n");
        for (i, r) in &shown {
            let Some(f) = r.top() else { continue };
            let Some(fit) = f.fit else { continue };
            let name = if plots.iter().any(|(j, _)| j == i) {
                format!("<a href=\"#p{i}\">{}</a>", esc(&r.process.comm))
            } else {
                esc(&r.process.comm)
            };
            let _ = writeln!(
                h,
                "<tr><td class=\"{}\">{}</td><td class=\"n\">{}</td><td title=\"{}\">{name}</td><td>{}</td><td class=\"n\">{}</td><td class=\"n\">{:.3}</td><td class=\"n\">{} pts / {}</td><td class=\"n\">{}</td><td>{}</td><td class=\"why\">{}</td></tr>",
                f.verdict.name(),
                f.verdict.name().replace('_', " "),
                r.process.id.pid,
                esc(r.process.cmdline.as_deref().unwrap_or("")),
                f.metric.name(),
                esc(&fmt_rate(fit.slope)),
                fit.r2,
                fit.points,
                fmt_duration(fit.span_s()),
                f.time_to_limit_s.map(fmt_duration).unwrap_or_else(|| "–".into()),
                f.limit
                    .bytes
                    .map(|b| format!("{} ({})", fmt_bytes(b), esc(f.limit.source.describe())))
                    .unwrap_or_else(|| "unknown".into()),
                esc(&f.why)
            );
        }
        h.push_str("</table>\n");
    }
    if !plots.is_empty() {
        h.push_str("<h2>Flagged processes</h2>\n");
        for (i, file) in plots {
            let Some(r) = a.results.get(*i) else { continue };
            let _ = writeln!(
                h,
                "<figure id=\"p{i}\"><a href=\"{f}\"><img src=\"{f}\" alt=\"memory of {alt} over time\" width=\"760\" height=\"340\"></a><figcaption>{cap}</figcaption></figure>",
                f = esc(file),
                alt = esc(&format!("{} (pid {})", r.process.comm, r.process.id.pid)),
                cap = esc(&format!(
                    "{} (pid {}): {}",
                    r.process.comm,
                    r.process.id.pid,
                    r.process.cmdline.as_deref().unwrap_or("")
                ))
            );
        }
    }
    if !a.skipped.is_empty() {
        // Collapsed: a machine-wide recording has thousands of short-lived
        // processes, and the list would bury the findings above.
        let _ = writeln!(
            h,
            "<details><summary>Not judged: {} processes (too short or no samples)</summary>\n<ul>",
            a.skipped_total()
        );
        for s in &a.skipped {
            let _ = writeln!(
                h,
                "<li>{} (pid {}): {}</li>",
                esc(&s.process.comm),
                s.process.id.pid,
                esc(&s.reason.to_string())
            );
        }
        let unlisted = a.skipped_total().saturating_sub(a.skipped.len());
        if unlisted > 0 {
            let _ = writeln!(h, "<li>and {unlisted} more, not listed</li>");
        }
        h.push_str("</ul>\n</details>\n");
    }
    h.push_str("</body>\n</html>\n");
    h
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::load::tests::tiny_analysis;

    #[test]
    fn writes_index_and_plots() {
        let a = tiny_analysis();
        let dir = tempfile::tempdir().unwrap();
        let index = write(&a, &dir.path().join("report")).unwrap();
        let html = std::fs::read_to_string(&index).unwrap();
        let svgs: Vec<_> = std::fs::read_dir(dir.path().join("report"))
            .unwrap()
            .filter_map(|e| e.ok())
            .filter(|e| e.path().extension().is_some_and(|x| x == "svg"))
            .collect();
        assert_eq!(svgs.len(), 1);
        let name = svgs[0].file_name().into_string().unwrap();
        assert!(html.contains(&format!("<img src=\"{name}\"")), "{html}");
        assert!(html.contains("leaky&lt;&amp;&gt;"));
        assert!(!html.contains("leaky<&>"));
        assert!(html.contains("too short to judge"));
        // The not-judged list is collapsed under a count.
        let details = html
            .find("<details><summary>Not judged: 1 processes")
            .unwrap();
        let item = html.find("too short to judge").unwrap();
        let end = html.find("</details>").unwrap();
        assert!(details < item && item < end, "{html}");
    }
}
