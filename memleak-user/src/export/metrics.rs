//! The Prometheus text format of `memleak watch --metrics`.
//!
//! Per-process series are labelled by what identifies a program across
//! restarts, `comm` (the process name) and `cgroup` (the unit or container
//! it runs in), not by pid: a pid label makes a new series at every
//! restart. Processes sharing those labels are summed (memory) or give
//! their worst figure (growth, time to limit), and `memleak_processes`
//! says how many there are. `pid` is added only on request
//! ([`Options::pid_label`]). The number of label sets is bounded by
//! [`Options::max_series`]: suspects first, then the largest by rss; the
//! rest are aggregated under `comm="(other)",cgroup=""`.
//!
//! | name | type | labels |
//! |---|---|---|
//! | `memleak_build_info` | gauge (1) | version |
//! | `memleak_sampler_info` | gauge (1) | sampler (ebpf, procfs) |
//! | `memleak_process_rss_bytes`, `_anon_bytes`, `_vm_bytes` | gauge | comm, cgroup[, pid] |
//! | `memleak_processes` | gauge | comm, cgroup[, pid] |
//! | `memleak_process_growth_bytes_per_second` | gauge | comm, cgroup[, pid], metric |
//! | `memleak_process_time_to_limit_seconds` | gauge | comm, cgroup[, pid], metric |
//! | `memleak_leak_suspect` | gauge (1) | comm, cgroup[, pid], metric |
//! | `memleak_leak_suspects` | gauge | |
//! | `memleak_processes_tracked`, `memleak_processes_exported` | gauge | |
//! | `memleak_sampler_events_total` | counter | event |
//! | `memleak_sampler_scan_seconds_total` | counter | |
//! | `memleak_sampler_procs_map_entries` | gauge | |
//! | `memleak_memory_limit_bytes` | gauge | metric |
//! | `memleak_analysis_window_seconds` | gauge | |
//! | `memleak_exporter_refresh_duration_seconds` | gauge | |
//! | `memleak_exporter_last_refresh_timestamp_seconds` | gauge | |
//!
//! The exporter's own scrape and error figures are added at scrape time
//! (see [`super::Exposition`]).

use std::collections::BTreeMap;
use std::fmt::Write;

use crate::analyse::{Analysis, Metric, ProcessRef, Verdict};
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

pub(crate) fn header(out: &mut String, name: &str, kind: &str, help: &str) {
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

/// What the exposition shows.
#[derive(Clone, Debug)]
pub struct Options {
    /// Label sets at most (beyond: aggregated as `comm="(other)"`).
    pub max_series: usize,
    /// Add a `pid` label: one series per process.
    pub pid_label: bool,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            max_series: 200,
            pid_label: false,
        }
    }
}

/// The `comm` of the aggregate beyond [`Options::max_series`]; parentheses
/// keep it apart from a program name as reports print them.
pub const OTHER: &str = "(other)";

/// Sampler counters that are levels, not running totals.
const SAMPLER_GAUGES: [&str; 1] = ["procs_map_entries"];

/// The labels of one series: comm, cgroup and maybe pid.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Key {
    comm: String,
    cgroup: String,
    pid: Option<u32>,
}

impl Key {
    fn labels(&self) -> String {
        let mut s = format!(
            "comm=\"{}\",cgroup=\"{}\"",
            escape(&self.comm),
            escape(&self.cgroup)
        );
        if let Some(pid) = self.pid {
            let _ = write!(s, ",pid=\"{pid}\"");
        }
        s
    }
}

#[derive(Default)]
struct Group {
    processes: usize,
    mem: [f64; 3],
    flagged: bool,
    /// Per metric: worst growth (bytes/s) and shortest time to limit.
    growth: BTreeMap<Metric, f64>,
    ttl: BTreeMap<Metric, f64>,
    suspect: BTreeMap<Metric, ()>,
}

impl Group {
    fn absorb(&mut self, o: Group) {
        self.processes += o.processes;
        for (a, b) in self.mem.iter_mut().zip(o.mem) {
            *a += b;
        }
        self.flagged |= o.flagged;
        for (m, g) in o.growth {
            let e = self.growth.entry(m).or_insert(g);
            *e = e.max(g);
        }
        for (m, t) in o.ttl {
            let e = self.ttl.entry(m).or_insert(t);
            *e = e.min(t);
        }
        self.suspect.extend(o.suspect);
    }
}

