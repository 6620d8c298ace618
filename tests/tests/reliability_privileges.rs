//! Without privileges: `--sampler auto` falls back to procfs and says why in
//! one line; `--sampler ebpf` fails naming the missing capability.
//!
//! Runs memleak as `nobody` through `setpriv`; skipped (with the reason)
//! when not root or when setpriv is missing.

use std::process::{Command, Output};

use memleak_tests::memleak_bin;

fn as_nobody(u: &memleak_tests::NobodySandbox, args: &[&str]) -> Output {
    u.command(&[]).args(args).output().expect("run setpriv")
}

macro_rules! setup_or_skip {
    () => {
        match memleak_tests::nobody_sandbox() {
            Ok(s) => s,
            Err(why) => {
                eprintln!("SKIPPED: {why}");
                return;
            }
        }
    };
}

#[test]
fn auto_falls_back_to_procfs_with_one_line_saying_why() {
    let u = setup_or_skip!();
    let rec = u.out.join("auto.memleak");
    let o = as_nobody(
        &u,
        &[
            "record",
            "-q",
            "--interval",
            "50ms",
            "-o",
            rec.to_str().unwrap(),
            "--",
            "sh",
            "-c",
            "sleep 0.3",
        ],
    );
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "recording as nobody works: {stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    let why: Vec<&str> = stderr
        .lines()
        .filter(|l| l.contains("procfs") && l.contains("could not load"))
        .collect();
    assert_eq!(why.len(), 1, "one line explains the fallback: {stderr}");
    assert!(
        why[0].contains("CAP_BPF") || why[0].contains("privileges"),
        "it says what is missing: {}",
        why[0]
    );
    assert!(stderr.contains("(procfs sampler)"), "{stderr}");
    // The recording says so too, for whoever reads it later.
    let info = Command::new(memleak_bin())
        .arg("info")
        .arg(&rec)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&info.stdout);
    assert!(
        text.lines().any(|l| l.starts_with("sampler")
            && l.contains("procfs")
            && l.contains("could not load")),
        "{text}"
    );
    let r = memleak::store::Recording::open(&rec).unwrap();
    assert!(
        r.processes().unwrap().iter().any(|p| p.comm == "sleep"),
        "{:?}",
        r.processes().unwrap()
    );
}

#[test]
fn forced_ebpf_fails_naming_the_missing_capability() {
    let u = setup_or_skip!();
    let rec = u.out.join("ebpf.memleak");
    let o = as_nobody(
        &u,
        &[
            "record",
            "-q",
            "--sampler",
            "ebpf",
            "-o",
            rec.to_str().unwrap(),
            "--",
            "true",
        ],
    );
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    let errors: Vec<&str> = stderr
        .lines()
        .filter(|l| l.starts_with("memleak: error:"))
        .collect();
    assert_eq!(errors.len(), 1, "{stderr}");
    assert!(
        errors[0].contains("CAP_BPF") && errors[0].contains("CAP_PERFMON"),
        "names the capabilities: {}",
        errors[0]
    );
    assert!(
        errors[0].contains("--sampler procfs"),
        "and the way out: {}",
        errors[0]
    );
    assert!(!rec.exists(), "no recording is left behind");
}

/// `memleak locate` as nobody: a one-line error naming the missing
/// capabilities and what to do, exit 1, before touching the target.
#[test]
fn locate_without_privileges_says_what_is_missing() {
    let u = setup_or_skip!();
    let target = std::process::id().to_string();
    let o = as_nobody(&u, &["locate", &target, "-d", "1s"]);
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("locate needs privileges"), "{stderr}");
    assert!(stderr.contains("CAP_BPF"), "{stderr}");
    assert!(stderr.contains("CAP_PERFMON"), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "one line: {stderr}");
}
