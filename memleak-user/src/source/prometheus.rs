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
//!
//! The server is reached over HTTP or HTTPS ([`Client`]). HTTPS trusts the
//! system's CA store, or only the CA file given ([`Connection::ca_file`]),
//! like Prometheus' own `tls_config.ca_file`. Credentials (a bearer token,
//! or basic auth) come from files, environment variables or the URL's
//! `user:password@`, never from a flag's value (visible in `ps` and shell
//! history), and never leave this module: everything shown (reports,
//! errors, logs) names the server by [`Client::shown`], the URL without its
//! user info.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;

use super::{analyse_all, range::fmt_unix, Series};
use crate::analyse::limits::{Limit, LimitSource};
use crate::analyse::{AnalyseError, Analysis, Metric, ProcessRef, RecordingInfo, Settings};
use crate::sample::ProcId;

/// Environment variable holding a bearer token (the
/// `--prometheus-bearer-token-file` flag's alternative).
pub const ENV_BEARER_TOKEN: &str = "MEMLEAK_PROMETHEUS_BEARER_TOKEN";
/// Environment variable holding the basic-auth user name.
pub const ENV_USERNAME: &str = "MEMLEAK_PROMETHEUS_USERNAME";
/// Environment variable holding the basic-auth password.
pub const ENV_PASSWORD: &str = "MEMLEAK_PROMETHEUS_PASSWORD";

/// What went wrong talking to Prometheus; every message names the server
/// by its redacted URL and says what to do.
#[derive(Debug, thiserror::Error)]
pub enum PrometheusError {
    #[error("--prometheus {url}: {why}")]
    Url { url: String, why: String },
    #[error("cannot read the Prometheus {what} from {}: {source} (give a readable file holding only the {what})", path.display())]
    ReadSecret {
        what: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the Prometheus {what} from {from} is empty: give the {what} itself")]
    EmptySecret { what: &'static str, from: String },
    #[error("Prometheus credentials given twice: {0}")]
    Conflict(String),
    #[error("cannot read the CA file {}: {why} (give a PEM file with the certificate(s) of the CA that signed the server's)", path.display())]
    CaFile { path: PathBuf, why: String },
    #[error("no CA certificate found in the system store ({0}): install the distribution's ca-certificates package, set SSL_CERT_FILE, or give --prometheus-ca-file")]
    NoSystemRoots(String),
    #[error("the TLS certificate of {url} is not trusted ({detail}): if a private CA signed it, give that CA with --prometheus-ca-file FILE; check the URL's host name matches the certificate")]
    Untrusted { url: String, detail: String },
    #[error("cannot query Prometheus at {url}: {source}")]
    Request { url: String, source: ureq::Error },
    #[error("{url} answered {status}: the credentials were refused or are missing (give them with --prometheus-bearer-token-file, or --prometheus-username and --prometheus-password-file, or the MEMLEAK_PROMETHEUS_* variables)")]
    Unauthorized { url: String, status: u16 },
    #[error("{url} answered {status} with something that is not JSON ({snippet}): is this the Prometheus HTTP API's base URL?")]
    NotJson {
        url: String,
        status: u16,
        snippet: String,
    },
    #[error("Prometheus at {url} refused the query ({status}): {kind} {error}")]
    Refused {
        url: String,
        status: u16,
        kind: String,
        error: String,
    },
    #[error("expected a range vector (matrix) from Prometheus, got {0}: the query must select series, not a scalar")]
    NotMatrix(String),
    #[error("--step must be positive")]
    Step,
    #[error("the query {query} matched no series at {url} between {from} and {to}: check the metric name and labels (e.g. in the Prometheus UI), and the --since/--until range")]
    NoSeries {
        query: String,
        url: String,
        from: String,
        to: String,
    },
    #[error(transparent)]
    Settings(#[from] AnalyseError),
}

/// A secret string: never printed (its `Debug` is `***`), kept only to
/// build the request header.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("***")
    }
}

/// How requests authenticate.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Auth {
    /// `Authorization: Bearer TOKEN`.
    Bearer(Secret),
    /// `Authorization: Basic base64(user:password)`.
    Basic { username: String, password: Secret },
}