const SHOWN: [(Metric, &str, &str); 3] = [
    (
        Metric::Rss,
        "memleak_process_rss_bytes",
        "Resident memory (anon + file + shmem) of the processes with these labels.",
    ),
    (
        Metric::Anon,
        "memleak_process_anon_bytes",
        "Anonymous + shmem resident memory + swap (what leaks are judged on) of the processes with these labels.",
    ),
    (
        Metric::Vm,
        "memleak_process_vm_bytes",
        "Virtual size of the processes with these labels.",
    ),
];

/// Renders the exposition for what [`Loaded`] holds and its analysis;
/// `cgroup` names the cgroup of a live process ("" when unknown).
pub fn render(
    l: &Loaded,
    a: &Analysis,
    opts: &Options,
    r: Refresh,
    cgroup: &dyn Fn(&ProcessRef) -> String,
) -> String {
    let mut out = String::new();
    header(
        &mut out,
        "memleak_build_info",
        "gauge",
        "1, labelled with the memleak version that serves these metrics.",
    );
    let _ = writeln!(
        out,
        "memleak_build_info{{version=\"{}\"}} 1",
        escape(env!("CARGO_PKG_VERSION"))
    );
    header(
        &mut out,
        "memleak_sampler_info",
        "gauge",
        "1, labelled with the sampler recording now (ebpf; procfs when eBPF was unavailable).",
    );
    let _ = writeln!(
        out,
        "memleak_sampler_info{{sampler=\"{}\"}} 1",
        escape(&l.sampler)
    );

    // Live processes: a point near the newest instant of the window.
    let newest = l
        .series
        .iter()
        .filter_map(|s| s.t.last().copied())
        .fold(f64::NEG_INFINITY, f64::max);
    let slack = (5.0 * l.interval_s).max(5.0);
    // One cgroup lookup per process, though it has a series and a result.
    let mut cgroups = std::collections::HashMap::new();
    let mut key_of = |p: &ProcessRef| Key {
        comm: p.comm.clone(),
        cgroup: cgroups.entry(p.id).or_insert_with(|| cgroup(p)).clone(),
        pid: opts.pid_label.then_some(p.id.pid),
    };
    let mut groups: BTreeMap<Key, Group> = BTreeMap::new();
    let mut live = 0;
    for s in &l.series {
        if !(s.alive && s.t.last().is_some_and(|&t| t >= newest - slack)) {
            continue;
        }
        live += 1;
        let g = groups.entry(key_of(&s.process)).or_default();
        g.processes += 1;
        for (i, (m, _, _)) in SHOWN.iter().enumerate() {
            let v = s.columns.iter().find(|(c, _)| c == m);
            g.mem[i] += v.and_then(|(_, v)| v.last().copied()).unwrap_or(0.0);
        }
    }
    // Every judged process's growth and time to limit, so that users can
    // set their own thresholds, not only the flagged ones.
    for res in &a.results {
        let g = groups.entry(key_of(&res.process)).or_default();
        for f in &res.findings {
            if let Some(fit) = f.fit {
                let e = g.growth.entry(f.metric).or_insert(fit.slope);
                *e = e.max(fit.slope);
            }
            if let Some(t) = f.time_to_limit_s {
                let e = g.ttl.entry(f.metric).or_insert(t);
                *e = e.min(t);
            }
            if f.verdict == Verdict::Leak {
                g.flagged = true;
                g.suspect.insert(f.metric, ());
            }
        }
    }
    // Bound the label sets: suspects first, then by rss.
    let mut ranked: Vec<(Key, Group)> = groups.into_iter().collect();
    ranked.sort_by(|(ka, a), (kb, b)| {
        b.flagged
            .cmp(&a.flagged)
            .then(b.mem[0].total_cmp(&a.mem[0]))
            .then(ka.cmp(kb))
    });
    let keep = if ranked.len() > opts.max_series {
        opts.max_series.saturating_sub(1)
    } else {
        ranked.len()
    };
    let rest = ranked.split_off(keep);
    let exported: usize = ranked.iter().map(|(_, g)| g.processes).sum();
    if !rest.is_empty() {
        let mut other = Group::default();
        for (_, g) in rest {
            other.absorb(g);
        }
        let key = Key {
            comm: OTHER.into(),
            cgroup: String::new(),
            pid: None,
        };
        ranked.push((key, other));
    }

    for (i, (_, name, help)) in SHOWN.iter().enumerate() {
        header(&mut out, name, "gauge", help);
        for (k, g) in ranked.iter().filter(|(_, g)| g.processes > 0) {
            let _ = writeln!(out, "{name}{{{}}} {}", k.labels(), g.mem[i]);
        }
    }
    header(
        &mut out,
        "memleak_processes",
        "gauge",
        "Live processes with these labels.",
    );
    for (k, g) in ranked.iter().filter(|(_, g)| g.processes > 0) {
        let _ = writeln!(out, "memleak_processes{{{}}} {}", k.labels(), g.processes);
    }
    header(
        &mut out,
        "memleak_process_growth_bytes_per_second",
        "gauge",
        "Fitted growth rate over the analysis window of every judged process (the largest of the processes with these labels).",
    );
    for (k, g) in &ranked {
        for (m, v) in &g.growth {
            let _ = writeln!(
                out,
                "memleak_process_growth_bytes_per_second{{{},metric=\"{m}\"}} {v}",
                k.labels()
            );
        }
    }
    header(
        &mut out,
        "memleak_process_time_to_limit_seconds",
        "gauge",
        "Projected seconds until a growing process reaches its memory limit (the shortest of the processes with these labels).",
    );
    for (k, g) in &ranked {
        for (m, v) in &g.ttl {
            let _ = writeln!(
                out,
                "memleak_process_time_to_limit_seconds{{{},metric=\"{m}\"}} {v}",
                k.labels()
            );
        }
    }
    header(
        &mut out,
        "memleak_leak_suspect",
        "gauge",
        "1 for each label set and metric memleak flags as leaking.",
    );
    for (k, g) in &ranked {
        for m in g.suspect.keys() {
            let _ = writeln!(
                out,
                "memleak_leak_suspect{{{},metric=\"{m}\"}} 1",
                k.labels()
            );
        }
    }
    for (name, v, help) in [
        (
            "memleak_leak_suspects",
            a.count(Verdict::Leak),
            "Processes flagged as leaking over the analysis window.",
        ),
        (
            "memleak_processes_tracked",
            live,
            "Live processes memleak currently records.",
        ),
        (
            "memleak_processes_exported",
            exported,
            "Live processes in the labelled series (not in the \"(other)\" aggregate).",
        ),
    ] {
        header(&mut out, name, "gauge", help);
        let _ = writeln!(out, "{name} {v}");
    }
    sampler_counters(&mut out, &l.counters);

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
            "memleak_exporter_refresh_duration_seconds",
            r.analysis_s,
            "How long the last successful refresh took to read the new samples and analyse the window.",
        ),
        (
            "memleak_exporter_last_refresh_timestamp_seconds",
            r.at_unix,
            "When the figures were last refreshed (Unix time).",
        ),
    ] {
        header(&mut out, name, "gauge", help);
        let _ = writeln!(out, "{name} {v}");
    }
    out
}

