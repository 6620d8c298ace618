//! Terminal table: flagged and growing processes, most urgent first, with a
//! sparkline of each flagged series and a sentence saying why.

use super::sparkline::sparkline;
use super::{printable, summary_line};
use crate::analyse::units::{fmt_bytes, fmt_duration, fmt_rate};
use crate::analyse::{Analysis, Verdict};

const SPARK_WIDTH: usize = 24;
const NAME_WIDTH: usize = 16;

fn truncate(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_string()
    } else {
        let mut out: String = s.chars().take(n.saturating_sub(1)).collect();
        out.push('…');
        out
    }
}

/// Renders the table (ends with a newline).
pub fn render(a: &Analysis) -> String {
    let mut out = String::new();
    let rec = &a.recording;
    let what = rec
        .command
        .as_deref()
        .map(|c| format!("`{}`", truncate(&printable(c), 60)))
        .unwrap_or_else(|| printable(&rec.path.display().to_string()));
    out.push_str(&format!(
        "memleak: {what}: {} sampler, {} interval, {} recorded\n",
        if rec.sampler.is_empty() {
            "unknown".to_string()
        } else {
            printable(&rec.sampler)
        },
        fmt_duration(rec.interval_s),
        fmt_duration(rec.duration_s)
    ));
    out.push_str(&format!("memleak: {}\n", summary_line(a)));

    let header = [
        "VERDICT",
        "PID",
        "NAME",
        "METRIC/MODEL",
        "SLOPE",
        "R²",
        "WINDOW",
        "TO LIMIT",
        "LIMIT",
        "TREND",
    ];
    let mut rows: Vec<[String; 10]> = Vec::new();
    // One row per leak finding (every flagged metric), else the top finding
    // of a growing process.
    let shown = a.results.iter().flat_map(|r| {
        let leaks: Vec<_> = r
            .findings
            .iter()
            .filter(|f| f.verdict == Verdict::Leak)
            .collect();
        let fs = if leaks.is_empty() {
            r.top()
                .filter(|f| matches!(f.verdict, Verdict::Growing | Verdict::GrewUntilExit))
                .into_iter()
                .collect()
        } else {
            leaks
        };
        fs.into_iter().map(move |f| (r, f))
    });
    for (r, f) in shown {
        let Some(fit) = f.fit else { continue };
        let limit = match f.limit.bytes {
            Some(b) => format!("{} ({})", fmt_bytes(b), f.limit.source.describe()),
            None => "unknown".into(),
        };
        rows.push([
            match f.verdict {
                Verdict::Leak => "LEAK".into(),
                Verdict::GrewUntilExit => "grew→exit".into(),
                Verdict::Growing => "growing".into(),
                Verdict::NoTrend => "-".into(),
            },
            super::fmt_pid(r.process.id.pid),
            truncate(&printable(&r.process.comm), NAME_WIDTH),
            format!("{}/{}", f.metric.name(), f.model.name()),
            fmt_rate(fit.slope),
            format!("{:.3}", fit.r2),
            format!("{} pts / {}", fit.points, fmt_duration(fit.span_s())),
            f.time_to_limit_s
                .map(fmt_duration)
                .unwrap_or_else(|| "-".into()),
            limit,
            f.plot
                .as_ref()
                .map(|p| sparkline(&p.y, SPARK_WIDTH))
                .unwrap_or_else(|| "-".into()),
        ]);
    }
    if rows.is_empty() {
        out.push_str("\nNo process grows like a leak.\n");
        if a.results.is_empty() && !a.skipped.is_empty() {
            // Nothing was judged at all: say how to get a verdict rather
            // than let "no leak" read as a clean bill of health.
            // Series from Prometheus have no --interval: their resolution
            // is the query's --step, their length its --range.
            out.push_str(if a.recording.sampler == "prometheus" {
                "Nothing was long enough to judge: query a longer --range, a finer \
                 --step (not below the scrape interval), or lower --min-points.\n"
            } else {
                "Nothing was long enough to judge: record with a shorter --interval \
                 (e.g. 250ms) or lower --min-points.\n"
            });
        }
    } else {
        let mut widths = header.map(|h| h.chars().count());
        for row in &rows {
            for (w, cell) in widths.iter_mut().zip(row) {
                *w = (*w).max(cell.chars().count());
            }
        }
        let line = |cells: &[String]| {
            let mut s = String::from(" ");
            for (i, (c, w)) in cells.iter().zip(widths).enumerate() {
                let pad = w.saturating_sub(c.chars().count());
                s.push(' ');
                // Numbers right-aligned, text left-aligned.
                if matches!(i, 1 | 4 | 5 | 7) {
                    s.push_str(&" ".repeat(pad));
                    s.push_str(c);
                } else {
                    s.push_str(c);
                    s.push_str(&" ".repeat(pad));
                }
            }
            s.truncate(s.trim_end().len());
            s.push('\n');
            s
        };
        out.push('\n');
        out.push_str(&line(&header.map(String::from)));
        for row in &rows {
            out.push_str(&line(row));
        }
        out.push('\n');
        for r in a.results.iter().filter(|r| r.verdict == Verdict::Leak) {
            for f in r.findings.iter().filter(|f| f.verdict == Verdict::Leak) {
                let evidence = f.evidence.map(|e| e.describe()).unwrap_or("leak");
                out.push_str(&format!(
                    "  {}: {} [{} model; evidence: {evidence}].\n",
                    super::process_label(&r.process),
                    printable(&f.why),
                    f.model.name()
                ));
            }
        }
        // Ambiguous: growth that memory figures cannot tell from the work's
        // own needs, said as such so nobody reads it as a pass or a failure.
        for r in a
            .results
            .iter()
            .filter(|r| r.verdict == Verdict::GrewUntilExit)
        {
            if let Some(f) = r.top() {
                // The why ends with the peak: not said twice.
                out.push_str(&format!(
                    "  {}: grew until exit: {} [{} model].\n",
                    super::process_label(&r.process),
                    printable(&f.why),
                    f.model.name()
                ));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::load::tests::tiny_analysis;

    #[test]
    fn lists_the_leak_with_a_sparkline() {
        let a = tiny_analysis();
        let t = render(&a);
        assert!(t.contains("LEAK"), "{t}");
        assert!(t.contains("leaky<&>"), "{t}");
        assert!(t.contains('█'), "{t}");
        assert!(t.contains("1.0 MiB/s"), "{t}");
        assert!(t.contains("13 min"), "{t}");
        assert!(!t.contains("steady"), "{t}");
        assert!(t.contains("1 skipped (too short: 1)"), "{t}");
        assert!(t.contains("leaky<&> (pid 100): anon grows"), "{t}");
        assert!(t.contains("anon/lbr"), "{t}");
        assert!(
            t.contains("[lbr model; evidence: reaches its limit within the horizon]"),
            "{t}"
        );
        assert!(!t.contains("Nothing was long enough"), "{t}");
    }

    #[test]
    fn no_recorded_text_reaches_the_terminal_raw() {
        let evil = "x\u{1b}[2J\u{1b}]0;t\u{7}\r\n::error::forged";
        let mut a = tiny_analysis();
        a.recording.sampler = evil.into();
        a.recording.host = evil.into();
        a.recording.command = Some(evil.into());
        for r in &mut a.results {
            r.process.comm = evil.into();
            r.process.cmdline = Some(evil.into());
        }
        let t = render(&a);
        assert!(!t.chars().any(|c| c.is_control() && c != '\n'), "{t:?}");
        assert!(!t.lines().any(|l| l.starts_with("::error")), "{t}");
        let mut calm = a.clone();
        calm.recording.command = None;
        assert!(render(&calm).contains("x\u{fffd}[2J"), "{}", render(&calm));
    }

    #[test]
    fn says_how_to_get_a_verdict_when_nothing_could_be_judged() {
        let mut a = tiny_analysis();
        a.results.clear();
        let t = render(&a);
        assert!(t.contains("No process grows like a leak."), "{t}");
        assert!(t.contains("shorter --interval"), "{t}");
    }

    #[test]
    fn prometheus_series_get_advice_analyze_accepts() {
        let mut a = tiny_analysis();
        a.results.clear();
        a.recording.sampler = "prometheus".into();
        let t = render(&a);
        assert!(t.contains("longer --range, a finer --step"), "{t}");
        assert!(!t.contains("--interval"), "analyze has no --interval: {t}");
    }
}
