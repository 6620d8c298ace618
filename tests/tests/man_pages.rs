//! Man pages and `--help`: what a packager installs and a newcomer reads
//! first. The pages come from the binary's own flag definitions.

use std::process::Command;

use memleak_tests::memleak_bin;

#[test]
fn man_writes_a_page_per_subcommand_with_exit_status_and_environment() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(memleak_bin())
        .arg("man")
        .arg(dir.path())
        .output()
        .expect("run memleak man");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for sub in [
        "run", "record", "analyze", "info", "eval", "compare", "diff", "watch", "locate",
    ] {
        let page = dir.path().join(format!("memleak-{sub}.1"));
        let text = std::fs::read_to_string(&page)
            .unwrap_or_else(|e| panic!("{} missing: {e}", page.display()));
        assert!(
            text.starts_with(".ie") || text.contains(".TH"),
            "roff: {page:?}"
        );
    }
    let run = std::fs::read_to_string(dir.path().join("memleak-run.1")).unwrap();
    assert!(
        run.contains("fail\\-on\\-leak"),
        "run's page lists its flags"
    );
    let main = std::fs::read_to_string(dir.path().join("memleak.1")).unwrap();
    for section in ["EXIT STATUS", "ENVIRONMENT", "FILES", "SEE ALSO"] {
        assert!(
            main.contains(&format!(".SH \"{section}\"")),
            "memleak.1 has {section}"
        );
    }
    assert!(main.contains("MEMLEAK_MARKERS") && main.contains("\\fB3\\fR"));
    // The hidden generator itself gets no page.
    assert!(!dir.path().join("memleak-man.1").exists());
}

#[test]
fn man_into_an_unwritable_place_fails_with_one_line() {
    let out = Command::new(memleak_bin())
        .args(["man", "/proc/self/memleak-man-pages"])
        .output()
        .expect("run memleak man");
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.starts_with("memleak: error: cannot create /proc/self/memleak-man-pages"),
        "{err}"
    );
    assert_eq!(err.trim_end().lines().count(), 1, "{err}");
}

#[test]
fn help_explains_exit_codes_and_environment() {
    let out = Command::new(memleak_bin()).arg("--help").output().unwrap();
    assert!(out.status.success());
    let help = String::from_utf8_lossy(&out.stdout);
    for needle in [
        "Exit status:",
        "--fail-on-leak",
        "MEMLEAK_LOG",
        "MEMLEAK_MARKERS",
        "procfs",
    ] {
        assert!(help.contains(needle), "--help mentions {needle}:\n{help}");
    }
    // Each subcommand's own help exists and says what it is for.
    for sub in ["run", "record", "analyze", "info", "watch"] {
        let out = Command::new(memleak_bin())
            .args([sub, "--help"])
            .output()
            .unwrap();
        assert!(out.status.success(), "memleak {sub} --help");
        let help = String::from_utf8_lossy(&out.stdout);
        assert!(
            help.contains(&format!("Usage: memleak {sub}")) && help.len() > 250,
            "memleak {sub} --help:\n{help}"
        );
    }
}
