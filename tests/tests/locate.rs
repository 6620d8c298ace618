//! `memleak locate PID` and `memleak run --locate` end to end, on a C
//! program (tests/data/leaky.c) with three allocation sites in three named
//! functions, only one of which keeps its memory: the leaking function must
//! come out on top, by name.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use memleak_tests::{
    build_leaky, build_test_program as build, memleak_bin, output_ok, require_locate, ChildGuard,
};

/// Samples `pid` for 3 s with `memleak locate`; returns the text report
/// and the JSON one.
fn locate(dir: &Path, pid: u32) -> (String, serde_json::Value) {
    let json = dir.join("located.json");
    let out = Command::new(memleak_bin())
        .args(["locate", &pid.to_string(), "-d", "3s", "-o"])
        .arg(&json)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let located = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    (stdout, located)
}

/// The function of the first frame of the stack with the most bytes.
fn top_function(located: &serde_json::Value) -> String {
    let stacks = located["stacks"].as_array().expect("stacks array");
    assert!(!stacks.is_empty(), "no stack sampled: {located:#}");
    let first = &stacks[0];
    let bytes: Vec<u64> = stacks
        .iter()
        .map(|s| s["estimated_bytes"].as_u64().unwrap())
        .collect();
    assert!(
        bytes.windows(2).all(|w| w[0] >= w[1]),
        "most bytes first: {bytes:?}"
    );
    first["frames"][0]["function"]
        .as_str()
        .unwrap_or("<unnamed>")
        .to_string()
}

