//! `memleak analyze`'s other sources: a directory of rotated recordings
//! over a time range, or a Prometheus server ([`crate::source`]).

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use clap::Args;

use crate::analyse::{Analysis, Settings};
use crate::locate::Located;
use crate::source::{now_unix, prometheus, range};

/// Where `memleak analyze` reads series from, besides one recording.
#[derive(Args, Debug, Clone, Default)]
pub struct SourceArgs {
    /// With a directory of rotated recordings (`memleak watch`): analyse
    /// only samples at or after this time. RFC 3339 (`2026-11-25T02:00:00Z`,
    /// `2026-11-25 02:00:00` is UTC), `@UNIX_SECONDS`, or a duration meaning
    /// that long ago (`8h`).
    #[arg(long, alias = "from", value_parser = parse_time, value_name = "TIME")]
    pub since: Option<f64>,

    /// ...and at or before this time (same forms; default: now).
    #[arg(long, alias = "to", value_parser = parse_time, value_name = "TIME")]
    pub until: Option<f64>,

    /// Analyse series from this Prometheus server (e.g.
    /// http://127.0.0.1:9090, https://prom.example:9090/prefix) instead of a
    /// recording. HTTPS trusts the system's CA store (or --prometheus-ca-file).
    /// Credentials: --prometheus-bearer-token-file, or --prometheus-username
    /// with --prometheus-password-file, or the environment variables
    /// MEMLEAK_PROMETHEUS_BEARER_TOKEN, MEMLEAK_PROMETHEUS_USERNAME and
    /// MEMLEAK_PROMETHEUS_PASSWORD, or user:password@ in the URL. They are
    /// never shown: reports and messages name the URL without user info.
    #[arg(long, value_name = "URL")]
    pub prometheus: Option<String>,

    /// File holding a bearer token sent as `Authorization: Bearer` (with
    /// --prometheus; like Prometheus' bearer_token_file). Default: the
    /// MEMLEAK_PROMETHEUS_BEARER_TOKEN variable.
    #[arg(long, requires = "prometheus", value_name = "FILE")]
    pub prometheus_bearer_token_file: Option<PathBuf>,

    /// Basic-auth user name (with --prometheus; the password comes from
    /// --prometheus-password-file or MEMLEAK_PROMETHEUS_PASSWORD). Default:
    /// the MEMLEAK_PROMETHEUS_USERNAME variable.
    #[arg(long, requires = "prometheus", value_name = "USER")]
    pub prometheus_username: Option<String>,

    /// File holding the basic-auth password (with --prometheus; like
    /// Prometheus' basic_auth.password_file). Default: the
    /// MEMLEAK_PROMETHEUS_PASSWORD variable.
    #[arg(long, requires = "prometheus", value_name = "FILE")]
    pub prometheus_password_file: Option<PathBuf>,

    /// PEM file of the CA(s) that signed an https:// server's certificate
    /// (a private CA); trusted instead of the system's store, like
    /// Prometheus' tls_config.ca_file.
    #[arg(
        long,
        alias = "prometheus-ca",
        requires = "prometheus",
        value_name = "FILE"
    )]
    pub prometheus_ca_file: Option<PathBuf>,

    /// PromQL selecting one series per process (with --prometheus). Series
    /// whose name contains `vm` are judged as virtual size, others as rss.
    #[arg(
        long,
        default_value = "memleak_process_rss_bytes",
        requires = "prometheus",
        value_name = "PROMQL"
    )]
    pub query: String,

    /// How far back to query (with --prometheus; ends at --until or now).
    #[arg(long, default_value = "1h", value_parser = super::common::parse_duration, value_name = "DURATION")]
    pub range: std::time::Duration,

    /// Resolution of the queried series (with --prometheus).
    #[arg(long, default_value = "15s", value_parser = super::common::parse_duration, value_name = "DURATION")]
    pub step: std::time::Duration,
}

/// Parses `--since`/`--until` into Unix seconds.
pub fn parse_time(s: &str) -> Result<f64, String> {
    parse_time_at(s, now_unix())
}

fn parse_time_at(s: &str, now: f64) -> Result<f64, String> {
    let s = s.trim();
    if let Some(secs) = s.strip_prefix('@') {
        return secs
            .parse::<f64>()
            .map_err(|e| format!("{s}: {e} (expected @UNIX_SECONDS)"));
    }
    if let Ok(t) = humantime::parse_rfc3339_weak(s) {
        return Ok(t
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs_f64())
            .unwrap_or(0.0));
    }
    if let Ok(d) = humantime::parse_duration(s) {
        return Ok(now - d.as_secs_f64());
    }
    Err(format!(
        "{s}: not a time (examples: 2026-11-25T02:00:00Z, @1764036000, 8h for eight hours ago)"
    ))
}

/// `memleak analyze` over a directory with a time range, or over a
/// Prometheus server, with the code paths the files located (none from
/// Prometheus); `None` when `file` is a plain recording without a range
/// (the ordinary path).
pub fn analyse_source(
    file: Option<&Path>,
    source: &SourceArgs,
    settings: &Settings,
) -> Result<Option<(Analysis, Located)>> {
    let a = if let Some(url) = &source.prometheus {
        if file.is_some() {
            bail!("give either a recording or --prometheus, not both");
        }
        let until = source.until.unwrap_or_else(now_unix);
        let since = source.since.unwrap_or(until - source.range.as_secs_f64());
        let client = prometheus::Client::new(&prometheus::Connection {
            url: url.clone(),
            bearer_token_file: source.prometheus_bearer_token_file.clone(),
            username: source.prometheus_username.clone(),
            password_file: source.prometheus_password_file.clone(),
            ca_file: source.prometheus_ca_file.clone(),
        })?;
        let a = prometheus::analyse(
            &client,
            &source.query,
            since,
            until,
            source.step.as_secs_f64(),
            settings.limit_bytes,
            settings,
        )?;
        (a, Located::default())
    } else {
        let Some(path) = file else {
            bail!("no recording given");
        };
        if !path.is_dir() {
            if source.since.is_some() || source.until.is_some() {
                // One file with a range: the same code, one file long.
                let files = vec![PathBuf::from(path)];
                range::analyse_files(&files, source.since, source.until, settings)?
            } else {
                return Ok(None);
            }
        } else {
            let files = range::list(path)?;
            range::analyse_files(&files, source.since, source.until, settings)
                .with_context(|| format!("analysing the recordings in {}", path.display()))?
        }
    };
    Ok(Some(a))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_parse_in_three_forms() {
        let now = 1_764_036_000.0;
        assert_eq!(parse_time_at("@1764000000", now).unwrap(), 1_764_000_000.0);
        assert_eq!(parse_time_at("2h", now).unwrap(), now - 7200.0);
        assert_eq!(
            parse_time_at("1970-01-02T00:00:00Z", now).unwrap(),
            86_400.0
        );
        assert_eq!(parse_time_at("1970-01-02 00:00:00", now).unwrap(), 86_400.0);
        assert!(parse_time_at("yesterday", now)
            .unwrap_err()
            .contains("examples"));
    }
}
