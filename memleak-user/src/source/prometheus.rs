//! Series from a Prometheus server: `GET /api/v1/query_range`, one series
//! per process (e.g. `memleak_process_rss_bytes` scraped from `memleak
//! watch --metrics` on many machines), analysed like a recording.
//!
//! A series becomes a process named by its `comm` and `pid` labels (the
//! other labels, e.g. `instance`, go in the command-line column). Its
//! metric is `vm` when the series name contains `vm`, else `rss`. The
//! limit for the projection is `--limit`, else this machine's RAM (rss) or
//! RAM + swap (vm): Prometheus does not say how much memory the scraped
//! machine has.

use std::time::Duration;

use anyhow::{bail, Context, Result};
use serde_json::Value;

use super::{analyse_all, range::fmt_unix, Series};
use crate::analyse::limits::{Limit, LimitSource};
use crate::analyse::{Analysis, Metric, ProcessRef, RecordingInfo, Settings};
use crate::sample::ProcId;

/// Fetches `query` over `[start, end]` at `step` seconds.
pub fn query_range(url: &str, query: &str, start: f64, end: f64, step: f64) -> Result<Value> {
    let endpoint = format!("{}/api/v1/query_range", url.trim_end_matches('/'));
    get_json(
        &endpoint,
        &[
            ("query", query.to_string()),
            ("start", format!("{start:.3}")),
            ("end", format!("{end:.3}")),
            ("step", format!("{step}")),
        ],
    )
}

/// Instant query (`/api/v1/query`).
pub fn query(url: &str, query: &str) -> Result<Value> {
    let endpoint = format!("{}/api/v1/query", url.trim_end_matches('/'));
    get_json(&endpoint, &[("query", query.to_string())])
}

fn get_json(endpoint: &str, params: &[(&str, String)]) -> Result<Value> {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_global(Some(Duration::from_secs(30)))
        .http_status_as_error(false)
        .build()
        .into();
    let mut req = agent.get(endpoint);
    for (k, v) in params {
        req = req.query(*k, v);
    }
    let mut resp = req
        .call()
        .with_context(|| format!("querying Prometheus at {endpoint}"))?;
    let status = resp.status();
    let body = resp
        .body_mut()
        .read_to_string()
        .with_context(|| format!("reading the answer of {endpoint}"))?;
    let v: Value = serde_json::from_str(&body).with_context(|| {
        format!(
            "{endpoint} answered {status} with something that is not JSON: {}",
            body.chars().take(200).collect::<String>()
        )
    })?;
    if v["status"] != "success" {
        bail!(
            "Prometheus refused the query ({status}): {} {}",
            v["errorType"].as_str().unwrap_or(""),
            v["error"].as_str().unwrap_or("")
        );
    }
    Ok(v)
}

/// Turns a `query_range` answer (`resultType: matrix`) into series, times
/// relative to `t0`.
pub fn to_series(answer: &Value, t0: f64) -> Result<Vec<Series>> {
    let data = &answer["data"];
    if data["resultType"] != "matrix" {
        bail!(
            "expected a range vector (matrix), got {}",
            data["resultType"]
        );
    }
    let mut out = Vec::new();
    for (i, s) in data["result"].as_array().into_iter().flatten().enumerate() {
        let labels = s["metric"].as_object().cloned().unwrap_or_default();
        let label = |k: &str| labels.get(k).and_then(Value::as_str).unwrap_or("");
        let name = label("__name__");
        let metric = if name.contains("vm") {
            Metric::Vm
        } else {
            Metric::Rss
        };
        let pid: u32 = label("pid").parse().unwrap_or(0);
        let comm = match label("comm") {
            "" if name.is_empty() => format!("series{i}"),
            "" => name.to_string(),
            c => c.to_string(),
        };
        let others: Vec<String> = labels
            .iter()
            .filter(|(k, _)| !matches!(k.as_str(), "__name__" | "pid" | "comm"))
            .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or("")))
            .collect();
        let mut t = Vec::new();
        let mut y = Vec::new();
        for p in s["values"].as_array().into_iter().flatten() {
            let (Some(ts), Some(v)) = (p[0].as_f64(), p[1].as_str()) else {
                continue;
            };
            let Ok(v) = v.parse::<f64>() else { continue };
            t.push(ts - t0);
            y.push(v);
        }
        out.push(Series {
            process: ProcessRef {
                // Prometheus series carry no start time: the index keeps
                // identities distinct (the same pid on two machines).
                id: ProcId {
                    pid,
                    start_ns: i as u64,
                },
                ppid: 0,
                comm,
                cmdline: (!others.is_empty()).then(|| others.join(" ")),
                exit_code: None,
            },
            t,
            columns: vec![(metric, y)],
            alive: true,
        });
    }
    Ok(out)
}