/// Bytes estimated for the stacks whose innermost frame is `function`.
fn bytes_of(located: &serde_json::Value, function: &str) -> u64 {
    located["stacks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["frames"][0]["function"] == function)
        .map(|s| s["estimated_bytes"].as_u64().unwrap())
        .sum()
}

#[test]
fn locate_pid_puts_the_leaking_function_on_top() {
    require_locate!();
    let dir = tempfile::tempdir().unwrap();
    let Some(leaky) = build_leaky(dir.path()) else {
        return;
    };
    // Started without memleak, as a suspect found in production would be.
    let child = ChildGuard(Command::new(&leaky).arg("20").spawn().unwrap());
    std::thread::sleep(Duration::from_millis(300));
    let (stdout, located) = locate(dir.path(), child.id());
    assert_eq!(top_function(&located), "leak_site", "{located:#}");
    // The text report names it first too, with its file and line.
    let first_frame = stdout.lines().find(|l| l.trim_start().starts_with("at "));
    assert!(
        first_frame.is_some_and(|l| l.contains("leak_site (leaky.c:")),
        "{stdout}"
    );
    // 25 MiB/s leaked for 3 s: the estimate is within a factor of two.
    let leaked = bytes_of(&located, "leak_site");
    assert!(
        (37 << 20..=150 << 20).contains(&leaked),
        "estimated {leaked} bytes for ~75 MiB leaked"
    );
    // The churning sites reuse their heap pages: far below the leak.
    let churn = bytes_of(&located, "churn_site") + bytes_of(&located, "scratch_site");
    assert!(churn * 10 < leaked, "churn {churn} vs leak {leaked}");
}

/// The same program in Rust, built with frame pointers: names come
/// demangled, with their module path.
#[test]
fn locate_pid_names_the_leaking_rust_function() {
    require_locate!();
    let dir = tempfile::tempdir().unwrap();
    let flags = [
        "--edition",
        "2021",
        "-C",
        "force-frame-pointers=yes",
        "-C",
        "opt-level=0",
        "-g",
    ];
    let Some(leaky) = build(dir.path(), "rustc", &flags, "leaky.rs") else {
        return;
    };
    let child = ChildGuard(Command::new(&leaky).arg("20").spawn().unwrap());
    std::thread::sleep(Duration::from_millis(300));
    let (_, located) = locate(dir.path(), child.id());
    assert_eq!(top_function(&located), "leaky::leak_site", "{located:#}");
}

/// A JIT runtime: node writes a perf map (--perf-basic-prof), so the
/// hottest stack goes through JavaScript frames named after leaky.js (the
/// optimiser may inline leakSite into its caller, so the test asks for the
/// file, not the function).
#[test]
fn locate_names_javascript_frames_through_the_perf_map() {
    require_locate!();
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("data/leaky.js");
    // node drops isolate-*.log files in its working directory.
    let dir = tempfile::tempdir().unwrap();
    let child = match Command::new("node")
        .arg("--perf-basic-prof")
        .arg(&src)
        .arg("20")
        .current_dir(dir.path())
        .spawn()
    {
        Ok(c) => ChildGuard(c),
        // node is an optional runtime, not a build requirement: skip.
        Err(e) => {
            eprintln!("SKIPPED: no node: {e}");
            return;
        }
    };
    // The perf map exists once node has compiled its first functions.
    let map = PathBuf::from(format!("/tmp/perf-{}.map", child.id()));
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !map.exists() && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    let (_, located) = locate(dir.path(), child.id());
    let top = &located["stacks"][0]["frames"];
    let named_js = top.as_array().unwrap().iter().any(|f| {
        f["function"]
            .as_str()
            .is_some_and(|n| n.starts_with("JS:") && n.contains("leaky.js"))
    });
    assert!(named_js, "{located:#}");
    let _ = std::fs::remove_file(format!("/tmp/perf-{}.map", child.id()));
}

#[test]
fn run_locate_stores_the_stacks_and_reports_them() {
    require_locate!();
    let dir = tempfile::tempdir().unwrap();
    let Some(leaky) = build_leaky(dir.path()) else {
        return;
    };
    let rec = dir.path().join("r.memleak");
    let out = output_ok(
        Command::new(memleak_bin())
            .args(["run", "-q", "--locate", "--format", "json", "-o"])
            .arg(&rec)
            .arg("--")
            .arg(&leaky)
            .arg("3"),
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON report");
    assert_eq!(top_function(&report["located"]), "leak_site", "{report:#}");

    // The names were stored at record time: analysing the file after the
    // program is gone still gives them.
    let again = Command::new(memleak_bin())
        .args(["analyze", "--format", "json"])
        .arg(&rec)
        .output()
        .unwrap();
    let report: serde_json::Value = serde_json::from_slice(&again.stdout).unwrap();
    assert_eq!(top_function(&report["located"]), "leak_site");
    let schema: serde_json::Value = serde_json::from_str(include_str!(
        "../../memleak-user/src/report/schema/report.schema.json"
    ))
    .unwrap();
    let validator = jsonschema::validator_for(&schema).unwrap();
    let errors: Vec<String> = validator
        .iter_errors(&report)
        .map(|e| e.to_string())
        .collect();
    assert!(errors.is_empty(), "{errors:#?}");

    // `info` says what was located; the HTML report draws it.
    let info = Command::new(memleak_bin())
        .arg("info")
        .arg(&rec)
        .output()
        .unwrap();
    let info = String::from_utf8_lossy(&info.stdout);
    let line = info
        .lines()
        .find(|l| l.starts_with("located "))
        .unwrap_or_else(|| panic!("no located line: {info}"));
    assert!(line.contains("top: leak_site in "), "{line}");
    let html_dir = dir.path().join("html");
    let out = Command::new(memleak_bin())
        .args(["analyze", "--format", "html", "--report"])
        .arg(&html_dir)
        .arg(&rec)
        .output()
        .unwrap();
    assert!(out.status.success());
    let html = std::fs::read_to_string(html_dir.join("index.html")).unwrap();
    assert_eq!(html.matches("<svg class=\"flame\"").count(), 1);
    assert!(html.contains("<title>leak_site (leaky.c:"), "{html}");
}

/// A process that has exited long before the report is built, and before
/// the first pass that names stacks (about a second in): what its names
/// need was captured while it ran, so its leak is still named.
#[test]
fn run_locate_names_a_process_that_exited_before_its_stacks_were_named() {
    require_locate!();
    let dir = tempfile::tempdir().unwrap();
    let Some(leaky) = build_leaky(dir.path()) else {
        return;
    };
    let rec = dir.path().join("short.memleak");
    // 0.2 s of leaking (5 MiB); one fault in 11 sampled, so the leak
    // still gives a few dozen samples.
    let out = output_ok(
        Command::new(memleak_bin())
            .args(["run", "-q", "--locate", "--locate-period", "11"])
            .args(["--format", "json", "-o"])
            .arg(&rec)
            .arg("--")
            .arg(&leaky)
            .arg("0.2"),
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON report");
    let located = &report["located"];
    assert_eq!(top_function(located), "leak_site", "{located:#}");
    let top = &located["stacks"][0];
    // Named as the program it became, not as memleak before the exec.
    let program = leaky.file_name().unwrap().to_str().unwrap();
    assert_eq!(top["comm"], program, "{top:#}");
    assert!(
        top["frames"][0]["location"]
            .as_str()
            .is_some_and(|l| l.starts_with("leaky.c:")),
        "{top:#}"
    );
    // Its stack is whole: the caller is named too.
    let named: Vec<&str> = top["frames"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|f| f["function"].as_str())
        .collect();
    assert!(named.contains(&"main"), "{named:?}");
}

/// A program deleted while it runs, and gone when the report is built: its
/// file was held open when its maps were read, so it is still named.
#[test]
fn run_locate_names_a_program_deleted_while_it_ran() {
    require_locate!();
    let dir = tempfile::tempdir().unwrap();
    let Some(leaky) = build_leaky(dir.path()) else {
        return;
    };
    let gone = dir.path().join("gone");
    std::fs::copy(&leaky, &gone).unwrap();
    // Deleted once it runs as itself (its comm says the exec is done).
    let script = r#"$0 1 & p=$!
        until [ "$(cat /proc/$p/comm 2>/dev/null)" = gone ]; do sleep 0.01; done
        rm "$0"; wait $p"#;
    let out = output_ok(
        Command::new(memleak_bin())
            .args(["run", "-q", "--locate", "--format", "json", "-o"])
            .arg(dir.path().join("gone.memleak"))
            .args(["--", "sh", "-c", script])
            .arg(&gone),
    );
    assert!(!gone.exists());
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON report");
    let located = &report["located"];
    assert_eq!(top_function(located), "leak_site", "{located:#}");
    assert_eq!(located["stacks"][0]["comm"], "gone", "{located:#}");
}

/// A stack whose bucket in the kernel's stack table holds another stack
/// goes to the second table, whole: with a first table of one bucket
/// every stack but the first collides, and the leak is still found and
/// named, its samples not lost.
#[test]
fn colliding_stacks_are_kept_in_the_second_table() {
    require_locate!();
    let dir = tempfile::tempdir().unwrap();
    let Some(leaky) = build_leaky(dir.path()) else {
        return;
    };
    let rec = dir.path().join("collide.memleak");
    let out = output_ok(
        Command::new(memleak_bin())
            .env("MEMLEAK_TEST_LOCATE_STACK_ENTRIES", "1")
            .args(["run", "-q", "--locate", "--format", "json", "-o"])
            .arg(&rec)
            .arg("--")
            .arg(&leaky)
            .arg("2"),
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON report");
    let located = &report["located"];
    assert_eq!(top_function(located), "leak_site", "{located:#}");
    let stacks = located["stacks"].as_array().unwrap();
    // More stacks than the first table holds: the others were spilled.
    assert!(stacks.len() >= 2, "{located:#}");
    let counted: u64 = stacks.iter().map(|s| s["samples"].as_u64().unwrap()).sum();
    let lost = located["lost_samples"].as_u64().unwrap();
    assert!(
        lost * 10 <= counted,
        "lost {lost} of {counted}: {located:#}"
    );
    // 25 MiB/s for 2 s: the leak's samples are all there.
    let leaked = bytes_of(located, "leak_site");
    assert!((25 << 20..=100 << 20).contains(&leaked), "{leaked}");
}

#[test]
fn record_locate_refuses_a_whole_system_scope() {
    require_locate!();
    let dir = tempfile::tempdir().unwrap();
    let rec = dir.path().join("all.memleak");
    let out = Command::new(memleak_bin())
        .args(["record", "-q", "--all", "--locate", "-d", "1s", "-o"])
        .arg(&rec)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--locate needs a command or --pid"), "{err}");
    assert!(!rec.exists(), "no recording is left behind");
}

#[test]
fn locate_of_a_missing_process_says_so() {
    require_locate!();
    // A pid above pid_max's ceiling (2^22) never exists.
    let out = Command::new(memleak_bin())
        .args(["locate", "4194305", "-d", "1s"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("process 4194305 does not exist"), "{err}");
}
