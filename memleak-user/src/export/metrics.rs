//! The Prometheus text format of `memleak watch --metrics`.
//!
//! Cardinality is bounded: per-process series only for the `top` live
//! processes by rss (labels `pid`, `comm`), and leak-suspect series only
//! for at most `top` flagged findings. Series:
//!
//! | name | type | labels |
//! |---|---|---|
//! | `memleak_process_rss_bytes` | gauge | pid, comm |
//! | `memleak_process_anon_bytes` | gauge | pid, comm |
//! | `memleak_process_vm_bytes` | gauge | pid, comm |
//! | `memleak_processes_tracked` | gauge | |
//! | `memleak_processes_exported` | gauge | |
//! | `memleak_sampler_events_total` | counter | counter (the sampler's health counter) |
//! | `memleak_leak_suspects` | gauge | |
//! | `memleak_leak_suspect` | gauge (1) | pid, comm, metric |
//! | `memleak_leak_slope_bytes_per_second` | gauge | pid, comm, metric |
//! | `memleak_leak_time_to_limit_seconds` | gauge | pid, comm, metric |
//! | `memleak_memory_limit_bytes` | gauge | metric |
//! | `memleak_analysis_window_seconds` | gauge | |
//! | `memleak_analysis_duration_seconds` | gauge | |
//! | `memleak_refresh_timestamp_seconds` | gauge | |

use std::fmt::Write;

use crate::analyse::{Analysis, Metric, Verdict};
use crate::source::range::Loaded;

/// Escapes a label value (backslash, double quote, newline).
pub fn escape(v: &str) -> String {
    let mut s = String::with_capacity(v.len());
    for c in v.chars() {
        match c {
            '\\' => s.push_str("\\\\"),
            '"' => s.push_str("\\\""),
            '\n' => s.push_str("\\n"),
            c if c.is_control() => s.push('?'),
            c => s.push(c),
        }
    }
    s
}