/// The sampler's health counters of the current file: running totals as a
/// counter (they restart at each rotation, which Prometheus' `rate` and
/// `increase` treat as a counter reset), levels as gauges.
fn sampler_counters(out: &mut String, counters: &[(String, i64)]) {
    header(
        out,
        "memleak_sampler_events_total",
        "counter",
        "Sampler events since the current recording file started (map overflows, lost exits, ...).",
    );
    for (name, v) in counters {
        if SAMPLER_GAUGES.contains(&name.as_str()) || name == "procfs_scan_us" {
            continue;
        }
        let _ = writeln!(
            out,
            "memleak_sampler_events_total{{event=\"{}\"}} {v}",
            escape(name)
        );
    }
    if let Some((_, us)) = counters.iter().find(|(n, _)| n == "procfs_scan_us") {
        header(
            out,
            "memleak_sampler_scan_seconds_total",
            "counter",
            "Time the procfs sampler spent scanning /proc since the current file started.",
        );
        let _ = writeln!(
            out,
            "memleak_sampler_scan_seconds_total {}",
            *us as f64 / 1e6
        );
    }
    if let Some((_, n)) = counters.iter().find(|(n, _)| n == "procs_map_entries") {
        header(
            out,
            "memleak_sampler_procs_map_entries",
            "gauge",
            "Entries in the eBPF sampler's process map now (near the live processes in scope, or entries leak).",
        );
        let _ = writeln!(out, "memleak_sampler_procs_map_entries {n}");
    }
}

#[cfg(test)]
mod tests;
