//! `memleak analyze --prometheus https://...` against an HTTPS Prometheus
//! stand-in: a rustls server on 127.0.0.1 with a certificate signed by a
//! CA made here (rcgen), answering `query_range` with a canned matrix (a
//! leaking and a flat series) when the expected `Authorization` arrives
//! and 401 otherwise. Checks that each way of giving credentials sends the
//! right header, that a certificate the client does not trust fails with
//! a message saying what to do, and that no output (table, JSON, HTML,
//! errors, trace logs) contains a secret.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::{Arc, Mutex};

use memleak_tests::memleak_bin;
use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};

const TOKEN: &str = "tok-SECRET-bearer-5f1e";
const USER: &str = "alice";
const PASSWORD: &str = "pw-SECRET-basic-9c2d";
/// The canned series start here (Unix seconds); the runs ask for this range.
const T0: u64 = 1_000_000_000;

/// A CA certificate (PEM) and what signs with it.
fn ca(name: &str) -> (String, Issuer<'static, KeyPair>) {
    let key = KeyPair::generate().unwrap();
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, name);
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let cert = params.self_signed(&key).unwrap();
    (cert.pem(), Issuer::new(params, key))
}

/// The canned `query_range` answer: `leaky` grows 5 MiB/s for 10 min,
/// `flat` holds 200 MiB.
fn matrix() -> String {
    let mib = 1048576.0;
    let values = |f: &dyn Fn(f64) -> f64| {
        (0..600)
            .map(|i| format!("[{},\"{}\"]", T0 + i, f(i as f64)))
            .collect::<Vec<_>>()
            .join(",")
    };
    format!(
        r#"{{"status":"success","data":{{"resultType":"matrix","result":[
        {{"metric":{{"__name__":"memleak_process_rss_bytes","pid":"4242","comm":"leaky","instance":"web1:9464"}},"values":[{}]}},
        {{"metric":{{"__name__":"memleak_process_rss_bytes","pid":"77","comm":"flat","instance":"web1:9464"}},"values":[{}]}}]}}}}"#,
        values(&|i| 100.0 * mib + 5.0 * mib * i),
        values(&|_| 200.0 * mib)
    )
}

/// The stand-in: serves each connection on its own thread, records every
/// request's head, and stops with the test process.
struct Server {
    port: u16,
    heads: Arc<Mutex<Vec<String>>>,
}

fn serve(issuer: &Issuer<'static, KeyPair>, expected_auth: Vec<String>) -> Server {
    let key = KeyPair::generate().unwrap();
    let params = CertificateParams::new(vec!["127.0.0.1".to_string()]).unwrap();
    let cert = params.signed_by(&key, issuer).unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = Arc::new(
        rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(vec![cert.der().clone()], key.into())
            .unwrap(),
    );
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let heads = Arc::new(Mutex::new(Vec::new()));
    let seen = heads.clone();
    let body = matrix();
    std::thread::spawn(move || {
        // Bounded: a handful of runs make one connection each.
        for stream in listener.incoming().take(64) {
            let Ok(tcp) = stream else { continue };
            let (config, seen, body) = (config.clone(), seen.clone(), body.clone());
            let expected = expected_auth.clone();
            std::thread::spawn(move || {
                let conn = rustls::ServerConnection::new(config).unwrap();
                let mut tls = rustls::StreamOwned::new(conn, tcp);
                let mut reader = BufReader::new(&mut tls);
                let mut head = String::new();
                loop {
                    let mut line = String::new();
                    // A client that rejects the certificate ends here.
                    match reader.read_line(&mut line) {
                        Ok(0) | Err(_) => return,
                        Ok(_) if line == "\r\n" => break,
                        Ok(_) => head.push_str(&line),
                    }
                }
                let authorized = head.lines().any(|l| {
                    l.split_once(':').is_some_and(|(k, v)| {
                        k.eq_ignore_ascii_case("authorization")
                            && expected.iter().any(|e| e == v.trim())
                    })
                });
                seen.lock().unwrap().push(head);
                let (status, body) = if authorized {
                    ("200 OK", body)
                } else {
                    (
                        "401 Unauthorized",
                        r#"{"status":"error","errorType":"unauthorized","error":"no"}"#.into(),
                    )
                };
                let _ = write!(
                    tls,
                    "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = tls.flush();
                tls.conn.send_close_notify();
                let _ = tls.flush();
            });
        }
    });
    Server { port, heads }
}

fn basic_header() -> String {
    // What `Authorization: Basic` carries for USER:PASSWORD, computed by
    // coreutils rather than by memleak's own encoder.
    let out = Command::new("base64")
        .arg("-w0")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut c| {
            c.stdin
                .take()
                .unwrap()
                .write_all(format!("{USER}:{PASSWORD}").as_bytes())?;
            c.wait_with_output()
        })
        .expect("coreutils base64");
    format!("Basic {}", String::from_utf8(out.stdout).unwrap().trim())
}

/// Every secret form that must never be shown.
fn secrets() -> Vec<String> {
    let b = basic_header();
    vec![
        TOKEN.into(),
        PASSWORD.into(),
        b.trim_start_matches("Basic ").to_string(),
    ]
}

fn analyze(url: &str, extra: &[&str], env: &[(&str, &str)], dir: &Path) -> Output {
    let mut c = Command::new(memleak_bin());
    c.args(["analyze", "--prometheus", url])
        .args([
            "--since",
            &format!("@{T0}"),
            "--until",
            &format!("@{}", T0 + 599),
        ])
        .args(["--step", "1s", "--limit", "8GiB"])
        .args(extra)
        .current_dir(dir)
        // Trace level: the client's logs must not carry the secret either.
        .env("MEMLEAK_LOG", "trace")
        .env_remove("MEMLEAK_PROMETHEUS_BEARER_TOKEN")
        .env_remove("MEMLEAK_PROMETHEUS_USERNAME")
        .env_remove("MEMLEAK_PROMETHEUS_PASSWORD");
    for (k, v) in env {
        c.env(k, v);
    }
    c.output().unwrap()
}

