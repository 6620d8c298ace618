use super::*;
use crate::analyse::limits::{Limit, LimitSource};
use crate::analyse::Settings;
use crate::sample::ProcId;
use crate::source::{range, Series};

const MIB: f64 = 1048576.0;

fn series(pid: u32, comm: &str, at: impl Fn(f64) -> f64) -> Series {
    let t: Vec<f64> = (0..600).map(f64::from).collect();
    let col = |f: &dyn Fn(f64) -> f64| t.iter().map(|&x| f(x)).collect::<Vec<f64>>();
    Series {
        process: ProcessRef {
            id: ProcId {
                pid,
                start_ns: u64::from(pid),
            },
            ppid: 1,
            comm: comm.into(),
            cmdline: None,
            exit_code: None,
        },
        columns: vec![
            (Metric::Anon, col(&at)),
            (Metric::Rss, col(&|x| at(x) + MIB)),
            (Metric::Vm, col(&|x| 3.0 * at(x))),
        ],
        t,
        alive: true,
    }
}

/// Three nginx workers (flat), a fast leaker, a slow grower, five small.
fn loaded(counters: Vec<(String, i64)>) -> Loaded {
    let mut s = vec![
        series(10, "nginx", |_| 100.0 * MIB),
        series(11, "nginx", |_| 100.0 * MIB),
        series(12, "nginx", |_| 100.0 * MIB),
        series(20, "leaky", |t| 100.0 * MIB + 10.0 * MIB * t),
        series(30, "slow", |t| 50.0 * MIB + 1024.0 * t),
    ];
    for i in 0..5 {
        s.push(series(40 + i, &format!("small{i}"), |_| MIB));
    }
    let lim = Limit::new(8 << 30, LimitSource::MemTotal);
    Loaded {
        series: s,
        limits: vec![(Metric::Anon, lim), (Metric::Rss, lim), (Metric::Vm, lim)],
        interval_s: 1.0,
        t0_unix: 1e9,
        end_unix: 1e9 + 599.0,
        files: vec![],
        host: "h".into(),
        sampler: "procfs".into(),
        counters,
        processes: 10,
        located: Default::default(),
    }
}

fn text(opts: &Options, counters: Vec<(String, i64)>) -> String {
    let l = loaded(counters);
    let a = range::analyse_loaded(&l, &Settings::default());
    render(&l, &a, opts, Refresh::default(), &|p| {
        if p.comm == "nginx" {
            "/system.slice/nginx.service".into()
        } else {
            String::new()
        }
    })
}

fn lines<'a>(t: &'a str, name: &str) -> Vec<&'a str> {
    t.lines()
        .filter(|l| l.starts_with(&format!("{name}{{")))
        .collect()
}

#[test]
fn label_values_are_escaped() {
    assert_eq!(escape("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
}

#[test]
fn series_are_labelled_by_name_and_cgroup_not_pid() {
    let t = text(&Options::default(), vec![]);
    assert!(!t.contains("pid="), "{t}");
    let nginx = "comm=\"nginx\",cgroup=\"/system.slice/nginx.service\"";
    assert!(
        t.contains(&format!(
            "memleak_process_anon_bytes{{{nginx}}} {}",
            300.0 * MIB
        )),
        "{t}"
    );
    assert!(
        t.contains(&format!("memleak_processes{{{nginx}}} 3")),
        "{t}"
    );
    assert_eq!(lines(&t, "memleak_process_rss_bytes").len(), 8);
}

#[test]
fn pid_label_only_on_request() {
    let opts = Options {
        pid_label: true,
        ..Options::default()
    };
    let t = text(&opts, vec![]);
    assert_eq!(lines(&t, "memleak_process_rss_bytes").len(), 10, "{t}");
    assert!(t.contains("comm=\"nginx\",cgroup=\"/system.slice/nginx.service\",pid=\"11\""));
}

#[test]
fn label_sets_are_bounded_and_the_rest_aggregated() {
    let opts = Options {
        max_series: 3,
        pid_label: true,
    };
    let t = text(&opts, vec![]);
    let rss = lines(&t, "memleak_process_rss_bytes");
    assert_eq!(rss.len(), 3, "{t}");
    // The suspect keeps its own series; nothing is lost in the sum.
    assert!(rss.iter().any(|l| l.contains("comm=\"leaky\"")), "{t}");
    assert!(rss.iter().any(|l| l.contains("comm=\"(other)\"")), "{t}");
    let sum = |t: &str| -> f64 {
        lines(t, "memleak_process_rss_bytes")
            .iter()
            .map(|l| l.rsplit(' ').next().unwrap().parse::<f64>().unwrap())
            .sum()
    };
    assert_eq!(sum(&t), sum(&text(&Options::default(), vec![])));
    assert!(t.contains("memleak_processes_tracked 10"));
    assert!(t.contains("memleak_processes_exported 2"), "{t}");
}

#[test]
fn every_judged_process_has_its_growth_and_time_to_limit() {
    let t = text(&Options::default(), vec![]);
    let slow = lines(&t, "memleak_process_growth_bytes_per_second")
        .into_iter()
        .find(|l| l.contains("comm=\"slow\"") && l.contains("metric=\"anon\""))
        .unwrap_or_else(|| panic!("a growing, unflagged process has no growth: {t}"));
    let v: f64 = slow.rsplit(' ').next().unwrap().parse().unwrap();
    assert!((v - 1024.0).abs() < 10.0, "{slow}");
    assert!(lines(&t, "memleak_process_time_to_limit_seconds")
        .iter()
        .any(|l| l.contains("comm=\"slow\"")));
    let suspects = lines(&t, "memleak_leak_suspect");
    assert!(suspects.iter().all(|l| l.contains("comm=\"leaky\"")), "{t}");
    assert!(!suspects.is_empty(), "{t}");
}

#[test]
fn sampler_levels_are_gauges_and_running_totals_counters() {
    let t = text(
        &Options::default(),
        vec![
            ("exits_lost".into(), 2),
            ("procs_map_entries".into(), 87),
            ("procfs_scan_us".into(), 1_500_000),
        ],
    );
    assert!(t.contains("memleak_sampler_events_total{event=\"exits_lost\"} 2"));
    assert!(!t.contains("event=\"procs_map_entries\""), "{t}");
    assert!(t.contains(
        "# TYPE memleak_sampler_procs_map_entries gauge\nmemleak_sampler_procs_map_entries 87"
    ));
    assert!(t.contains("memleak_sampler_scan_seconds_total 1.5"), "{t}");
    for l in t.lines().filter(|l| l.starts_with("# TYPE")) {
        let name = l.split(' ').nth(2).unwrap();
        assert_eq!(
            name.ends_with("_total"),
            l.ends_with(" counter"),
            "_total is for counters only: {l}"
        );
    }
}

#[test]
fn build_and_sampler_are_named() {
    let t = text(&Options::default(), vec![]);
    assert!(t.contains(&format!(
        "memleak_build_info{{version=\"{}\"}} 1",
        env!("CARGO_PKG_VERSION")
    )));
    assert!(t.contains("memleak_sampler_info{sampler=\"procfs\"} 1"));
}
