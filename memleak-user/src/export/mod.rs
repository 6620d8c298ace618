//! Prometheus exposition for `memleak watch --metrics ADDR`.
//!
//! A refresher (in `memleak watch`) periodically reads the recent
//! recordings, runs the analyser over the last window and renders the text
//! format with [`metrics::render`]; [`serve`] answers `GET /metrics` with
//! the latest text. Scrapes never touch the recording: they cost a copy of
//! a string, whatever the scrape rate.

pub mod metrics;

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Content type of the Prometheus text format.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// The text served at /metrics, replaced by the refresher.
pub type Shared = Arc<Mutex<String>>;

/// Binds `addr` and serves `/metrics` from `text` on a background thread.
/// Returns the bound address (port 0 picks a free one).
pub fn serve(addr: &str, text: Shared) -> std::io::Result<SocketAddr> {
    let listener = TcpListener::bind(addr)?;
    let local = listener.local_addr()?;
    std::thread::Builder::new()
        .name("memleak-metrics".into())
        .spawn(move || {
            for conn in listener.incoming().flatten() {
                // One at a time is plenty for a scraper or two; a slow
                // client is cut off by the timeouts.
                let _ = answer(conn, &text);
            }
        })?;
    Ok(local)
}

fn answer(mut conn: TcpStream, text: &Shared) -> std::io::Result<()> {
    conn.set_read_timeout(Some(Duration::from_secs(5)))?;
    conn.set_write_timeout(Some(Duration::from_secs(5)))?;
    let mut reader = BufReader::new(conn.try_clone()?);
    let mut request = String::new();
    reader.read_line(&mut request)?;
    // Skip the headers.
    let mut line = String::new();
    while reader.read_line(&mut line)? > 2 {
        line.clear();
    }
    let mut parts = request.split_whitespace();
    let method = parts.next().unwrap_or("");
    let target = parts.next().unwrap_or("");
    let path = target.split('?').next().unwrap_or("");
    let (status, ctype, body) = match (method, path) {
        ("GET" | "HEAD", "/metrics") => {
            let body = text.lock().map(|t| t.clone()).unwrap_or_default();
            ("200 OK", CONTENT_TYPE, body)
        }
        ("GET" | "HEAD", "/") => (
            "200 OK",
            "text/html; charset=utf-8",
            "<html><body><a href=\"/metrics\">memleak metrics</a></body></html>\n".to_string(),
        ),
        ("GET" | "HEAD", _) => ("404 Not Found", "text/plain", "not found\n".to_string()),
        _ => (
            "405 Method Not Allowed",
            "text/plain",
            "GET only\n".to_string(),
        ),
    };
    let head = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    conn.write_all(head.as_bytes())?;
    if method != "HEAD" {
        conn.write_all(body.as_bytes())?;
    }
    conn.flush()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    fn get(addr: SocketAddr, path: &str) -> String {
        let mut c = TcpStream::connect(addr).unwrap();
        write!(c, "GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
        let mut s = String::new();
        c.read_to_string(&mut s).unwrap();
        s
    }

    #[test]
    fn serves_the_latest_text_at_metrics() {
        let text: Shared = Arc::new(Mutex::new("a 1\n".into()));
        let addr = serve("127.0.0.1:0", Arc::clone(&text)).unwrap();
        let r = get(addr, "/metrics");
        assert!(r.starts_with("HTTP/1.1 200"), "{r}");
        assert!(r.contains(CONTENT_TYPE), "{r}");
        assert!(r.ends_with("\r\n\r\na 1\n"), "{r}");
        *text.lock().unwrap() = "b 2\n".into();
        assert!(get(addr, "/metrics?x=1").ends_with("b 2\n"));
        assert!(get(addr, "/nope").starts_with("HTTP/1.1 404"));
    }
}
