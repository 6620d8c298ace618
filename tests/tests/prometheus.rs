//! `memleak watch --metrics` scraped by a real Prometheus server, then
//! `memleak analyze --prometheus` and `memleak analyze DIR --since` on
//! what was collected: a leaking workload is flagged, a stable one is not.
//!
//! Needs `/usr/bin/prometheus` (Debian package `prometheus`; `cargo xtask
//! setup` installs it). Without it the test skips with the reason, except
//! on CI (CI=true), where it fails. The same for `promtool` (same
//! package), which checks the exposition and the shipped alerting rules.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use memleak_tests::{free_port, memleak_bin, output_ok, workload, ChildGuard};
use serde_json::Value;

fn find_bin(name: &str) -> Option<PathBuf> {
    let p = PathBuf::from("/usr/bin").join(name);
    if p.is_file() {
        return Some(p);
    }
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|d| d.join(name))
            .find(|p| p.is_file())
    })
}

fn prometheus_bin() -> Option<PathBuf> {
    find_bin("prometheus")
}

/// promtool, or None after saying why the test skips (a failure on CI).
fn promtool() -> Option<PathBuf> {
    let p = find_bin("promtool");
    if p.is_none() {
        if std::env::var("CI").is_ok_and(|v| v == "true") {
            panic!("promtool is required on CI (apt-get install -y prometheus; cargo xtask setup does it)");
        }
        eprintln!("SKIPPED: no promtool binary (apt-get install -y prometheus)");
    }
    p
}

fn repo_file(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(rel)
}

/// An exposition with every kind of series: a leaker, a slow grower, a
/// flat process, health counters, and the exporter's own figures.
fn exposition() -> String {
    use memleak::analyse::limits::{Limit, LimitSource};
    use memleak::analyse::{Metric, ProcessRef, Settings};
    use memleak::export::metrics::{render, Options, Refresh};
    use memleak::sample::ProcId;
    use memleak::source::{range, Series};
    let mib = 1048576.0;
    let t: Vec<f64> = (0..600).map(f64::from).collect();
    let series = |pid: u32, comm: &str, slope: f64| Series {
        process: ProcessRef {
            id: ProcId {
                pid,
                start_ns: pid.into(),
            },
            ppid: 1,
            comm: comm.into(),
            cmdline: None,
            exit_code: None,
        },
        columns: [Metric::Anon, Metric::Rss, Metric::Vm]
            .into_iter()
            .map(|m| (m, t.iter().map(|x| 100.0 * mib + slope * x).collect()))
            .collect(),
        t: t.clone(),
        alive: true,
    };
    let lim = Limit::new(8 << 30, LimitSource::MemTotal);
    let loaded = range::Loaded {
        series: vec![
            series(1, "leaky \"x\"", 10.0 * mib),
            series(2, "slow", 1024.0),
            series(3, "flat", 0.0),
        ],
        limits: vec![(Metric::Anon, lim), (Metric::Rss, lim), (Metric::Vm, lim)],
        interval_s: 1.0,
        t0_unix: 1e9,
        end_unix: 1e9 + 599.0,
        files: vec![],
        host: "h".into(),
        sampler: "ebpf".into(),
        counters: vec![
            ("exits_lost".into(), 1),
            ("procs_map_entries".into(), 3),
            ("procfs_scan_us".into(), 10),
        ],
        processes: 3,
        located: Default::default(),
    };
    let a = range::analyse_loaded(&loaded, &Settings::default());
    let text = render(&loaded, &a, &Options::default(), Refresh::default(), &|p| {
        format!("/system.slice/{}.service", p.comm)
    });
    memleak::export::Exposition::new(&text).scrape()
}

#[test]
fn exposition_passes_promtool_check_metrics() {
    let Some(promtool) = promtool() else { return };
    let text = exposition();
    let mut child = Command::new(promtool)
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success() && said.trim().is_empty(),
        "{said}\n{text}"
    );
}

