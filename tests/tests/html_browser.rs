//! The HTML report as a person sees it: a recording with a leak, a slower
//! grower and marked phases is analysed to HTML, Debian's Chromium renders
//! the page headless to a PNG, and the picture must show the charts: the
//! series (blue), the fit and its projection (red), the phase bands, and
//! the flame graph of the located stacks (`--locate`, warm colours), not a
//! blank or broken page.
//!
//! Needs `chromium` (Debian package `chromium`; `cargo xtask test`
//! installs it). Without it the test skips with the reason, except on CI
//! (CI=true), where it fails. The screenshot is kept as
//! `target/<profile>/html_browser.png` to look at.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use memleak::locate::{Frame, Located, LocatedStack};
use memleak::sample::{Mem, Observation, ProcId, ProcMeta};
use memleak::store::Writer;
use memleak_tests::{memleak_bin, on_ci, output_ok, target_dir, MIB};

const WIDTH: u32 = 1100;
const HEIGHT: u32 = 2600;
/// 2025-12-01 09:00:00 UTC.
const START_UNIX: u64 = 1_764_579_600;
const S: u64 = 1_000_000_000;

fn chromium() -> Option<PathBuf> {
    let found = ["/usr/bin/chromium", "/usr/bin/chromium-browser"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.is_file());
    if found.is_none() {
        if on_ci() {
            panic!("chromium is required on CI (apt-get install -y chromium; cargo xtask test does it)");
        }
        eprintln!("SKIPPED: no chromium binary (apt-get install -y chromium)");
    }
    found
}