fn header(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

/// Timing facts of one refresh.
#[derive(Clone, Copy, Debug, Default)]
pub struct Refresh {
    pub window_s: f64,
    pub analysis_s: f64,
    pub at_unix: f64,
}

/// Renders the exposition for what [`Loaded`] holds and its analysis.
pub fn render(l: &Loaded, a: &Analysis, top: usize, r: Refresh) -> String {
    let mut out = String::new();
    // Live processes: a point near the newest instant of the window.
    let newest = l
        .series
        .iter()
        .filter_map(|s| s.t.last().copied())
        .fold(f64::NEG_INFINITY, f64::max);
    let slack = (5.0 * l.interval_s).max(5.0);
    let value = |s: &crate::source::Series, m: Metric| {
        s.columns
            .iter()
            .find(|(c, _)| *c == m)
            .and_then(|(_, v)| v.last().copied())
    };
    let mut live: Vec<_> = l
        .series
        .iter()
        .filter(|s| s.alive && s.t.last().is_some_and(|&t| t >= newest - slack))
        .collect();
    live.sort_by(|a, b| {
        let (x, y) = (value(a, Metric::Rss), value(b, Metric::Rss));
        y.unwrap_or(0.0)
            .total_cmp(&x.unwrap_or(0.0))
            .then(a.process.id.cmp(&b.process.id))
    });
    let shown = &live[..live.len().min(top)];
    let labels = |pid: u32, comm: &str| format!("pid=\"{pid}\",comm=\"{}\"", escape(comm));
    for (m, name, help) in [
        (
            Metric::Rss,
            "memleak_process_rss_bytes",
            "Resident memory (anon + file + shmem) of a process; the top processes by rss only.",
        ),
        (
            Metric::Anon,
            "memleak_process_anon_bytes",
            "Anonymous + shmem resident memory + swap of a process (what leaks are judged on); the top processes by rss only.",
        ),
        (
            Metric::Vm,
            "memleak_process_vm_bytes",
            "Virtual size of a process; the top processes by rss only.",
        ),
    ] {
        header(&mut out, name, "gauge", help);
        for s in shown {
            if let Some(v) = value(s, m) {
                let _ = writeln!(
                    out,
                    "{name}{{{}}} {v}",
                    labels(s.process.id.pid, &s.process.comm)
                );
            }
        }
    }
    header(
        &mut out,
        "memleak_processes_tracked",
        "gauge",
        "Live processes memleak currently records.",
    );
    let _ = writeln!(out, "memleak_processes_tracked {}", live.len());
    header(
        &mut out,
        "memleak_processes_exported",
        "gauge",
        "Processes with per-process series here (at most --top).",
    );
    let _ = writeln!(out, "memleak_processes_exported {}", shown.len());

    header(
        &mut out,
        "memleak_sampler_events_total",
        "counter",
        "Sampler health counters (events seen, map overflows, lost exits, ...).",
    );
    for (name, v) in &l.counters {
        let _ = writeln!(
            out,
            "memleak_sampler_events_total{{counter=\"{}\"}} {v}",
            escape(name)
        );
    }

    let leaks: Vec<_> = a
        .results
        .iter()
        .flat_map(|r| {
            r.findings
                .iter()
                .filter(|f| f.verdict == Verdict::Leak)
                .map(move |f| (r, f))
        })
        .take(top)
        .collect();
    header(
        &mut out,
        "memleak_leak_suspects",
        "gauge",
        "Processes flagged as leaking over the analysis window.",
    );
    let _ = writeln!(out, "memleak_leak_suspects {}", a.count(Verdict::Leak));
    header(
        &mut out,
        "memleak_leak_suspect",
        "gauge",
        "1 for each flagged process and metric.",
    );
    for (r, f) in &leaks {
        let _ = writeln!(
            out,
            "memleak_leak_suspect{{{},metric=\"{}\"}} 1",
            labels(r.process.id.pid, &r.process.comm),
            f.metric
        );
    }
    header(
        &mut out,
        "memleak_leak_slope_bytes_per_second",
        "gauge",
        "Growth rate of a flagged process (fitted over its window).",
    );
    for (r, f) in &leaks {
        if let Some(fit) = f.fit {
            let _ = writeln!(
                out,
                "memleak_leak_slope_bytes_per_second{{{},metric=\"{}\"}} {}",
                labels(r.process.id.pid, &r.process.comm),
                f.metric,
                fit.slope
            );
        }
    }
    header(
        &mut out,
        "memleak_leak_time_to_limit_seconds",
        "gauge",
        "Projected seconds until a flagged process reaches its memory limit.",
    );
    for (r, f) in &leaks {
        if let Some(ttl) = f.time_to_limit_s {
            let _ = writeln!(
                out,
                "memleak_leak_time_to_limit_seconds{{{},metric=\"{}\"}} {ttl}",
                labels(r.process.id.pid, &r.process.comm),
                f.metric
            );
        }
    }
    header(
        &mut out,
        "memleak_memory_limit_bytes",
        "gauge",
        "The limit projections use, per metric.",
    );
    for (m, lim) in &l.limits {
        if let Some(b) = lim.bytes {
            let _ = writeln!(out, "memleak_memory_limit_bytes{{metric=\"{m}\"}} {b}");
        }
    }
    for (name, v, help) in [
        (
            "memleak_analysis_window_seconds",
            r.window_s,
            "Length of the window the analyser looks at.",
        ),
        (
            "memleak_analysis_duration_seconds",
            r.analysis_s,
            "How long the last refresh (read + analyse) took.",
        ),
        (
            "memleak_refresh_timestamp_seconds",
            r.at_unix,
            "When the figures were last refreshed (Unix time).",
        ),
    ] {
        header(&mut out, name, "gauge", help);
        let _ = writeln!(out, "{name} {v}");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(escape("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    }
}