#[test]
fn shipped_alerting_rules_pass_promtool_check_rules() {
    let Some(promtool) = promtool() else { return };
    let out = Command::new(promtool)
        .args(["check", "rules"])
        .arg(repo_file("contrib/prometheus/memleak.rules.yml"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The rules and the dashboard name only series the exporter serves, so
/// renaming a metric cannot silently break them.
#[test]
fn rules_and_dashboard_use_only_exported_series() {
    let text = exposition();
    let served: Vec<&str> = text
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.split(' ').next())
        .collect();
    let dashboard = std::fs::read_to_string(repo_file("contrib/grafana/memleak.json")).unwrap();
    let v: Value = serde_json::from_str(&dashboard).expect("the dashboard is JSON");
    assert!(v["panels"].as_array().is_some_and(|p| p.len() >= 3));
    let rules = std::fs::read_to_string(repo_file("contrib/prometheus/memleak.rules.yml")).unwrap();
    for (file, body) in [("dashboard", &dashboard), ("rules", &rules)] {
        let mut rest = body.as_str();
        let mut seen = 0;
        while let Some(i) = rest.find("memleak_") {
            let name: String = rest[i..]
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            rest = &rest[i + name.len()..];
            // Only series references: file names such as memleak.rules.yml
            // and dashboard uids are not metrics.
            if name.len() > "memleak_".len() {
                seen += 1;
                assert!(
                    served.contains(&name.as_str()),
                    "{file} uses {name}, not served:\n{text}"
                );
            }
        }
        assert!(seen >= 5, "{file} names only {seen} series");
    }
}

fn instant(prom: &str, q: &str) -> Vec<Value> {
    memleak::source::prometheus::query(prom, q)
        .ok()
        .and_then(|v| v["data"]["result"].as_array().cloned())
        .unwrap_or_default()
}

fn value_of(sample: &Value) -> f64 {
    sample["value"][1]
        .as_str()
        .and_then(|s| s.parse().ok())
        .unwrap_or(f64::NAN)
}

fn flagged(report: &Path, comm: &str) -> Vec<String> {
    let v: Value = serde_json::from_str(&std::fs::read_to_string(report).unwrap()).unwrap();
    v["processes"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["comm"] == comm)
        .map(|p| p["verdict"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn prometheus_scrapes_watch_and_analyze_flags_the_leak() {
    let Some(prom_bin) = prometheus_bin() else {
        if std::env::var("CI").is_ok_and(|v| v == "true") {
            panic!("prometheus is required on CI (apt-get install -y prometheus; cargo xtask setup does it)");
        }
        eprintln!("SKIPPED: no prometheus binary (apt-get install -y prometheus)");
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("watch");
    let (mport, pport) = (free_port(), free_port());
    let memleak = memleak_bin();

    // The workloads first, so they are in the first file; the leaker grows
    // 15 MiB/s for 40 s, the stable one holds 100 MiB.
    let leak = ChildGuard(
        Command::new(workload())
            .args(["leak", "--rate-mib", "15", "--seconds", "40"])
            .spawn()
            .unwrap(),
    );
    let stable = ChildGuard(
        Command::new(workload())
            .args(["stable", "--mib", "100", "--seconds", "40"])
            .spawn()
            .unwrap(),
    );
    let _watch = ChildGuard(
        Command::new(&memleak)
            .args(["watch", "--all", "--dir"])
            .arg(&dir)
            .args(["--metrics", &format!("127.0.0.1:{mport}")])
            .args(["--refresh", "1s", "--window", "2m", "--top", "200"])
            // The assertions below tell the workloads apart by pid.
            .arg("--metrics-pid-label")
            .args(["--interval", "1s", "--keep", "3"])
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );

    let config = tmp.path().join("prometheus.yml");
    std::fs::write(
        &config,
        format!(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n\
             scrape_configs:\n  - job_name: memleak\n    static_configs:\n      - targets: ['127.0.0.1:{mport}']\n"
        ),
    )
    .unwrap();
    let prom_url = format!("http://127.0.0.1:{pport}");
    let _prom = ChildGuard(
        Command::new(prom_bin)
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                tmp.path().join("tsdb").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{pport}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );

    // Wait until Prometheus holds enough of the leak for the analysis below
    // (the judged window needs ~20 points after the warm-up), polling
    // instead of sleeping a guessed time.
    let leak_pid = leak.0.id().to_string();
    let stored = format!("count_over_time(memleak_process_rss_bytes{{pid=\"{leak_pid}\"}}[2m])");
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    loop {
        let points = instant(&prom_url, &stored)
            .first()
            .map(value_of)
            .unwrap_or(0.0);
        let flagged = instant(&prom_url, "memleak_leak_suspect")
            .iter()
            .any(|s| s["metric"]["pid"].as_str() == Some(leak_pid.as_str()));
        if points >= 30.0 && flagged {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "after 120 s Prometheus holds {points} points of the leak (flagged: {flagged})"
        );
        std::thread::sleep(Duration::from_secs(1));
    }
    let up = instant(&prom_url, "up{job=\"memleak\"}");
    assert_eq!(
        up.first().map(value_of),
        Some(1.0),
        "Prometheus cannot scrape memleak: {up:?}"
    );
    let rss = instant(
        &prom_url,
        "memleak_process_rss_bytes{comm=\"memleak-workloa\"}",
    );
    assert!(
        rss.len() >= 2,
        "both workloads should be exported by rss: {rss:?}"
    );
    assert!(
        rss.iter().any(|s| value_of(s) > 300.0 * 1048576.0),
        "the leaker should hold > 300 MiB by now: {rss:?}"
    );
    let tracked = instant(&prom_url, "memleak_processes_tracked");
    assert!(tracked.first().map(value_of).unwrap_or(0.0) >= 3.0);
    // The watcher's own analysis flags the leaker, not the stable one.
    let suspects = instant(&prom_url, "memleak_leak_suspect");
    let suspect_pids: Vec<&str> = suspects
        .iter()
        .filter_map(|s| s["metric"]["pid"].as_str())
        .collect();
    assert!(
        suspect_pids.contains(&leak_pid.as_str()),
        "leaker {leak_pid} not among the suspects: {suspects:?}"
    );
    assert!(!suspect_pids.contains(&stable.0.id().to_string().as_str()));
    let slope = instant(
        &prom_url,
        &format!("memleak_process_growth_bytes_per_second{{pid=\"{leak_pid}\",metric=\"anon\"}}"),
    );
    let slope = slope.first().map(value_of).unwrap_or(0.0) / 1048576.0;
    assert!(
        (10.0..20.0).contains(&slope),
        "slope {slope} MiB/s, expected about 15"
    );

    // The same analysis on the series stored in Prometheus.
    let report = tmp.path().join("prom.json");
    let out = output_ok(
        Command::new(&memleak)
            .args(["analyze", "--prometheus", &prom_url])
            .args(["--query", "memleak_process_rss_bytes", "--range", "2m"])
            .args(["--step", "1s", "--format", "json", "--report"])
            .arg(&report),
    );
    let v: Value = serde_json::from_str(&std::fs::read_to_string(&report).unwrap()).unwrap();
    let verdict_of = |pid: &str| {
        v["processes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["pid"].as_u64() == pid.parse::<u64>().ok())
            .map(|p| p["verdict"].as_str().unwrap().to_string())
    };
    assert_eq!(
        verdict_of(&leak_pid).as_deref(),
        Some("leak"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert_ne!(
        verdict_of(&stable.0.id().to_string()).as_deref(),
        Some("leak")
    );
    // The header says how much was read (about 2 min here), not the range
    // asked for.
    let read = v["recording"]["duration_s"].as_f64().unwrap_or(-1.0);
    assert!(
        read > 0.0 && read <= 125.0,
        "duration of the data read: {read}"
    );
    // A query that matches nothing is an error, never "no leak".
    let none = Command::new(&memleak)
        .args(["analyze", "--prometheus", &prom_url])
        .args([
            "--query",
            "memleak_process_rss_bytes{comm=\"no-such-process\"}",
        ])
        .args(["--range", "2m", "--step", "1s", "--fail-on-leak"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&none.stderr);
    assert!(
        !none.status.success() && none.status.code() != Some(3),
        "{err}"
    );
    assert!(err.contains("matched no series"), "{err}");
    // --fail-on-leak gives exit code 3.
    let code = Command::new(&memleak)
        .args(["analyze", "--prometheus", &prom_url])
        .args([
            "--query",
            &format!("memleak_process_rss_bytes{{pid=\"{leak_pid}\"}}"),
        ])
        .args(["--range", "2m", "--step", "1s", "--fail-on-leak"])
        .stdout(Stdio::null())
        .status()
        .unwrap();
    assert_eq!(code.code(), Some(3));

    // And on the rotated recordings, over a time range.
    let report = tmp.path().join("dir.json");
    output_ok(
        Command::new(&memleak)
            .arg("analyze")
            .arg(&dir)
            .args(["--since", "5m", "--format", "json", "--report"])
            .arg(&report),
    );
    assert!(flagged(&report, "memleak-workloa").contains(&"leak".to_string()));
    // A range before anything was recorded holds nothing.
    let out = Command::new(&memleak)
        .arg("analyze")
        .arg(&dir)
        .args(["--since", "@1000", "--until", "@2000"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no recording overlaps"));
    drop(leak);
    drop(stable);
}
