//! What packagers and CI engineers install beside the binary: shell
//! completions, the JSON report's schema, and JUnit reports whose test
//! names stay the same from run to run (CI keeps a test's history by name).

use std::path::Path;
use std::process::{Command, Output};

use memleak_tests::memleak_bin;

fn memleak(args: &[&str]) -> Output {
    Command::new(memleak_bin())
        .args(args)
        .output()
        .expect("run memleak")
}

fn stdout_of(args: &[&str]) -> String {
    let o = memleak(args);
    assert!(
        o.status.success(),
        "memleak {args:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8(o.stdout).expect("UTF-8")
}

#[test]
fn bash_completion_parses_and_knows_subcommands_and_flags() {
    let script = stdout_of(&["completions", "bash"]);
    for word in ["watch", "analyze", "--sampler", "--fail-on-leak", "schema"] {
        assert!(script.contains(word), "completes {word}");
    }
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("memleak.bash");
    std::fs::write(&file, &script).unwrap();
    let check = Command::new("bash").arg("-n").arg(&file).output().unwrap();
    assert!(
        check.status.success(),
        "bash -n: {}",
        String::from_utf8_lossy(&check.stderr)
    );
    // Sourcing it registers the completion for `memleak`.
    let loaded = Command::new("bash")
        .arg("-c")
        .arg(format!("source {} && complete -p memleak", file.display()))
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&loaded.stdout).contains("memleak"),
        "{}",
        String::from_utf8_lossy(&loaded.stderr)
    );
}

#[test]
fn zsh_and_fish_completions_are_written_and_parse_where_the_shell_exists() {
    for (shell, marker, flag, check) in [
        ("zsh", "#compdef memleak", "--sampler", ["-n"].as_slice()),
        (
            "fish",
            "complete -c memleak",
            "-l sampler",
            ["--no-execute"].as_slice(),
        ),
    ] {
        let script = stdout_of(&["completions", shell]);
        assert!(script.contains(marker), "{shell}: {marker}");
        assert!(script.contains(flag), "{shell} completes flags");
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join(format!("memleak.{shell}"));
        std::fs::write(&file, &script).unwrap();
        match Command::new(shell).args(check).arg(&file).output() {
            Ok(o) => assert!(
                o.status.success(),
                "{shell} {check:?}: {}",
                String::from_utf8_lossy(&o.stderr)
            ),
            Err(e) => eprintln!("SKIPPED: {shell} syntax check: {shell} is not installed ({e})"),
        }
    }
    let bad = memleak(&["completions", "tcsh"]);
    assert_eq!(
        bad.status.code(),
        Some(2),
        "an unknown shell is a usage error"
    );
}

#[test]
fn schema_prints_the_shipped_file_and_a_real_report_validates() {
    let printed = stdout_of(&["schema"]);
    let shipped = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../memleak-user/src/report/schema/report.schema.json"),
    )
    .unwrap();
    assert_eq!(printed, shipped);
    let schema: serde_json::Value = serde_json::from_str(&printed).expect("JSON");
    let validator = jsonschema::validator_for(&schema).expect("a valid JSON Schema");

    let dir = tempfile::tempdir().unwrap();
    let rec = dir.path().join("r.memleak");
    let report = dir.path().join("r.json");
    let o = memleak(&[
        "run",
        "-q",
        "-i",
        "50ms",
        "-o",
        rec.to_str().unwrap(),
        "--format",
        "json",
        "--report",
        report.to_str().unwrap(),
        "--",
        "sh",
        "-c",
        "sleep 0.3",
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let value: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&report).unwrap()).unwrap();
    let errors: Vec<String> = validator
        .iter_errors(&value)
        .map(|e| format!("{}: {e}", e.instance_path()))
        .collect();
    assert!(errors.is_empty(), "{errors:?}\n{value}");
}

/// The testcase names of one `memleak run --format junit` of `script`.
fn junit_names(dir: &Path, tag: &str, script: &str) -> Vec<String> {
    let rec = dir.join(format!("{tag}.memleak"));
    let report = dir.join(format!("{tag}.xml"));
    let o = memleak(&[
        "run",
        "-q",
        "-i",
        "50ms",
        "-o",
        rec.to_str().unwrap(),
        "--format",
        "junit",
        "--report",
        report.to_str().unwrap(),
        "--",
        "sh",
        "-c",
        script,
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let xml = std::fs::read_to_string(&report).unwrap();
    let doc = roxmltree::Document::parse(&xml).expect("well-formed");
    let mut names: Vec<String> = doc
        .descendants()
        .filter(|n| n.has_tag_name("testcase"))
        .map(|n| n.attribute("name").unwrap().to_string())
        .collect();
    names.sort();
    names
}

#[test]
fn junit_test_names_are_the_same_across_runs_of_the_same_command() {
    let dir = tempfile::tempdir().unwrap();
    // Two identical children: their names must differ from each other,
    // and each must keep its name in the next run.
    let script = "sleep 0.4 & sleep 0.4; wait";
    let first = junit_names(dir.path(), "a", script);
    let second = junit_names(dir.path(), "b", script);
    assert!(first.len() >= 2, "{first:?}");
    assert_eq!(first, second);
    let mut unique = first.clone();
    unique.dedup();
    assert_eq!(unique, first, "names are unique within a report");
    assert!(
        first.iter().any(|n| n.starts_with("sleep")),
        "named by command: {first:?}"
    );
}