/// How to reach a Prometheus server, as the command line gives it.
#[derive(Clone, Debug, Default)]
pub struct Connection {
    /// `http[s]://[user:password@]host[:port][/prefix]`.
    pub url: String,
    /// File holding a bearer token (`bearer_token_file` in Prometheus'
    /// configuration); else [`ENV_BEARER_TOKEN`].
    pub bearer_token_file: Option<PathBuf>,
    /// Basic-auth user name; else [`ENV_USERNAME`], else the URL's.
    pub username: Option<String>,
    /// File holding the basic-auth password (`password_file`); else
    /// [`ENV_PASSWORD`], else the URL's.
    pub password_file: Option<PathBuf>,
    /// PEM file of the CA(s) to trust instead of the system's.
    pub ca_file: Option<PathBuf>,
}

/// The parts of a URL this client cares about.
#[derive(Debug, PartialEq, Eq)]
struct ParsedUrl {
    https: bool,
    /// The URL without user info, no trailing slash: what is requested and
    /// what is shown.
    clean: String,
    /// Percent-decoded `user` and `password` of `user:password@`.
    userinfo: Option<(String, Option<String>)>,
}

fn parse_url(url: &str) -> Result<ParsedUrl, PrometheusError> {
    let bad = |why: &str| PrometheusError::Url {
        url: redact_url(url),
        why: why.into(),
    };
    let (scheme, rest) = url
        .split_once("://")
        .ok_or_else(|| bad("not a URL: write http://HOST:PORT or https://HOST:PORT"))?;
    let https = match scheme.to_ascii_lowercase().as_str() {
        "http" => false,
        "https" => true,
        _ => return Err(bad("only http:// and https:// URLs are supported")),
    };
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, path) = rest.split_at(end);
    let (userinfo, host) = match authority.rsplit_once('@') {
        Some((u, h)) => (Some(u), h),
        None => (None, authority),
    };
    if host.is_empty() {
        return Err(bad("no host name"));
    }
    let userinfo = userinfo.map(|u| match u.split_once(':') {
        Some((user, pw)) => (percent_decode(user), Some(percent_decode(pw))),
        None => (percent_decode(u), None),
    });
    Ok(ParsedUrl {
        https,
        clean: format!("{scheme}://{host}{}", path.trim_end_matches('/')),
        userinfo,
    })
}