fn assert_no_secret(what: &str, text: &str) {
    for s in secrets() {
        assert!(!text.contains(&s), "{what} shows a secret ({s}):\n{text}");
    }
}

fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(files_under(&p));
        } else {
            out.push(p);
        }
    }
    out
}

#[test]
fn https_prometheus_with_credentials_and_nothing_leaks() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let (ca_pem, issuer) = ca("memleak test CA");
    let ca_file = d.join("ca.pem");
    std::fs::write(&ca_file, &ca_pem).unwrap();
    let ca_arg = ca_file.to_str().unwrap();
    let server = serve(&issuer, vec![format!("Bearer {TOKEN}"), basic_header()]);
    let base = format!("https://127.0.0.1:{}", server.port);
    let requests = || server.heads.lock().unwrap().clone();

    // 1. Bearer token from a file, JSON report: the leak is flagged.
    let token_file = d.join("token");
    std::fs::write(&token_file, format!("{TOKEN}\n")).unwrap();
    let json = d.join("r.json");
    let o = analyze(
        &base,
        &[
            "--prometheus-ca-file",
            ca_arg,
            "--prometheus-bearer-token-file",
            token_file.to_str().unwrap(),
            "--format",
            "json",
            "--report",
            json.to_str().unwrap(),
        ],
        &[],
        d,
    );
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "bearer run failed: {err}");
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    let leaky = v["processes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["comm"] == "leaky")
        .expect("leaky in the report");
    assert_eq!(leaky["verdict"], "leak", "{v}");
    let heads = requests();
    assert!(
        heads
            .last()
            .is_some_and(|h| h.contains(&format!("Bearer {TOKEN}"))
                && h.starts_with("GET /api/v1/query_range?")),
        "{heads:?}"
    );

    // 2. user:password in the URL: sent as basic auth, shown nowhere, in
    // the table, the JSON and the HTML report alike.
    let with_userinfo = format!("https://{USER}:{PASSWORD}@127.0.0.1:{}/", server.port);
    let n = requests().len();
    // The table goes to stdout; the other formats to a file, with the
    // table on stdout too.
    for (format, report) in [
        ("table", None),
        ("json", Some("u.json")),
        ("html", Some("html")),
    ] {
        let report = report.map(|r| d.join(r).display().to_string());
        let mut args = vec!["--prometheus-ca-file", ca_arg, "--format", format];
        if let Some(r) = &report {
            args.extend(["--report", r.as_str()]);
        }
        let o = analyze(&with_userinfo, &args, &[], d);
        let out = String::from_utf8_lossy(&o.stdout);
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(o.status.success(), "{format}: {err}");
        assert_no_secret(&format!("{format} stdout"), &out);
        assert_no_secret(&format!("{format} stderr"), &err);
        // The server is still named, without its user info.
        assert!(
            out.contains(&format!("127.0.0.1:{}", server.port)),
            "{format}: {out}"
        );
    }
    let json = std::fs::read_to_string(d.join("u.json")).unwrap();
    assert!(
        json.contains(&format!("\"https://127.0.0.1:{}\"", server.port)),
        "{json}"
    );
    for f in files_under(d) {
        if f != ca_file && f != token_file {
            assert_no_secret(
                &f.display().to_string(),
                &String::from_utf8_lossy(&std::fs::read(&f).unwrap()),
            );
        }
    }
    let heads = requests();
    assert_eq!(heads.len(), n + 3, "{heads:?}");
    assert!(
        heads[n..].iter().all(|h| h.contains(&basic_header())),
        "{heads:?}"
    );

    // 3. Basic auth from the environment.
    let o = analyze(
        &base,
        &["--prometheus-ca-file", ca_arg],
        &[
            ("MEMLEAK_PROMETHEUS_USERNAME", USER),
            ("MEMLEAK_PROMETHEUS_PASSWORD", PASSWORD),
        ],
        d,
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(requests().last().unwrap().contains(&basic_header()));

    // 4. A wrong token: refused, said so, the token not repeated.
    let o = analyze(
        &base,
        &["--prometheus-ca-file", ca_arg],
        &[("MEMLEAK_PROMETHEUS_BEARER_TOKEN", "tok-SECRET-wrong")],
        d,
    );
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success());
    assert!(err.contains("401") && err.contains("credentials"), "{err}");
    assert!(!err.contains("tok-SECRET-wrong"), "{err}");

    // 5. A CA that did not sign the server's certificate, and the system
    // store (which does not know the test CA): a clear refusal, no request.
    let (other_pem, _) = ca("another CA");
    let other = d.join("other.pem");
    std::fs::write(&other, other_pem).unwrap();
    let n = requests().len();
    for extra in [
        vec!["--prometheus-ca-file", other.to_str().unwrap()],
        vec![],
    ] {
        let o = analyze(&with_userinfo, &extra, &[], d);
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(1), "{extra:?}: {err}");
        assert!(
            err.contains("is not trusted") && err.contains("--prometheus-ca-file"),
            "{extra:?}: {err}"
        );
        assert!(
            err.contains(&format!("https://127.0.0.1:{}", server.port)),
            "{err}"
        );
        assert_no_secret("untrusted-certificate error", &err);
    }
    assert_eq!(
        requests().len(),
        n,
        "no request may pass an untrusted handshake"
    );
}