/// Queries and analyses (see the module documentation).
pub fn analyse(
    url: &str,
    promql: &str,
    start: f64,
    end: f64,
    step_s: f64,
    limit: Option<f64>,
    settings: &Settings,
) -> Result<Analysis> {
    settings.validate()?;
    if step_s <= 0.0 {
        bail!("--step must be positive");
    }
    // Prometheus series carry rss, not its anon/file split: what would be
    // judged on anon is judged on rss there.
    let mut settings = settings.clone();
    if settings.metrics.contains(&Metric::Anon) && !settings.metrics.contains(&Metric::Rss) {
        settings.metrics.push(Metric::Rss);
    }
    let settings = &settings;
    let answer = query_range(url, promql, start, end, step_s)?;
    let series = to_series(&answer, start)?;
    let limits = limits(limit);
    let info = RecordingInfo {
        path: url.into(),
        command: Some(format!(
            "{promql} from {url} ({} .. {}, step {step_s}s)",
            fmt_unix(start),
            fmt_unix(end)
        )),
        sampler: "prometheus".into(),
        host: url.to_string(),
        interval_s: step_s,
        duration_s: end - start,
        exit_code: None,
        processes: series.len(),
    };
    Ok(analyse_all(&series, &limits, step_s, settings, info))
}

fn limits(limit: Option<f64>) -> Vec<(Metric, Limit)> {
    if let Some(l) = limit {
        let l = Limit {
            bytes: Some(l),
            source: LimitSource::User,
        };
        return vec![(Metric::Rss, l), (Metric::Vm, l)];
    }
    let mi = crate::sysinfo::meminfo().ok();
    let mem = mi.as_ref().map_or(0, |m| m.mem_total);
    let swap = mi.as_ref().map_or(0, |m| m.swap_total);
    vec![
        (Metric::Rss, Limit::new(mem, LimitSource::MemTotal)),
        (
            Metric::Vm,
            Limit::new(mem.saturating_add(swap), LimitSource::MemTotalPlusSwap),
        ),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matrix_answers_become_series() {
        let answer: Value = serde_json::from_str(
            r#"{"status":"success","data":{"resultType":"matrix","result":[
              {"metric":{"__name__":"memleak_process_rss_bytes","pid":"42","comm":"leaky","instance":"a:9464"},
               "values":[[1000,"100"],[1001,"200"],[1002,"bad"]]},
              {"metric":{"__name__":"memleak_process_vm_bytes","pid":"7"},"values":[[1000.5,"1e3"]]}]}}"#,
        )
        .unwrap();
        let s = to_series(&answer, 1000.0).unwrap();
        assert_eq!(s.len(), 2);
        assert_eq!(s[0].process.id.pid, 42);
        assert_eq!(s[0].process.comm, "leaky");
        assert_eq!(s[0].process.cmdline.as_deref(), Some("instance=a:9464"));
        assert_eq!(s[0].t, vec![0.0, 1.0]);
        assert_eq!(s[0].columns[0], (Metric::Rss, vec![100.0, 200.0]));
        assert_eq!(s[1].columns[0].0, Metric::Vm);
        assert_eq!(s[1].process.comm, "memleak_process_vm_bytes");
        let bad: Value = serde_json::from_str(
            r#"{"status":"success","data":{"resultType":"vector","result":[]}}"#,
        )
        .unwrap();
        assert!(to_series(&bad, 0.0).is_err());
    }
}
