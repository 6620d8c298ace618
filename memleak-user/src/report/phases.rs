//! The "phases" part of reports ([`crate::analyse::phases`]): for each
//! flagged process, which marked phases (tests) ran while it grew and how
//! much each saw; and for each test, the anonymous memory it kept, flagged
//! above its threshold.

use crate::analyse::phases::{ProcessPhases, TestVerdict};
use crate::analyse::units::{fmt_bytes, fmt_duration};

use super::{printable, Format};
use crate::analyse::Analysis;

/// At most this many phases per process in the table (all are in JSON).
const TABLE_PHASES: usize = 10;

/// At most this many flagged tests in the table (all are in JSON/JUnit).
const TABLE_TESTS: usize = 20;

/// At most this many unconfirmed tests in the table: they fail nothing.
const UNCONFIRMED_TESTS: usize = 5;

/// What the markers of a recording add to its report.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Marked {
    /// Phases overlapping each flagged process's growth window.
    pub processes: Vec<ProcessPhases>,
    /// Kept memory per test, flagged first.
    pub tests: Vec<TestVerdict>,
    /// Code paths sampled by `--locate` (empty without it).
    pub located: crate::locate::Located,
}

impl Marked {
    pub fn any_test_flagged(&self) -> bool {
        self.tests.iter().any(|t| t.flagged)
    }

    /// The names of the flagged tests, in report order.
    pub fn flagged_test_names(&self) -> Vec<&str> {
        self.tests
            .iter()
            .filter(|t| t.flagged)
            .map(|t| t.name.as_str())
            .collect()
    }
}

/// Renders `a` as `format` with what the markers add: sections after the
/// table, `phases` and `tests` arrays in JSON, a per-test testsuite in
/// JUnit, an error annotation per flagged test for GitHub; HTML is
/// unchanged.
pub fn render(a: &Analysis, format: Format, marked: &Marked) -> String {
    match format {
        Format::Junit => return super::junit::render_with_tests(a, &marked.tests),
        Format::Github => return super::github::render_with_tests(a, &marked.tests),
        _ => {}
    }
    if format == Format::Json {
        return super::json::render_marked(a, marked);
    }
    let base = super::render(a, format);
    match format {
        Format::Table => {
            let flagged = marked.flagged_test_names();
            base + &render_table(&marked.processes)
                + &render_tests_table(&marked.tests)
                + &crate::report::located::render_test_tops(&marked.located, &flagged)
                + &crate::report::located::render_text(&marked.located)
        }
        _ => base,
    }
}

/// Why a flagged test is flagged, in words: what its reruns kept, or the
/// run above the stated limit.
pub fn flagged_because(t: &TestVerdict) -> String {
    if t.confirmed {
        let kept: Vec<String> = t.runs[1..]
            .iter()
            .map(|r| fmt_bytes(r.kept_bytes))
            .collect();
        format!(
            "kept {} on {} reruns (floor {})",
            kept.join(", "),
            t.reruns,
            fmt_bytes(t.floor_bytes)
        )
    } else {
        let most = t.runs.iter().map(|r| r.kept_bytes).fold(f64::MIN, f64::max);
        format!(
            "kept {} in one run (stated limit {})",
            fmt_bytes(most),
            fmt_bytes(t.threshold_bytes)
        )
    }
}

/// The per-test section of the table ("" without measured tests): the
/// flagged tests, else one line saying none was and which kept the most;
/// then the unconfirmed ones (run once above the floor).
pub fn render_tests_table(tests: &[TestVerdict]) -> String {
    if tests.is_empty() {
        return String::new();
    }
    let flagged: Vec<&TestVerdict> = tests.iter().filter(|t| t.flagged).collect();
    let mut out = String::new();
    if flagged.is_empty() {
        let top = tests
            .iter()
            .max_by(|x, y| x.kept_bytes.total_cmp(&y.kept_bytes))
            .map(|t| format!(" (most: {} {})", signed(t.kept_bytes), printable(&t.name)))
            .unwrap_or_default();
        out.push_str(&format!(
            "memleak: {} tests measured, none kept memory above its threshold{top}\n",
            tests.len()
        ));
    } else {
        out.push_str(&format!(
            "memleak: {} of {} tests kept anonymous memory on every rerun or above a stated limit:\n",
            flagged.len(),
            tests.len()
        ));
    }
    for t in flagged.iter().take(TABLE_TESTS) {
        let r = t
            .runs
            .iter()
            .max_by(|x, y| x.kept_bytes.total_cmp(&y.kept_bytes));
        let who = r
            .map(|r| format!("pid {} ({})", r.pid, printable(&r.comm)))
            .unwrap_or_default();
        out.push_str(&format!(
            "  LEAK  {:>11}  {}  {who}  {}\n",
            signed(t.kept_bytes),
            flagged_because(t),
            printable(&t.name)
        ));
    }
    if flagged.len() > TABLE_TESTS {
        out.push_str(&format!(
            "  ... {} more (see --format json)\n",
            flagged.len() - TABLE_TESTS
        ));
    }
    let unconfirmed: Vec<&TestVerdict> = tests.iter().filter(|t| t.unconfirmed()).collect();
    if !unconfirmed.is_empty() {
        out.push_str(&format!(
            "memleak: {} tests kept at least the floor ({}) in their only run; unconfirmed, not rerun:\n",
            unconfirmed.len(),
            fmt_bytes(unconfirmed[0].floor_bytes)
        ));
        for t in unconfirmed.iter().take(UNCONFIRMED_TESTS) {
            out.push_str(&format!(
                "  once  {:>11}  {}\n",
                signed(t.kept_bytes),
                printable(&t.name)
            ));
        }
        if unconfirmed.len() > UNCONFIRMED_TESTS {
            out.push_str(&format!(
                "  ... {} more (see --format json)\n",
                unconfirmed.len() - UNCONFIRMED_TESTS
            ));
        }
    }
    out
}

