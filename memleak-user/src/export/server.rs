//! The HTTP endpoint of `memleak watch --metrics`: hyper on a small tokio
//! runtime.
//!
//! Anyone who can reach the port is a client, so each one is bounded: the
//! request head must arrive within [`Limits::header_timeout`] and fit in
//! [`Limits::max_request_bytes`], a connection lives at most
//! [`Limits::connection_lifetime`] (a client that never reads its answer),
//! and at most [`Limits::max_connections`] are served at once; others wait
//! in the listen backlog. Connections are served concurrently, so a slow
//! client never delays a scraper.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::header::{HeaderValue, ALLOW, CONTENT_TYPE as CONTENT_TYPE_HEADER};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

use super::{Shared, CONTENT_TYPE};

/// What one client may cost.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    pub header_timeout: Duration,
    /// Bytes of request line + headers (hyper's minimum is 8 KiB).
    pub max_request_bytes: usize,
    pub connection_lifetime: Duration,
    pub max_connections: usize,
}

impl Default for Limits {
    fn default() -> Limits {
        // A scrape is one short request answered at once; these leave a
        // wide margin for Prometheus and curl and none for abuse.
        Limits {
            header_timeout: Duration::from_secs(5),
            max_request_bytes: 16 * 1024,
            connection_lifetime: Duration::from_secs(30),
            max_connections: 64,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("cannot start the metrics runtime: {0}")]
    Runtime(#[source] std::io::Error),
    #[error("cannot listen on {addr}: {source} (is the address local and the port free?)")]
    Bind {
        addr: String,
        #[source]
        source: std::io::Error,
    },
}

/// The running endpoint; dropping it stops the server and every task
/// spawned on [`MetricsServer::runtime`].
pub struct MetricsServer {
    runtime: Option<tokio::runtime::Runtime>,
    addr: SocketAddr,
}

impl MetricsServer {
    /// Binds `addr` (port 0 picks a free one) and serves `text` at
    /// `/metrics`.
    pub fn start(addr: &str, text: Shared, limits: Limits) -> Result<MetricsServer, ServeError> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .max_blocking_threads(2)
            .thread_name("memleak-metrics")
            .enable_io()
            .enable_time()
            .build()
            .map_err(ServeError::Runtime)?;
        let listener = runtime
            .block_on(TcpListener::bind(addr))
            .map_err(|source| ServeError::Bind {
                addr: addr.to_string(),
                source,
            })?;
        let bound = listener.local_addr().map_err(|source| ServeError::Bind {
            addr: addr.to_string(),
            source,
        })?;
        runtime.spawn(accept_loop(listener, text, limits));
        Ok(MetricsServer {
            runtime: Some(runtime),
            addr: bound,
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// For the refresher: tasks that live as long as the server.
    pub fn runtime(&self) -> &tokio::runtime::Handle {
        self.runtime
            .as_ref()
            .expect("the runtime is only taken on drop")
            .handle()
    }
}

impl Drop for MetricsServer {
    fn drop(&mut self) {
        if let Some(rt) = self.runtime.take() {
            // A refresh in progress must not hold up the exit for long.
            rt.shutdown_timeout(Duration::from_secs(2));
        }
    }
}

async fn accept_loop(listener: TcpListener, text: Shared, limits: Limits) {
    let slots = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    loop {
        let Ok(slot) = Arc::clone(&slots).acquire_owned().await else {
            return;
        };
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(e) => {
                // Out of file descriptors and the like: pause rather than
                // spin, and keep serving once it passes.
                tracing::warn!("metrics endpoint: accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let text = Arc::clone(&text);
        tokio::spawn(async move {
            let _slot = slot;
            let service = hyper::service::service_fn(move |req| {
                let reply = respond(&req, &text);
                async move { Ok::<_, Infallible>(reply) }
            });
            let conn = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(limits.header_timeout)
                .max_buf_size(limits.max_request_bytes.max(8192))
                .keep_alive(false)
                .serve_connection(TokioIo::new(stream), service);
            // Errors here are the client's (a reset, a timeout, a request
            // too large, already answered by hyper): nothing to report.
            let _ = tokio::time::timeout(limits.connection_lifetime, conn).await;
        });
    }
}

/// The answer to one request (hyper leaves the body out for HEAD).
fn respond(req: &Request<Incoming>, text: &Shared) -> Response<Full<Bytes>> {
    let reply = |status: StatusCode, ctype: &'static str, body: Bytes| {
        let mut r = Response::new(Full::new(body));
        *r.status_mut() = status;
        r.headers_mut()
            .insert(CONTENT_TYPE_HEADER, HeaderValue::from_static(ctype));
        r
    };
    if !matches!(*req.method(), Method::GET | Method::HEAD) {
        let mut r = reply(
            StatusCode::METHOD_NOT_ALLOWED,
            "text/plain",
            Bytes::from_static(b"GET or HEAD only\n"),
        );
        r.headers_mut()
            .insert(ALLOW, HeaderValue::from_static("GET, HEAD"));
        return r;
    }
    match req.uri().path() {
        "/metrics" => {
            let body = text.scrape();
            reply(StatusCode::OK, CONTENT_TYPE, Bytes::from(body))
        }
        "/" => reply(
            StatusCode::OK,
            "text/html; charset=utf-8",
            Bytes::from_static(
                b"<html><body><a href=\"/metrics\">memleak metrics</a></body></html>\n",
            ),
        ),
        _ => reply(
            StatusCode::NOT_FOUND,
            "text/plain",
            Bytes::from_static(b"not found\n"),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};
    use std::net::TcpStream;

    use crate::export::Exposition;

    fn ask(addr: SocketAddr, request: &str) -> String {
        let mut c = TcpStream::connect(addr).unwrap();
        c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        c.write_all(request.as_bytes()).unwrap();
        let mut s = String::new();
        c.read_to_string(&mut s).unwrap();
        s
    }

    fn get(addr: SocketAddr, path: &str) -> String {
        ask(addr, &format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n"))
    }

    #[test]
    fn serves_the_latest_text_at_metrics_and_404_elsewhere() {
        let text = Exposition::new("a 1\n");
        let server =
            MetricsServer::start("127.0.0.1:0", Arc::clone(&text), Limits::default()).unwrap();
        let addr = server.local_addr();
        let r = get(addr, "/metrics");
        assert!(r.starts_with("HTTP/1.1 200"), "{r}");
        assert!(r.contains(CONTENT_TYPE), "{r}");
        assert!(r.contains("\r\n\r\na 1\n"), "{r}");
        assert!(r.contains("memleak_exporter_scrapes_total 1\n"), "{r}");
        text.set("b 2\n".into());
        text.refresh_failed();
        let r = get(addr, "/metrics?x=1");
        assert!(r.contains("\r\n\r\nb 2\n"), "{r}");
        assert!(
            r.contains("memleak_exporter_refresh_errors_total 1\n"),
            "{r}"
        );
        assert!(r.contains("memleak_exporter_scrapes_total 2\n"), "{r}");
        assert!(get(addr, "/nope").starts_with("HTTP/1.1 404"));
        let head = ask(addr, "HEAD /metrics HTTP/1.1\r\nHost: x\r\n\r\n");
        assert!(head.starts_with("HTTP/1.1 200"), "{head}");
        assert!(head.ends_with("\r\n\r\n"), "HEAD has no body: {head}");
        let post = ask(addr, "POST /metrics HTTP/1.1\r\nHost: x\r\n\r\n");
        assert!(post.starts_with("HTTP/1.1 405"), "{post}");
    }

    #[test]
    fn clients_beyond_the_bound_wait_for_a_free_slot() {
        let text = Exposition::new("a 1\n");
        let limits = Limits {
            header_timeout: Duration::from_millis(500),
            max_connections: 1,
            ..Limits::default()
        };
        let server = MetricsServer::start("127.0.0.1:0", text, limits).unwrap();
        // Accepted first (the backlog is FIFO), it holds the only slot
        // until the header timeout frees it.
        let mut idle = TcpStream::connect(server.local_addr()).unwrap();
        idle.write_all(b"GET /metrics HTTP/1.1\r\n").unwrap();
        let began = std::time::Instant::now();
        let r = get(server.local_addr(), "/metrics");
        assert!(r.starts_with("HTTP/1.1 200"), "{r}");
        assert!(
            began.elapsed() >= Duration::from_millis(300),
            "served beyond the bound after {:?}",
            began.elapsed()
        );
    }
}
