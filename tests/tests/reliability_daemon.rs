//! `memleak watch --metrics` facing hostile or broken clients: a slow
//! client does not hold up other scrapes, a request that never ends is cut
//! off, and an endless request line neither grows memleak nor is read to
//! its end.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use memleak_tests::memleak_bin;

/// `memleak watch` of one idle process with metrics on a free port; killed
/// (with that process) when dropped.
struct Watch {
    memleak: Child,
    idle: Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl Drop for Watch {
    fn drop(&mut self) {
        for c in [&mut self.memleak, &mut self.idle] {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Watch {
    fn start() -> Watch {
        Watch::start_with(|_| {}, Stdio::null())
    }

    /// [`Watch::start`] after `prepare` ran on the directory, with `stderr`.
    fn start_with(prepare: impl FnOnce(&std::path::Path), stderr: Stdio) -> Watch {
        let dir = tempfile::tempdir().unwrap();
        prepare(dir.path());
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let idle = Command::new("sleep").arg("120").spawn().unwrap();
        let memleak = Command::new(memleak_bin())
            .args(["watch", "--sampler", "procfs", "-i", "500ms"])
            .args(["--pid", &idle.id().to_string(), "--dir"])
            .arg(dir.path())
            .args(["--metrics", &format!("127.0.0.1:{port}")])
            .args(["--refresh", "1s", "--window", "1m"])
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .unwrap();
        let w = Watch {
            memleak,
            idle,
            port,
            _dir: dir,
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if scrape(w.port, Duration::from_secs(5))
                .is_ok_and(|r| r.contains("memleak_processes_tracked"))
            {
                return w;
            }
            assert!(Instant::now() < deadline, "watch never served metrics");
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn peak_rss_mib(&self) -> u64 {
        let status =
            std::fs::read_to_string(format!("/proc/{}/status", self.memleak.id())).unwrap();
        let kib: u64 = status
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .and_then(|v| v.split_whitespace().next()?.parse().ok())
            .unwrap();
        kib / 1024
    }
}

/// One `GET /metrics`, all of it within `within`.
fn scrape(port: u16, within: Duration) -> std::io::Result<String> {
    let mut c = TcpStream::connect(("127.0.0.1", port))?;
    c.set_read_timeout(Some(within))?;
    c.set_write_timeout(Some(within))?;
    c.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")?;
    let mut s = String::new();
    c.read_to_string(&mut s)?;
    if !s.starts_with("HTTP/1.1 200") {
        return Err(std::io::Error::other(format!("not a 200: {s:.200}")));
    }
    Ok(s)
}

/// Starts a request and sends one more header byte every `every`; returns
/// once the server closed the connection (with how long that took), or
/// after `give_up`.
fn slow_client(
    port: u16,
    every: Duration,
    give_up: Duration,
    connected: Option<std::sync::mpsc::Sender<()>>,
) -> Option<Duration> {
    let began = Instant::now();
    let mut c = TcpStream::connect(("127.0.0.1", port)).unwrap();
    c.write_all(b"GET /metrics HTTP/1.1\r\nX-Slow: ").unwrap();
    if let Some(tx) = connected {
        let _ = tx.send(());
    }
    c.set_read_timeout(Some(every)).unwrap();
    let mut buf = [0u8; 1024];
    while began.elapsed() < give_up {
        match c.read(&mut buf) {
            // The server answered (408) or hung up: it is done with us.
            Ok(_) => return Some(began.elapsed()),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(e) if e.kind() == std::io::ErrorKind::TimedOut => {}
            Err(_) => return Some(began.elapsed()),
        }
        if c.write_all(b"a").is_err() {
            return Some(began.elapsed());
        }
    }
    None
}

#[test]
fn a_slow_client_does_not_hold_up_other_scrapes() {
    let w = Watch::start();
    let port = w.port;
    let (tx, rx) = std::sync::mpsc::channel();
    let slow = std::thread::spawn(move || {
        slow_client(
            port,
            Duration::from_millis(500),
            Duration::from_secs(12),
            Some(tx),
        )
    });
    rx.recv_timeout(Duration::from_secs(5))
        .expect("the slow client connected");
    for _ in 0..3 {
        let began = Instant::now();
        let r = scrape(w.port, Duration::from_secs(3));
        assert!(
            r.is_ok(),
            "a scrape behind a slow client failed after {:?}: {r:?}",
            began.elapsed()
        );
    }
    let _ = slow.join();
}

#[test]
fn a_request_that_never_ends_is_cut_off() {
    let w = Watch::start();
    let closed = slow_client(
        w.port,
        Duration::from_millis(500),
        Duration::from_secs(30),
        None,
    );
    assert!(
        closed.is_some_and(|t| t < Duration::from_secs(20)),
        "a client trickling header bytes kept its connection: {closed:?}"
    );
    assert!(scrape(w.port, Duration::from_secs(3)).is_ok());
}

#[test]
fn an_endless_request_line_is_refused_without_growing_memleak() {
    let w = Watch::start();
    let before = w.peak_rss_mib();
    let mut c = TcpStream::connect(("127.0.0.1", w.port)).unwrap();
    c.set_write_timeout(Some(Duration::from_secs(10))).unwrap();
    c.write_all(b"GET /").unwrap();
    let chunk = vec![b'a'; 1 << 20];
    let mut sent_mib = 0;
    while sent_mib < 256 && c.write_all(&chunk).is_ok() {
        sent_mib += 1;
    }
    let grew = w.peak_rss_mib().saturating_sub(before);
    assert!(
        sent_mib < 64,
        "the server read {sent_mib} MiB of one request line without refusing it"
    );
    assert!(grew < 32, "memleak grew by {grew} MiB reading one request");
    assert!(scrape(w.port, Duration::from_secs(3)).is_ok());
}

/// The newest refresh time the endpoint reports.
fn refreshed_at(port: u16) -> f64 {
    scrape(port, Duration::from_secs(3))
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("memleak_exporter_last_refresh_timestamp_seconds "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap()
}

#[test]
fn metrics_keep_refreshing_when_warnings_cannot_be_written() {
    // A damaged newest file makes every refresh warn; stderr is full.
    let full = std::fs::OpenOptions::new()
        .write(true)
        .open("/dev/full")
        .unwrap();
    let w = Watch::start_with(
        |dir| std::fs::write(dir.join("memleak-99991231-000000.memleak"), b"damaged").unwrap(),
        Stdio::from(full),
    );
    let first = refreshed_at(w.port);
    let deadline = Instant::now() + Duration::from_secs(15);
    while refreshed_at(w.port) <= first {
        assert!(Instant::now() < deadline, "the metrics stopped refreshing");
        std::thread::sleep(Duration::from_millis(200));
    }
}