/// Ten minutes at 1 s: `leaky` grows 2 MiB/s after a flat minute (a leak:
/// 8 GiB of RAM within the hour), `slowpoke` 0.25 MiB/s (growing, beyond
/// the horizon), `steady` holds 300 MiB; five marked tests; and the stacks
/// `--locate` would have found in `leaky` and `slowpoke`.
fn recording(path: &Path) {
    let mut w = Writer::create(path).unwrap();
    for (k, v) in [
        ("host", "ci-runner-7".to_string()),
        ("kernel", "6.18.0".into()),
        ("sampler", "ebpf".into()),
        ("interval_ns", S.to_string()),
        ("start_ns", S.to_string()),
        ("start_unix", START_UNIX.to_string()),
        ("mem_total", (8u64 << 30).to_string()),
        ("scope", "tree".into()),
        ("origin", "record".into()),
        ("command", "pytest -x tests/".into()),
        ("exit_code", "0".into()),
    ] {
        w.set_meta(k, &v).unwrap();
    }
    let phases = [
        ("setup", 5, 60),
        ("test_cache_fill", 60, 250),
        ("test_upload[big]", 250, 420),
        ("test_idle", 420, 520),
        ("teardown", 520, 598),
    ];
    let mut markers = Vec::new();
    for (name, a, b) in phases {
        markers.push((S + a * S, "begin", name));
        markers.push((S + b * S, "end", name));
    }
    markers.sort_by_key(|m| m.0);
    w.add_markers(&markers).unwrap();
    // A few MiB of deterministic wobble, as allocators give, so the
    // series shows beside its fitted line.
    let wobble = |i: u64| (i * 7919 % 13) * MIB / 2;
    /// pid, name, anonymous memory at second i.
    type Proc = (u32, &'static str, fn(u64) -> u64);
    let procs: [Proc; 3] = [
        (4242, "leaky", |i| 50 * MIB + 2 * MIB * i.saturating_sub(60)),
        (4243, "slowpoke", |i| 80 * MIB + MIB * i / 4),
        (4244, "steady", |_| 300 * MIB),
    ];
    for i in 0..600u64 {
        let t = S + i * S;
        let obs: Vec<Observation> = procs
            .iter()
            .map(|(pid, comm, anon)| Observation {
                id: ProcId {
                    pid: *pid,
                    start_ns: S / 2,
                },
                at_ns: t,
                mem: Mem {
                    vm: anon(i) + 600 * MIB,
                    rss_anon: anon(i) + wobble(i),
                    rss_file: 20 * MIB,
                    ..Mem::default()
                },
                meta: ProcMeta {
                    ppid: 1,
                    comm: comm.to_string(),
                    cmdline: Some(format!("python -m {comm}")),
                },
                // Still running at the end: a process that exits on its
                // own is not a leak by the horizon rule.
                exit: None,
            })
            .collect();
        w.write_snapshot(t, &obs).unwrap();
    }
    w.write_located(&located()).unwrap();
    w.finish(S + 600 * S).unwrap();
}

/// Located stacks as `--locate` stores them: `leaky`'s cache fill keeps
/// most, a churning path and `slowpoke`'s upload less, one hostile name.
fn located() -> Located {
    let frame = |function: &str, line: u32| Frame {
        addr: 0x40_1000 + u64::from(line),
        function: Some(function.to_string()),
        location: Some(format!("app.c:{line}")),
    };
    let unit = 97 * 4096;
    // Innermost first, as recorded.
    let stack = |pid: u32, comm: &str, samples: u64, path: &[(&str, u32)]| LocatedStack {
        id: ProcId {
            pid,
            start_ns: S / 2,
        },
        comm: comm.to_string(),
        samples,
        bytes: samples * unit,
        frames: path.iter().rev().map(|(f, l)| frame(f, *l)).collect(),
    };
    let main = [("_start", 1), ("__libc_start_main", 2), ("main", 40)];
    let with = |tail: &[(&'static str, u32)]| -> Vec<(&'static str, u32)> {
        main.iter().chain(tail).copied().collect()
    };
    Located {
        period: 97,
        page_size: 4096,
        lost: 0,
        stacks: vec![
            stack(
                4242,
                "leaky",
                3000,
                &with(&[("serve", 12), ("cache_fill", 30), ("leak_site", 26)]),
            ),
            stack(
                4242,
                "leaky",
                700,
                &with(&[("serve", 12), ("parse_request", 50), ("churn_buffer", 60)]),
            ),
            stack(
                4242,
                "leaky",
                300,
                &with(&[("load_config", 70), ("<script>alert(1)</script>", 71)]),
            ),
            stack(
                4243,
                "slowpoke",
                900,
                &with(&[("upload", 80), ("grow_queue", 81)]),
            ),
            stack(4243, "slowpoke", 1, &with(&[("rarely_called", 90)])),
        ],
        phases: Vec::new(),
    }
}

/// Runs `cmd`, killing it after `limit`.
fn run_with_timeout(cmd: &mut Command, limit: Duration) -> (bool, String) {
    let mut child = cmd
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start chromium");
    let end = Instant::now() + limit;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            let mut err = String::new();
            use std::io::Read;
            let _ = child.stderr.take().unwrap().read_to_string(&mut err);
            return (status.success(), err);
        }
        if Instant::now() > end {
            let _ = child.kill();
            let _ = child.wait();
            return (false, format!("timed out after {limit:?}"));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Pixels (RGB) of the PNG, with its width and height.
fn decode(png_path: &Path) -> (Vec<[u8; 3]>, u32, u32) {
    let file = std::io::BufReader::new(std::fs::File::open(png_path).unwrap());
    let mut reader = png::Decoder::new(file).read_info().expect("a PNG");
    let mut buf = vec![0; reader.output_buffer_size().unwrap()];
    let info = reader.next_frame(&mut buf).expect("a PNG frame");
    let step = match info.color_type {
        png::ColorType::Rgb => 3,
        png::ColorType::Rgba => 4,
        other => panic!("unexpected PNG colour type {other:?}"),
    };
    assert_eq!(info.bit_depth, png::BitDepth::Eight);
    let px = buf[..info.buffer_size()]
        .chunks(step)
        .map(|c| [c[0], c[1], c[2]])
        .collect();
    (px, info.width, info.height)
}

fn near(p: [u8; 3], c: [u8; 3], tol: i32) -> bool {
    p.iter()
        .zip(c)
        .all(|(a, b)| (i32::from(*a) - i32::from(b)).abs() <= tol)
}

#[test]
fn html_report_renders_charts_in_chromium() {
    let tmp = tempfile::tempdir().unwrap();
    let rec = tmp.path().join("suite.memleak");
    recording(&rec);
    let dir = tmp.path().join("report");
    output_ok(
        Command::new(memleak_bin())
            .arg("analyze")
            .arg(&rec)
            .args(["--format", "html", "--report"])
            .arg(&dir),
    );
    let html = std::fs::read_to_string(dir.join("index.html")).unwrap();
    // What the page must say before a browser draws it.
    assert_eq!(
        html.matches("<svg ").count(),
        3,
        "leaky, slowpoke, the flame graph"
    );
    assert_eq!(html.matches("<svg class=\"flame\"").count(), 1);
    assert!(!html.contains("<script"), "escaped frame names");
    assert!(html.contains("1 leak flagged, 1 growing"), "{html}");
    for want in [
        "test_cache_fill",
        "test_upload[big]",
        "time (UTC), 2025-12-01",
        "limit reached",
        "horizon 60 min",
        "Where new memory was first touched",
        "<title>leak_site (app.c:26): ",
        "<code>leak_site (app.c:26)</code> ← <code>cache_fill (app.c:30)</code>",
    ] {
        assert!(html.contains(want), "the page lacks {want:?}");
    }
    assert!(
        !html.contains("steady (pid"),
        "a stable process gets no chart"
    );

    let Some(chromium) = chromium() else { return };
    let shot = tmp.path().join("shot.png");
    let (ok, err) = run_with_timeout(
        Command::new(chromium)
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--hide-scrollbars",
            ])
            .arg("--disable-dev-shm-usage")
            .arg(format!(
                "--user-data-dir={}",
                tmp.path().join("profile").display()
            ))
            .arg(format!("--screenshot={}", shot.display()))
            .arg(format!("--window-size={WIDTH},{HEIGHT}"))
            .arg(format!("file://{}", dir.join("index.html").display()))
            .env("HOME", tmp.path()),
        Duration::from_secs(120),
    );
    assert!(ok && shot.is_file(), "chromium made no screenshot: {err}");
    let keep = target_dir().join("html_browser.png");
    let _ = std::fs::copy(&shot, &keep);

    let (px, w, h) = decode(&shot);
    assert_eq!((w, h), (WIDTH, HEIGHT), "see {}", keep.display());
    let count = |c: [u8; 3], tol: i32| px.iter().filter(|p| near(**p, c, tol)).count();
    let non_white = px.iter().filter(|p| !near(**p, [255, 255, 255], 6)).count();
    let blue = count([0x1f, 0x5f, 0xbf], 40);
    let red = count([0xd6, 0x27, 0x28], 40);
    // Phase bands: #dfe7f7 at 75% over white.
    let band = count([0xe7, 0xed, 0xf9], 8);
    // The flame graph's frames, in the warm palette.
    let flame: usize = memleak::report::flamegraph::PALETTE
        .iter()
        .map(|c| {
            let rgb = u32::from_str_radix(&c[1..], 16).unwrap().to_be_bytes();
            count([rgb[1], rgb[2], rgb[3]], 6)
        })
        .sum();
    let why = format!(
        "non-white {non_white}, blue {blue}, red {red}, band {band}, flame {flame} of {} pixels; see {}",
        px.len(),
        keep.display()
    );
    assert!(non_white > px.len() / 20, "mostly blank: {why}");
    assert!(blue > 1500, "the series lines are missing: {why}");
    assert!(red > 500, "the fit and projection are missing: {why}");
    assert!(band > 20_000, "the phase bands are missing: {why}");
    // 880 px wide, 6 to 8 frames high at 16 px: ~60,000 px less the text.
    assert!(flame > 30_000, "the flame graph is missing: {why}");
}
