//! Located stacks as text (the terminal, the `analyze` table) and as JSON
//! (`locate -o FILE`, the `located` array of `analyze --format json`).

use serde::Serialize;

use crate::analyse::units::fmt_bytes;
use crate::locate::{Frame, Located, LocatedStack, PhaseStacks};
use crate::report::printable;

/// Stacks shown in the text report.
pub const TEXT_STACKS: usize = 10;
/// Frames shown per stack in the text report (JSON has them all).
const TEXT_FRAMES: usize = 8;

/// The text section: the top stacks by estimated bytes, each with its
/// innermost frames. Empty when nothing was sampled.
pub fn render_text(l: &Located) -> String {
    let mut out = String::new();
    if l.stacks.is_empty() {
        return out;
    }
    let unit = l.period * l.page_size;
    out.push_str(&format!(
        "memleak: where new memory was first touched (1 page fault in {} sampled; each sample ~ {}):\n",
        l.period,
        fmt_bytes(unit as f64)
    ));
    let total: u64 = l.stacks.iter().map(|s| s.samples).sum();
    for (i, s) in l.stacks.iter().take(TEXT_STACKS).enumerate() {
        out.push_str(&format!(
            "{:>3}. {:>10}  {:>5.1}%  {} (pid {}), {} samples\n",
            i + 1,
            fmt_bytes(s.bytes as f64),
            100.0 * s.samples as f64 / total.max(1) as f64,
            printable(&s.comm),
            s.id.pid,
            s.samples
        ));
        for (depth, f) in s.frames.iter().take(TEXT_FRAMES).enumerate() {
            let arrow = if depth == 0 { "at" } else { "<-" };
            out.push_str(&format!("        {arrow} {}\n", printable(&f.label())));
        }
        if s.frames.len() > TEXT_FRAMES {
            out.push_str(&format!(
                "        ... {} more frames\n",
                s.frames.len() - TEXT_FRAMES
            ));
        }
    }
    if l.stacks.len() > TEXT_STACKS {
        out.push_str(&format!(
            "     ... {} more stacks (see the JSON report)\n",
            l.stacks.len() - TEXT_STACKS
        ));
    }
    if l.lost > 0 {
        out.push_str(&format!(
            "memleak: note: {} samples could not be attributed to a stack\n",
            l.lost
        ));
    }
    out
}

/// Flagged tests shown with their top stack in the text report (all
/// phases are in JSON).
const TEXT_TESTS: usize = 20;

/// The stack that touched the most new memory during a phase, and its
/// innermost named frame (the function to look at; the first frame when
/// none is named).
pub fn phase_top(p: &PhaseStacks) -> Option<(&LocatedStack, &Frame)> {
    let top = p.stacks.first()?;
    let frame = top
        .frames
        .iter()
        .find(|f| f.function.is_some())
        .or(top.frames.first())?;
    Some((top, frame))
}

/// The text section of per-test stacks: for each of `tests` (the flagged
/// ones) that has located samples, its top stack's function and share. ""
/// when none has any.
pub fn render_test_tops(l: &Located, tests: &[&str]) -> String {
    let rows: Vec<(&str, &PhaseStacks)> = tests
        .iter()
        .filter_map(|t| l.phase(t).map(|p| (*t, p)))
        .collect();
    if rows.is_empty() {
        return String::new();
    }
    let mut out =
        String::from("memleak: where the flagged tests first touched new memory (--locate):\n");
    for (name, p) in rows.iter().take(TEXT_TESTS) {
        let Some((top, frame)) = phase_top(p) else {
            continue;
        };
        out.push_str(&format!(
            "  {}  {} in {} samples, {:.0}% at {}, {} (pid {})\n",
            printable(name),
            fmt_bytes(p.bytes() as f64),
            p.samples(),
            100.0 * top.samples as f64 / p.samples().max(1) as f64,
            printable(&frame.label()),
            printable(&top.comm),
            top.id.pid
        ));
    }
    if rows.len() > TEXT_TESTS {
        out.push_str(&format!(
            "  ... {} more (see --format json)\n",
            rows.len() - TEXT_TESTS
        ));
    }
    out
}

/// The JSON form of one stack (schema: `located` in report.schema.json).
#[derive(Serialize)]
pub struct JsonStack<'a> {
    pub pid: u32,
    pub start_ns: u64,
    pub comm: &'a str,
    pub samples: u64,
    pub estimated_bytes: u64,
    pub frames: &'a [Frame],
}

impl<'a> From<&'a LocatedStack> for JsonStack<'a> {
    fn from(s: &'a LocatedStack) -> Self {
        JsonStack {
            pid: s.id.pid,
            start_ns: s.id.start_ns,
            comm: &s.comm,
            samples: s.samples,
            estimated_bytes: s.bytes,
            frames: &s.frames,
        }
    }
}

/// The `located` object of JSON reports.
#[derive(Serialize)]
pub struct JsonLocated<'a> {
    /// Page faults per sample.
    pub period: u64,
    pub page_size: u64,
    pub lost_samples: u64,
    pub stacks: Vec<JsonStack<'a>>,
    /// Per marked phase (test): the part of `stacks` sampled while it was
    /// open. Left out when the recording has no phases.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub phases: Vec<JsonPhase<'a>>,
}

