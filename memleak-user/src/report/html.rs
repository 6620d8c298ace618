//! HTML report: a directory with one self-contained `index.html`: the
//! verdict table, then a chart per flagged or growing process ([`svg`],
//! inline SVG: no script, nothing fetched, one file to attach or mail),
//! then, with `--locate`, a flame graph of where new memory was first
//! touched and the top stacks ([`flamegraph`]), then the processes not
//! judged, collapsed.
//!
//! [`flamegraph`]: super::flamegraph
//!
//! [`svg`]: super::svg

use std::fmt::Write;
use std::path::{Path, PathBuf};

use super::{escape_xml as esc, summary_line, write_file, ReportError};
use crate::analyse::units::{fmt_bytes, fmt_duration, fmt_rate};
use crate::analyse::{Analysis, Metric, Verdict};
pub use crate::load::charts::{ChartSeries, Charts, MAX_CHARTS};
use crate::locate::Located;

const STYLE: &str = "body{font-family:sans-serif;margin:2em;color:#222}\
table{border-collapse:collapse}td,th{padding:4px 10px;border-bottom:1px solid #ddd;text-align:left}\
td.n{text-align:right;font-variant-numeric:tabular-nums}.leak{color:#b00020;font-weight:bold}\
.growing{color:#a05a00}.grew_until_exit{color:#6a4c93}.why{color:#444;max-width:60em}figure{margin:1.5em 0}code{background:#f4f4f4}\
svg{max-width:100%;height:auto}table.stacks code{background:none;font-size:90%}";

/// Writes `index.html` into `dir` (created if needed) and returns its path.
pub fn write(
    a: &Analysis,
    charts: &Charts,
    marked: &super::phases::Marked,
    dir: &Path,
) -> Result<PathBuf, ReportError> {
    crate::files::create_output_dir(dir)?;
    let index = dir.join("index.html");
    let flagged = marked.flagged_test_names();
    write_file(&index, &render_index(a, charts, &marked.located, &flagged))?;
    Ok(index)
}

/// The chart of result `i`, when it has a fit and a series to draw.
fn chart(a: &Analysis, charts: &Charts, i: usize) -> Option<String> {
    let r = a.results.get(i)?;
    let f = r.top()?;
    f.fit?;
    let whole = charts.series.iter().find(|s| s.id == r.process.id);
    let (t, lines): (&[f64], Vec<(Metric, &[f64])>) = match whole {
        Some(s) => {
            // The judged metric first, the others after it.
            let mut lines: Vec<(Metric, &[f64])> =
                s.columns.iter().map(|(m, v)| (*m, v.as_slice())).collect();
            lines.sort_by_key(|(m, _)| *m != f.metric);
            (&s.t, lines)
        }
        None => {
            let plot = f.plot.as_ref()?;
            (&plot.t, vec![(f.metric, plot.y.as_slice())])
        }
    };
    super::svg::render(&super::svg::Chart {
        process: &r.process,
        finding: f,
        t,
        lines,
        phases: &charts.phases,
        start_unix: a.recording.start_unix,
        horizon_s: a.settings.horizon_s,
    })
}

