//! The exact capabilities the eBPF sampler needs, as the systemd unit
//! grants them (`contrib/systemd/memleak-watch.service`): a non-root user
//! with no_new_privs and, as ambient and bounding set, the unit's
//! `AmbientCapabilities=`. With all of them the eBPF sampler loads; with
//! any one fewer, `--sampler auto` falls back to procfs with one line
//! naming the missing capability.
//!
//! Needs root (to switch user and hand out capabilities), setpriv, and an
//! eBPF-capable kernel; skipped with the reason otherwise.

use std::path::{Path, PathBuf};
use std::process::Output;

use memleak_tests::require_ebpf;
use memleak_tests::NobodySandbox;

/// The capabilities the shipped unit grants (`CAP_BPF` ...).
fn unit_capabilities() -> Vec<String> {
    let unit =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../contrib/systemd/memleak-watch.service");
    let text = std::fs::read_to_string(&unit).unwrap();
    let value = |key: &str| -> Vec<String> {
        let line = text
            .lines()
            .find_map(|l| l.strip_prefix(key))
            .unwrap_or_else(|| panic!("{} has no {key}", unit.display()));
        let mut caps: Vec<String> = line.split_whitespace().map(String::from).collect();
        caps.sort();
        caps
    };
    let ambient = value("AmbientCapabilities=");
    assert_eq!(
        ambient,
        value("CapabilityBoundingSet="),
        "the unit grants what it bounds"
    );
    ambient
}

/// `CAP_DAC_READ_SEARCH` -> `dac_read_search`, setpriv's spelling.
fn setpriv_name(cap: &str) -> String {
    cap.trim_start_matches("CAP_").to_lowercase()
}

/// `memleak record --sampler auto` as nobody with exactly `caps`, the way
/// systemd starts the unit (ambient capabilities, no_new_privs).
fn record_with(s: &NobodySandbox, caps: &[String], name: &str) -> (Output, PathBuf) {
    let rec = s.out.join(format!("{name}.memleak"));
    let set = std::iter::once("-all".to_string())
        .chain(caps.iter().map(|c| format!("+{}", setpriv_name(c))))
        .collect::<Vec<_>>()
        .join(",");
    let out = s
        .command(&[
            "--no-new-privs".to_string(),
            format!("--inh-caps={set}"),
            format!("--ambient-caps={set}"),
            format!("--bounding-set={set}"),
        ])
        .args(["record", "-q", "--sampler", "auto", "-i", "50ms", "-o"])
        .arg(&rec)
        .args(["--", "sh", "-c", "sleep 0.2"])
        .output()
        .expect("run setpriv");
    (out, rec)
}

fn sampler_meta(rec: &Path) -> String {
    let db = rusqlite::Connection::open_with_flags(rec, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
        .unwrap();
    db.query_row("SELECT value FROM meta WHERE key = 'sampler'", [], |r| {
        r.get(0)
    })
    .unwrap()
}

#[test]
fn the_units_capabilities_load_ebpf_and_each_one_is_needed() {
    require_ebpf!();
    let s = match memleak_tests::nobody_sandbox() {
        Ok(s) => s,
        Err(why) => {
            eprintln!("SKIPPED: {why}");
            return;
        }
    };
    let caps = unit_capabilities();
    assert_eq!(
        caps,
        ["CAP_BPF", "CAP_DAC_READ_SEARCH", "CAP_PERFMON"],
        "the set the README documents"
    );

    let (out, rec) = record_with(&s, &caps, "all");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(!stderr.contains("could not load"), "{stderr}");
    assert_eq!(sampler_meta(&rec), "ebpf", "{stderr}");

    for missing in &caps {
        let fewer: Vec<String> = caps.iter().filter(|c| *c != missing).cloned().collect();
        let (out, rec) = record_with(&s, &fewer, &setpriv_name(missing));
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "without {missing}: {stderr}");
        assert_eq!(sampler_meta(&rec), "procfs", "without {missing}: {stderr}");
        let why: Vec<&str> = stderr
            .lines()
            .filter(|l| l.contains("could not load"))
            .collect();
        assert_eq!(why.len(), 1, "one line says why: {stderr}");
        let named = why[0].split("; run as root").next().unwrap();
        assert!(
            named.contains(missing.as_str()),
            "without {missing}, the reason names it: {}",
            why[0]
        );
        for present in &fewer {
            assert!(
                !named.contains(present.as_str()),
                "and not {present}, which it has: {}",
                why[0]
            );
        }
    }
}