/// `url` without its `user:password@`, for anything shown to people;
/// text that is not a URL comes back unchanged.
pub fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    match rest[..end].rsplit_once('@') {
        Some((_, host)) => format!("{scheme}://{host}{}", &rest[end..]),
        None => url.to_string(),
    }
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = |c: u8| (c as char).to_digit(16);
        if b[i] == b'%' && i + 2 < b.len() {
            if let (Some(h), Some(l)) = (hex(b[i + 1]), hex(b[i + 2])) {
                out.push((h * 16 + l) as u8);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Reads a secret from `file`, else from the environment variable `var`:
/// surrounding white space (a file's final newline) is not part of it.
fn secret(
    what: &'static str,
    file: Option<&Path>,
    var: &str,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Option<Secret>, PrometheusError> {
    let (text, from) = match file {
        Some(path) => (
            std::fs::read_to_string(path).map_err(|source| PrometheusError::ReadSecret {
                what,
                path: path.to_path_buf(),
                source,
            })?,
            path.display().to_string(),
        ),
        None => match env(var) {
            Some(v) => (v, format!("${var}")),
            None => return Ok(None),
        },
    };
    let text = text.trim();
    if text.is_empty() {
        return Err(PrometheusError::EmptySecret { what, from });
    }
    Ok(Some(Secret(text.to_string())))
}

impl Connection {
    /// A connection to `url` with no other option (credentials may still
    /// come from the environment or the URL).
    pub fn new(url: &str) -> Connection {
        Connection {
            url: url.to_string(),
            ..Connection::default()
        }
    }

    /// The authentication these options give, from files, `env` and the
    /// URL; an error when two kinds (or two sources of the same) are given.
    fn auth(
        &self,
        url: &ParsedUrl,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Option<Auth>, PrometheusError> {
        let bearer = secret(
            "bearer token",
            self.bearer_token_file.as_deref(),
            ENV_BEARER_TOKEN,
            env,
        )?;
        let password = secret("password", self.password_file.as_deref(), ENV_PASSWORD, env)?;
        let username = self
            .username
            .clone()
            .or_else(|| env(ENV_USERNAME).filter(|u| !u.is_empty()));
        let basic = match (username, password, &url.userinfo) {
            (Some(_), _, Some(_)) | (_, Some(_), Some(_)) => {
                return Err(PrometheusError::Conflict(
                    "the URL has user:password@ and a user name or password is given apart too: keep one"
                        .into(),
                ))
            }
            (Some(username), Some(password), None) => Some(Auth::Basic { username, password }),
            (Some(_), None, None) => {
                return Err(PrometheusError::Conflict(format!(
                    "a user name without a password: give --prometheus-password-file or ${ENV_PASSWORD}"
                )))
            }
            (None, Some(_), None) => {
                return Err(PrometheusError::Conflict(format!(
                    "a password without a user name: give --prometheus-username or ${ENV_USERNAME}"
                )))
            }
            (None, None, Some((username, password))) => Some(Auth::Basic {
                username: username.clone(),
                password: Secret(password.clone().unwrap_or_default()),
            }),
            (None, None, None) => None,
        };
        match (bearer, basic) {
            (Some(_), Some(_)) => Err(PrometheusError::Conflict(
                "a bearer token and basic auth: Prometheus takes one kind, give one".into(),
            )),
            (Some(t), None) => Ok(Some(Auth::Bearer(t))),
            (None, b) => Ok(b),
        }
    }
}

/// A configured Prometheus client: one agent (TLS set up once), the
/// credentials, and the URL to show.
pub struct Client {
    agent: ureq::Agent,
    base: String,
    auth: Option<Auth>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("base", &self.base)
            .field("auth", &self.auth)
            .finish_non_exhaustive()
    }
}

impl Client {
    /// Builds a client from the options and the process environment.
    pub fn new(conn: &Connection) -> Result<Client, PrometheusError> {
        Client::with_env(conn, &|k| std::env::var(k).ok())
    }

    /// [`Client::new`] with the environment given (tests).
    pub fn with_env(
        conn: &Connection,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Client, PrometheusError> {
        let url = parse_url(&conn.url)?;
        let auth = conn.auth(&url, env)?;
        if !url.https && conn.ca_file.is_some() {
            return Err(PrometheusError::Url {
                url: url.clean,
                why: "--prometheus-ca-file needs an https:// URL".into(),
            });
        }
        if !url.https && auth.is_some() {
            tracing::warn!(
                "sending Prometheus credentials to {} over plain HTTP: anyone on the path can read them; use https://",
                url.clean
            );
        }
        let mut config = ureq::Agent::config_builder()
            .timeout_global(Some(Duration::from_secs(30)))
            .http_status_as_error(false);
        if url.https {
            config = config.tls_config(tls_config(conn.ca_file.as_deref())?);
        }
        Ok(Client {
            agent: config.build().into(),
            base: url.clean,
            auth,
        })
    }

    /// The server's URL as shown: no user info, no trailing slash.
    pub fn shown(&self) -> &str {
        &self.base
    }

    /// Fetches `query` over `[start, end]` at `step` seconds.
    pub fn query_range(
        &self,
        query: &str,
        start: f64,
        end: f64,
        step: f64,
    ) -> Result<Value, PrometheusError> {
        self.get_json(
            "/api/v1/query_range",
            &[
                ("query", query.to_string()),
                ("start", format!("{start:.3}")),
                ("end", format!("{end:.3}")),
                ("step", format!("{step}")),
            ],
        )
    }

    /// Instant query (`/api/v1/query`).
    pub fn query(&self, query: &str) -> Result<Value, PrometheusError> {
        self.get_json("/api/v1/query", &[("query", query.to_string())])
    }

    fn get_json(&self, api: &str, params: &[(&str, String)]) -> Result<Value, PrometheusError> {
        let endpoint = format!("{}{api}", self.base);
        let mut req = self.agent.get(&endpoint);
        for (k, v) in params {
            req = req.query(*k, v);
        }
        // ureq logs headers redacted (at debug), and drops Authorization
        // on redirects (its default): the secret goes to this server only.
        req = match &self.auth {
            Some(Auth::Bearer(Secret(t))) => req.header("Authorization", format!("Bearer {t}")),
            Some(Auth::Basic {
                username,
                password: Secret(pw),
            }) => req.header(
                "Authorization",
                format!("Basic {}", base64(format!("{username}:{pw}").as_bytes())),
            ),
            None => req,
        };
        let mut resp = req.call().map_err(|e| self.request_error(e))?;
        let status = resp.status().as_u16();
        if status == 401 || status == 403 {
            return Err(PrometheusError::Unauthorized {
                url: self.base.clone(),
                status,
            });
        }
        let body = resp
            .body_mut()
            .read_to_string()
            .map_err(|e| self.request_error(e))?;
        let v: Value = serde_json::from_str(&body).map_err(|_| PrometheusError::NotJson {
            url: endpoint.clone(),
            status,
            snippet: crate::diag::printable(&body.chars().take(200).collect::<String>()),
        })?;
        if v["status"] != "success" {
            return Err(PrometheusError::Refused {
                url: self.base.clone(),
                status,
                kind: v["errorType"].as_str().unwrap_or("").to_string(),
                error: v["error"].as_str().unwrap_or("").to_string(),
            });
        }
        Ok(v)
    }

    /// A certificate the roots do not vouch for gets its own message (what
    /// to do differs from a refused connection).
    fn request_error(&self, e: ureq::Error) -> PrometheusError {
        // rustls' verdict arrives either as such or inside the I/O error
        // of the handshake, depending on where the handshake failed.
        let tls = match &e {
            ureq::Error::Rustls(t) => Some(t),
            ureq::Error::Io(io) => io.get_ref().and_then(|i| i.downcast_ref::<rustls::Error>()),
            _ => None,
        };
        if let Some(rustls::Error::InvalidCertificate(c)) = tls {
            return PrometheusError::Untrusted {
                url: self.base.clone(),
                detail: format!("{c:?}"),
            };
        }
        PrometheusError::Request {
            url: self.base.clone(),
            source: e,
        }
    }
}

/// TLS through rustls with the ring provider, trusting `ca_file` alone
/// when given (as Prometheus' `ca_file` does), else the system's store.
fn tls_config(ca_file: Option<&Path>) -> Result<ureq::tls::TlsConfig, PrometheusError> {
    use ureq::tls::{Certificate, PemItem, RootCerts, TlsConfig, TlsProvider};
    let certs: Vec<Certificate<'static>> = match ca_file {
        Some(path) => {
            let ca = |why: String| PrometheusError::CaFile {
                path: path.to_path_buf(),
                why,
            };
            let pem = std::fs::read(path).map_err(|e| ca(e.to_string()))?;
            let mut certs = Vec::new();
            for item in ureq::tls::parse_pem(&pem) {
                if let PemItem::Certificate(c) = item.map_err(|e| ca(e.to_string()))? {
                    certs.push(c);
                }
            }
            if certs.is_empty() {
                return Err(ca(
                    "no PEM certificate (-----BEGIN CERTIFICATE-----) in it".into()
                ));
            }
            certs
        }
        None => {
            let found = rustls_native_certs::load_native_certs();
            if found.certs.is_empty() {
                let why = found
                    .errors
                    .first()
                    .map(|e| e.to_string())
                    .unwrap_or_else(|| "none found".into());
                return Err(PrometheusError::NoSystemRoots(why));
            }
            for e in &found.errors {
                tracing::debug!("skipped part of the system CA store: {e}");
            }
            found
                .certs
                .iter()
                .map(|c| Certificate::from_der(c.as_ref()).to_owned())
                .collect()
        }
    };
    // The provider is handed over explicitly rather than installed as the
    // process default: should ureq move to another rustls, this stops
    // compiling instead of panicking at the first https:// request.
    Ok(TlsConfig::builder()
        .provider(TlsProvider::Rustls)
        .root_certs(RootCerts::Specific(Arc::new(certs)))
        .unversioned_rustls_crypto_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .build())
}

/// Standard base64 with padding (RFC 4648), for the basic-auth header.
fn base64(data: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for chunk in data.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(A[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// Instant query at `url` with only what the URL and the environment give
/// (tests, scripts).
pub fn query(url: &str, q: &str) -> Result<Value, PrometheusError> {
    Client::new(&Connection::new(url))?.query(q)
}

/// Turns a `query_range` answer (`resultType: matrix`) into series, times
/// relative to `t0`.
pub fn to_series(answer: &Value, t0: f64) -> Result<Vec<Series>, PrometheusError> {
    let data = &answer["data"];
    if data["resultType"] != "matrix" {
        return Err(PrometheusError::NotMatrix(data["resultType"].to_string()));
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
    client: &Client,
    promql: &str,
    start: f64,
    end: f64,
    step_s: f64,
    limit: Option<f64>,
    settings: &Settings,
) -> Result<Analysis, PrometheusError> {
    settings.validate()?;
    if step_s.is_nan() || step_s <= 0.0 {
        return Err(PrometheusError::Step);
    }
    // Prometheus series carry rss, not its anon/file split: what would be
    // judged on anon is judged on rss there.
    let mut settings = settings.clone();
    if settings.metrics.contains(&Metric::Anon) && !settings.metrics.contains(&Metric::Rss) {
        settings.metrics.push(Metric::Rss);
    }
    let settings = &settings;
    let answer = client.query_range(promql, start, end, step_s)?;
    // Only the redacted URL goes into the analysis: reports show it.
    let url = client.shown();
    let series = to_series(&answer, start)?;
    // An empty answer is not a clean bill of health: a misspelt metric or
    // label would otherwise pass a CI gate with "no leak".
    if series.iter().all(|s| s.t.is_empty()) {
        return Err(PrometheusError::NoSeries {
            query: promql.to_string(),
            url: url.to_string(),
            from: fmt_unix(start),
            to: fmt_unix(end),
        });
    }
    // The span of data read, not the span asked for: a query over the last
    // hour of an exporter that started 8 minutes ago has 8 minutes.
    let (first, last) = series
        .iter()
        .flat_map(|s| s.t.iter().copied())
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), t| {
            (a.min(t), b.max(t))
        });
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
        duration_s: (last - first).max(0.0),
        exit_code: None,
        processes: series.len(),
        start_unix: Some(start),
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
    fn urls_lose_their_user_info_and_give_it_as_basic_auth() {
        let u = parse_url("https://al%40ice:p%3Aw%2F@prom.example:9443/sub/").unwrap();
        assert!(u.https);
        assert_eq!(u.clean, "https://prom.example:9443/sub");
        assert_eq!(
            u.userinfo,
            Some(("al@ice".to_string(), Some("p:w/".to_string())))
        );
        assert_eq!(
            redact_url("http://u:secret@h:9090/x?q=1"),
            "http://h:9090/x?q=1"
        );
        assert_eq!(redact_url("http://h:9090"), "http://h:9090");
        assert_eq!(redact_url("not a url"), "not a url");
        for bad in ["ftp://h", "h:9090", "https://u:pw@/x"] {
            let e = parse_url(bad).unwrap_err().to_string();
            assert!(!e.contains("pw"), "{e}");
            assert!(e.contains("--prometheus"), "{e}");
        }
        // An @ in the path is not user info.
        assert_eq!(parse_url("http://h/a@b").unwrap().userinfo, None);
    }

    #[test]
    fn base64_matches_rfc4648() {
        for (i, o) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(base64(i.as_bytes()), o);
        }
    }

    #[test]
    fn credentials_come_from_one_place_each() {
        let dir = tempfile::tempdir().unwrap();
        let token = dir.path().join("token");
        std::fs::write(&token, "tok123\n").unwrap();
        let none = |_: &str| None;
        let auth = |c: &Connection, env: &dyn Fn(&str) -> Option<String>| {
            c.auth(&parse_url(&c.url).unwrap(), env)
        };
        let mut c = Connection::new("https://h");
        assert_eq!(auth(&c, &none).unwrap(), None);
        c.bearer_token_file = Some(token.clone());
        assert_eq!(
            auth(&c, &none).unwrap(),
            Some(Auth::Bearer(Secret("tok123".into())))
        );
        // The environment's token when no file is given.
        let env = |k: &str| (k == ENV_BEARER_TOKEN).then(|| "envtok".to_string());
        assert_eq!(
            auth(&Connection::new("https://h"), &env).unwrap(),
            Some(Auth::Bearer(Secret("envtok".into())))
        );
        // Bearer and basic together is refused, and says so without the secret.
        c.url = "https://me:hunter2@h".into();
        let e = auth(&c, &none).unwrap_err().to_string();
        assert!(e.contains("bearer token and basic auth"), "{e}");
        assert!(!e.contains("hunter2") && !e.contains("tok123"), "{e}");
        // Basic from the URL, or from a user name and a password file.
        let c = Connection::new("https://me:hunter2@h");
        assert_eq!(
            auth(&c, &none).unwrap(),
            Some(Auth::Basic {
                username: "me".into(),
                password: Secret("hunter2".into())
            })
        );
        let pw = dir.path().join("pw");
        std::fs::write(&pw, "s3cret").unwrap();
        let mut c = Connection::new("https://h");
        c.username = Some("me".into());
        assert!(auth(&c, &none)
            .unwrap_err()
            .to_string()
            .contains("without a password"));
        c.password_file = Some(pw);
        assert!(matches!(auth(&c, &none).unwrap(), Some(Auth::Basic { .. })));
        c.url = "https://other:x@h".into();
        assert!(auth(&c, &none)
            .unwrap_err()
            .to_string()
            .contains("keep one"));
        // An empty or unreadable file is an error naming the file.
        let empty = dir.path().join("empty");
        std::fs::write(&empty, "\n").unwrap();
        let mut c = Connection::new("https://h");
        c.bearer_token_file = Some(empty);
        assert!(auth(&c, &none).unwrap_err().to_string().contains("empty"));
        c.bearer_token_file = Some(dir.path().join("missing"));
        let e = auth(&c, &none).unwrap_err().to_string();
        assert!(e.contains("missing") && e.contains("bearer token"), "{e}");
        // Debug output of a client never shows the secret.
        let client = Client::with_env(&Connection::new("http://me:hunter2@h"), &none).unwrap();
        assert!(!format!("{client:?}").contains("hunter2"));
        assert_eq!(client.shown(), "http://h");
    }

    #[test]
    fn a_ca_file_must_hold_a_certificate() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("ca.pem");
        std::fs::write(&f, "not a pem").unwrap();
        let mut c = Connection::new("https://h");
        c.ca_file = Some(f.clone());
        let e = Client::with_env(&c, &|_| None).unwrap_err().to_string();
        assert!(
            e.contains("ca.pem") && e.contains("BEGIN CERTIFICATE"),
            "{e}"
        );
        c.url = "http://h".into();
        let e = Client::with_env(&c, &|_| None).unwrap_err().to_string();
        assert!(e.contains("needs an https:// URL"), "{e}");
    }

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