/// The index page; `located` (the stacks of `--locate`, often none) adds
/// the flame graph section ([`flamegraph`]), and the top function of each
/// of `flagged_tests` that has stacks of its own.
///
/// [`flamegraph`]: super::flamegraph
pub fn render_index(
    a: &Analysis,
    charts: &Charts,
    located: &Located,
    flagged_tests: &[&str],
) -> String {
    let rec = &a.recording;
    let plots: Vec<(usize, String)> = a
        .results
        .iter()
        .enumerate()
        .filter(|(_, r)| r.verdict >= Verdict::Growing)
        .filter_map(|(i, _)| Some((i, chart(a, charts, i)?)))
        .take(MAX_CHARTS)
        .collect();
    let unplotted = a
        .results
        .iter()
        .filter(|r| r.verdict >= Verdict::Growing)
        .count()
        .saturating_sub(plots.len());
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
                super::fmt_pid(r.process.id.pid),
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
        h.push_str("<h2>Flagged and growing processes</h2>\n");
        for (i, svg) in &plots {
            let Some(r) = a.results.get(*i) else { continue };
            let _ = writeln!(
                h,
                "<figure id=\"p{i}\">\n{svg}<figcaption>{cap}</figcaption></figure>",
                cap = esc(&format!(
                    "{} (pid {}): {}",
                    r.process.comm,
                    r.process.id.pid,
                    r.process.cmdline.as_deref().unwrap_or("")
                ))
            );
        }
    }
    if unplotted > 0 {
        let _ = writeln!(
            h,
            "<p>{unplotted} more flagged or growing processes have no chart (the first {MAX_CHARTS} are drawn; those from sources other than a recording need a leak verdict).</p>"
        );
    }
    h.push_str(&super::flamegraph::render_section(located));
    h.push_str(&super::flamegraph::render_test_tops(located, flagged_tests));
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
    fn writes_one_page_with_inline_charts() {
        let a = tiny_analysis();
        let dir = tempfile::tempdir().unwrap();
        let index = write(
            &a,
            &Charts::default(),
            &crate::report::phases::Marked::default(),
            &dir.path().join("report"),
        )
        .unwrap();
        let files: Vec<_> = std::fs::read_dir(dir.path().join("report"))
            .unwrap()
            .filter_map(|e| e.ok())
            .map(|e| e.file_name().into_string().unwrap())
            .collect();
        assert_eq!(
            files,
            vec!["index.html".to_string()],
            "one self-contained page"
        );
        let html = std::fs::read_to_string(&index).unwrap();
        // One chart (the leak; the tiny analysis has no growing process),
        // linked from its row, and no script or remote resource.
        assert_eq!(html.matches("<svg ").count(), 1, "{html}");
        assert!(html.contains("<a href=\"#p0\">"), "{html}");
        assert!(!html.contains("<script") && !html.contains("https://"));
        assert_eq!(
            html.matches("http://").count(),
            html.matches("xmlns=\"http://www.w3.org/2000/svg\"").count(),
            "nothing to fetch"
        );
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
        // The whole series, when given, replaces the analysed stretch.
        let r = &a.results[0];
        let charts = Charts {
            series: vec![ChartSeries {
                id: r.process.id,
                t: vec![0.0, 1.0, 2.0, 3.0],
                columns: vec![
                    (Metric::Rss, vec![9e9, 9e9, 9e9, 9e9]),
                    (r.top().unwrap().metric, vec![1.0, 2.0, 3.0, 4.0]),
                ],
            }],
            phases: Vec::new(),
        };
        let with = render_index(&a, &charts, &Located::default(), &[]);
        assert!(with.contains("rss</title></polyline>"), "{with}");
        assert!(with.contains("(judged)"));
        assert!(!with.contains("class=\"flame\""), "nothing located");
    }

    #[test]
    fn located_stacks_add_a_flame_graph_and_the_top_stacks() {
        use crate::report::flamegraph::tests::{located, stack};
        let a = tiny_analysis();
        let l = located(vec![
            stack(7, 30, &["main", "leak_site"]),
            stack(7, 3, &["main", "churn"]),
        ]);
        let mut l = l;
        l.phases = vec![crate::locate::PhaseStacks {
            name: "t.py::test_<leak>".into(),
            stacks: vec![stack(7, 30, &["main", "leak_site"])],
        }];
        let html = render_index(&a, &Charts::default(), &l, &["t.py::test_<leak>"]);
        assert!(
            html.contains("<tr><td><code>t.py::test_&lt;leak&gt;</code></td>")
                && html.contains("<td><code>leak_site (leaky.c:1)</code></td></tr>"),
            "{html}"
        );
        assert!(!render_index(&a, &Charts::default(), &l, &[]).contains("located-tests"));
        assert_eq!(html.matches("<svg class=\"flame\"").count(), 1, "{html}");
        assert!(html.contains("Where new memory was first touched"));
        assert!(html.contains("<table class=\"stacks\">"));
        assert!(
            html.contains("<code>leak_site (leaky.c:1)</code> ← <code>main (leaky.c:1)</code>"),
            "{html}"
        );
        // After the charts, before the list of processes not judged.
        let flame = html.find("class=\"flame\"").unwrap();
        assert!(html.find("<figure id=\"p0\">").unwrap() < flame);
        assert!(flame < html.find("<details>").unwrap());
        assert!(!html.contains("<script"));
    }
}