fn signed(bytes: f64) -> String {
    let sign = if bytes < 0.0 { "-" } else { "+" };
    format!("{sign}{}", fmt_bytes(bytes.abs()))
}

/// A text section for the table report ("" when there is nothing).
pub fn render_table(all: &[ProcessPhases]) -> String {
    let mut out = String::new();
    for p in all {
        out.push_str(&format!(
            "memleak: phases while pid {} ({}) {} grew ({}..{}):\n",
            p.pid,
            printable(&p.comm),
            p.metric,
            fmt_duration(p.window_start_s),
            fmt_duration(p.window_end_s)
        ));
        for g in p.phases.iter().take(TABLE_PHASES) {
            let sign = if g.growth_bytes < 0.0 { "-" } else { "+" };
            out.push_str(&format!(
                "  {sign}{:>10}  {:>8}  {}\n",
                fmt_bytes(g.growth_bytes.abs()),
                fmt_duration(g.overlap_s),
                printable(&g.name)
            ));
        }
        if p.phases.len() > TABLE_PHASES {
            out.push_str(&format!(
                "  ... {} more (see --format json)\n",
                p.phases.len() - TABLE_PHASES
            ));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analyse::phases::{PhaseGrowth, ProcessPhases, TestRun};
    use crate::analyse::Metric;

    fn tests() -> Vec<TestVerdict> {
        let run = TestRun {
            pid: 42,
            start_ns: 7,
            comm: "python3".into(),
            start_s: 10.0,
            end_s: 20.0,
            anon_start_bytes: 30.0 * 1048576.0,
            kept_bytes: 100.0 * 1048576.0,
            by_pid: true,
        };
        vec![
            TestVerdict {
                name: "test_a.py::test_leaky".into(),
                kept_bytes: 300.0 * 1048576.0,
                threshold_bytes: 256.0 * 1024.0,
                floor_bytes: 256.0 * 1024.0,
                reruns: 2,
                confirmed: true,
                inconclusive: false,
                cleared: false,
                flagged: true,
                runs: vec![run.clone(), run.clone(), run.clone()],
            },
            TestVerdict {
                name: "test_a.py::test_fine".into(),
                kept_bytes: 0.0,
                threshold_bytes: 256.0 * 1024.0,
                floor_bytes: 256.0 * 1024.0,
                reruns: 0,
                confirmed: false,
                inconclusive: false,
                cleared: false,
                flagged: false,
                runs: vec![TestRun {
                    kept_bytes: 0.0,
                    ..run.clone()
                }],
            },
            TestVerdict {
                name: "test_a.py::test_warms_once".into(),
                kept_bytes: 4.0 * 1048576.0,
                threshold_bytes: 256.0 * 1024.0,
                floor_bytes: 256.0 * 1024.0,
                reruns: 0,
                confirmed: false,
                inconclusive: false,
                cleared: false,
                flagged: false,
                runs: vec![TestRun {
                    kept_bytes: 4.0 * 1048576.0,
                    ..run
                }],
            },
        ]
    }

    fn sample() -> Vec<ProcessPhases> {
        vec![ProcessPhases {
            pid: 42,
            start_ns: 7,
            comm: "python3".into(),
            metric: Metric::Rss,
            window_start_s: 3.0,
            window_end_s: 30.0,
            phases: vec![PhaseGrowth {
                name: "test_a.py::test_leaky".into(),
                start_s: 10.0,
                end_s: Some(20.0),
                overlap_s: 10.0,
                growth_bytes: 100.0 * 1048576.0,
            }],
        }]
    }

    #[test]
    fn table_names_the_phase_and_its_growth() {
        let t = render_table(&sample());
        assert!(t.contains("pid 42 (python3) rss grew"), "{t}");
        assert!(t.contains("test_a.py::test_leaky"), "{t}");
        assert!(t.contains("+"), "{t}");
        assert_eq!(render_table(&[]), "");
    }

    #[test]
    fn json_gets_a_phases_array() {
        let marked = Marked {
            processes: sample(),
            tests: Vec::new(),
            ..Marked::default()
        };
        let j = crate::report::json::render_marked(&crate::load::tests::tiny_analysis(), &marked);
        let v: serde_json::Value = serde_json::from_str(&j).unwrap();
        assert_eq!(v["phases"][0]["pid"], 42);
        assert_eq!(v["phases"][0]["metric"], "rss");
        assert_eq!(v["phases"][0]["phases"][0]["name"], "test_a.py::test_leaky");
        assert!(v.get("tests").is_none(), "{v}");
    }

    #[test]
    fn table_names_flagged_tests_or_says_none_was() {
        let t = render_tests_table(&tests());
        assert!(t.contains("1 of 3 tests kept"), "{t}");
        assert!(t.contains("LEAK"), "{t}");
        assert!(t.contains("+300.0 MiB"), "{t}");
        assert!(
            t.contains("kept 100.0 MiB, 100.0 MiB on 2 reruns (floor 256.0 KiB)"),
            "{t}"
        );
        assert!(t.contains("test_a.py::test_leaky"), "{t}");
        assert!(!t.contains("test_fine"), "{t}");
        // Run once above the floor: listed apart, as unconfirmed.
        assert!(t.contains("1 tests kept at least the floor"), "{t}");
        assert!(t.contains("+4.0 MiB  test_a.py::test_warms_once"), "{t}");
        let mut calm = tests();
        calm.remove(0);
        let t = render_tests_table(&calm);
        assert!(t.contains("2 tests measured, none kept"), "{t}");
        assert_eq!(render_tests_table(&[]), "");
    }

    #[test]
    fn located_stacks_reach_the_table_and_the_json_report() {
        use crate::load::tests::tiny_analysis;
        use crate::locate::{Frame, Located, LocatedStack, PhaseStacks};
        let stack = LocatedStack {
            id: crate::sample::ProcId {
                pid: 42,
                start_ns: 9,
            },
            comm: "leaky".into(),
            samples: 10,
            bytes: 10 * 97 * 4096,
            frames: vec![Frame {
                addr: 0x401136,
                function: Some("leak_site".into()),
                location: Some("leaky.c:26".into()),
            }],
        };
        let marked = Marked {
            tests: tests(),
            located: Located {
                period: 97,
                page_size: 4096,
                lost: 0,
                stacks: vec![stack.clone()],
                // The flagged test touched 8 of the 10 samples.
                phases: vec![PhaseStacks {
                    name: "test_a.py::test_leaky".into(),
                    stacks: vec![LocatedStack {
                        samples: 8,
                        bytes: 8 * 97 * 4096,
                        ..stack
                    }],
                }],
            },
            ..Marked::default()
        };
        let a = tiny_analysis();
        let table = render(&a, Format::Table, &marked);
        assert!(table.contains("at leak_site (leaky.c:26)"), "{table}");
        assert!(
            table.contains("where the flagged tests first touched new memory")
                && table.contains("test_a.py::test_leaky  3.0 MiB in 8 samples, 100% at leak_site"),
            "{table}"
        );
        let out: serde_json::Value =
            serde_json::from_str(&render(&a, Format::Json, &marked)).unwrap();
        let errors = super::super::json::schema_errors(&out);
        assert!(errors.is_empty(), "{errors:#?}");
        assert_eq!(
            out["located"]["stacks"][0]["frames"][0]["function"],
            "leak_site"
        );
        assert_eq!(
            out["located"]["stacks"][0]["estimated_bytes"],
            10 * 97 * 4096
        );
        assert_eq!(out["located"]["phases"][0]["name"], "test_a.py::test_leaky");
        assert_eq!(
            out["located"]["phases"][0]["stacks"][0]["frames"][0]["function"],
            "leak_site"
        );
        let mut bad = out.clone();
        bad["located"]["phases"][0]["stacks"][0]["samples"] = 0.into();
        assert!(!super::super::json::schema_errors(&bad).is_empty());
        let mut bad = out.clone();
        bad["located"]["stacks"][0]["samples"] = 0.into();
        assert!(!super::super::json::schema_errors(&bad).is_empty());
        // Without --locate there is no `located` key at all.
        let plain: serde_json::Value =
            serde_json::from_str(&render(&a, Format::Json, &Marked::default())).unwrap();
        assert!(plain.get("located").is_none());
    }

    #[test]
    fn json_with_tests_validates_against_the_schema() {
        use crate::load::tests::tiny_analysis;
        let marked = Marked {
            processes: sample(),
            tests: tests(),
            ..Marked::default()
        };
        let a = tiny_analysis();
        let out: serde_json::Value =
            serde_json::from_str(&render(&a, Format::Json, &marked)).unwrap();
        let errors = super::super::json::schema_errors(&out);
        assert!(errors.is_empty(), "{errors:#?}");
        assert_eq!(out["tests"][0]["name"], "test_a.py::test_leaky");
        assert_eq!(out["tests"][0]["flagged"], true);
        assert_eq!(out["tests"][0]["runs"][0]["pid"], 42);
        let mut bad = out.clone();
        bad["tests"][0]["flagged"] = "yes".into();
        assert!(!super::super::json::schema_errors(&bad).is_empty());
    }
}