/// One phase of [`JsonLocated::phases`].
#[derive(Serialize)]
pub struct JsonPhase<'a> {
    pub name: &'a str,
    pub samples: u64,
    pub estimated_bytes: u64,
    pub stacks: Vec<JsonStack<'a>>,
}

impl<'a> From<&'a PhaseStacks> for JsonPhase<'a> {
    fn from(p: &'a PhaseStacks) -> Self {
        JsonPhase {
            name: &p.name,
            samples: p.samples(),
            estimated_bytes: p.bytes(),
            stacks: p.stacks.iter().map(JsonStack::from).collect(),
        }
    }
}

impl<'a> From<&'a Located> for JsonLocated<'a> {
    fn from(l: &'a Located) -> Self {
        JsonLocated {
            period: l.period,
            page_size: l.page_size,
            lost_samples: l.lost,
            stacks: l.stacks.iter().map(JsonStack::from).collect(),
            phases: l.phases.iter().map(JsonPhase::from).collect(),
        }
    }
}

/// `memleak locate -o FILE`: the located object on its own.
pub fn render_json(l: &Located) -> String {
    let mut s = serde_json::to_string_pretty(&JsonLocated::from(l))
        .unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}"));
    s.push('\n');
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sample::ProcId;

    fn stack(pid: u32, samples: u64, f: &str) -> LocatedStack {
        LocatedStack {
            id: ProcId { pid, start_ns: 1 },
            comm: "leaky\u{1b}".into(),
            samples,
            bytes: samples * 97 * 4096,
            frames: vec![
                Frame {
                    addr: 0x1000,
                    function: Some(f.into()),
                    location: Some("leaky.c:12".into()),
                },
                Frame {
                    addr: 0x2000,
                    function: None,
                    location: None,
                },
            ],
        }
    }

    #[test]
    fn text_lists_stacks_in_order_with_frames() {
        let mut stacks = vec![stack(7, 3, "churn"), stack(7, 30, "leak_site")];
        crate::locate::rank(&mut stacks);
        let l = Located {
            period: 97,
            page_size: 4096,
            lost: 2,
            stacks,
            phases: Vec::new(),
        };
        let text = render_text(&l);
        let leak = text.find("at leak_site (leaky.c:12)").expect("leak frame");
        let churn = text.find("at churn (leaky.c:12)").expect("churn frame");
        assert!(leak < churn, "{text}");
        assert!(text.contains("<- 0x2000"), "{text}");
        assert!(text.contains("90.9%"), "{text}");
        assert!(text.contains("2 samples could not"), "{text}");
        // Recorded names are sanitised for the terminal.
        assert!(!text.contains('\u{1b}'), "{text}");
    }

    #[test]
    fn nothing_sampled_renders_nothing() {
        assert_eq!(render_text(&Located::default()), "");
    }

    #[test]
    fn json_carries_every_frame() {
        let l = Located {
            period: 97,
            page_size: 4096,
            lost: 0,
            stacks: vec![stack(7, 2, "leak_site")],
            phases: Vec::new(),
        };
        let v: serde_json::Value = serde_json::from_str(&render_json(&l)).unwrap();
        assert!(v.get("phases").is_none(), "no phases, no key: {v}");
        assert_eq!(v["stacks"][0]["estimated_bytes"], 2 * 97 * 4096);
        assert_eq!(v["stacks"][0]["frames"][0]["function"], "leak_site");
        assert_eq!(
            v["stacks"][0]["frames"][1]["function"],
            serde_json::Value::Null
        );
    }

    #[test]
    fn flagged_tests_get_their_top_function_and_json_every_phase() {
        let mut leak = stack(7, 30, "leak_site");
        leak.frames.insert(
            0,
            Frame {
                addr: 0x3000,
                function: None,
                location: Some("libc.so.6".into()),
            },
        );
        let l = Located {
            period: 97,
            page_size: 4096,
            lost: 0,
            stacks: vec![leak.clone(), stack(7, 4, "churn")],
            phases: vec![
                PhaseStacks {
                    name: "t.py::test_leak".into(),
                    stacks: vec![leak, stack(7, 10, "churn")],
                },
                PhaseStacks {
                    name: "t.py::test_fine".into(),
                    stacks: vec![stack(7, 4, "churn")],
                },
            ],
        };
        let text = render_test_tops(&l, &["t.py::test_leak", "t.py::not_sampled"]);
        assert!(
            text.contains("t.py::test_leak")
                && text.contains("40 samples, 75% at leak_site (leaky.c:12), leaky")
                && text.contains("(pid 7)"),
            "{text}"
        );
        assert!(
            !text.contains("test_fine") && !text.contains("not_sampled"),
            "{text}"
        );
        assert_eq!(render_test_tops(&l, &["t.py::test_none"]), "");
        let v: serde_json::Value = serde_json::from_str(&render_json(&l)).unwrap();
        assert_eq!(v["phases"][0]["name"], "t.py::test_leak");
        assert_eq!(v["phases"][0]["samples"], 40);
        assert_eq!(
            v["phases"][0]["stacks"][0]["frames"][1]["function"],
            "leak_site"
        );
        assert_eq!(v["phases"][1]["estimated_bytes"], 4 * 97 * 4096);
    }
}
