//! The located stacks of a recording (`--locate`) in the HTML report: a
//! flame graph of where new memory was first touched, as inline SVG (no
//! script), and the table of the top stacks beside it.
//!
//! The flame graph is drawn as Brendan Gregg's memory flame graphs are:
//! the root at the bottom, each caller below its callees, a frame's width
//! proportional to the estimated bytes of the stacks through it. The root
//! is every located process; the level above it is the process (`leaky
//! (pid 8227)`), then the outermost frame (`_start`, `main`) up to the
//! innermost, where the memory was touched. Frames of one parent with the
//! same function merge (unnamed ones by module: `[libc.so.6]`); siblings are
//! ordered by bytes, the widest on the left. Each frame has a `<title>`
//! (the browser's tooltip) with its full name, location, bytes and share.
//!
//! Frames narrower than [`MIN_WIDTH`] are left out with what they carry,
//! and at most [`MAX_FRAMES`] are drawn (the widest), so a recording with
//! thousands of stacks still gives a page of a few hundred KB.

use std::fmt::Write;

use super::escape_xml as esc;
use crate::analyse::units::fmt_bytes;
use crate::locate::{Frame, Located, LocatedStack};

/// Width of the graph (SVG units, pixels at 100%).
pub const W: f64 = 900.0;
const PAD: f64 = 10.0;
/// Height of one frame.
const FH: f64 = 17.0;
const TOP: f64 = 8.0;
const BOTTOM: f64 = 8.0;
/// Frames narrower than this are not drawn (nor what is above them).
pub const MIN_WIDTH: f64 = 1.0;
/// Frames drawn at most (some 250 bytes of SVG each).
pub const MAX_FRAMES: usize = 1000;
/// Stacks listed in the table (all are in the JSON report).
pub const TABLE_STACKS: usize = 10;
/// Frames of the call path shown per stack in the table.
const TABLE_FRAMES: usize = 6;
const FONT_PX: f64 = 11.0;
/// Width of a character of the monospace font at [`FONT_PX`].
const CHAR_W: f64 = FONT_PX * 0.6;

/// The warm palette, picked per function name so a function keeps its
/// colour across the graph.
pub const PALETTE: [&str; 6] = [
    "#f0703a", "#f59a3c", "#f8b84a", "#e8613c", "#fbc65b", "#f28c38",
];

/// One node of the merged call tree.
#[derive(Debug)]
struct Node {
    name: String,
    /// The location shared by every frame merged here; None when they
    /// differ or none had one.
    location: Option<String>,
    mixed_location: bool,
    bytes: u64,
    children: Vec<Node>,
}

impl Node {
    fn new(name: String, location: Option<String>) -> Self {
        Node {
            name,
            location,
            mixed_location: false,
            bytes: 0,
            children: Vec::new(),
        }
    }

    fn child(&mut self, name: String, location: Option<&str>) -> &mut Node {
        let i = match self.children.iter().position(|c| c.name == name) {
            Some(i) => {
                let c = &mut self.children[i];
                if !c.mixed_location && c.location.as_deref() != location {
                    c.mixed_location = true;
                    c.location = None;
                }
                i
            }
            None => {
                self.children
                    .push(Node::new(name, location.map(str::to_string)));
                self.children.len() - 1
            }
        };
        &mut self.children[i]
    }

    /// Widest first; by name among equals, so the graph is stable.
    fn sort(&mut self) {
        self.children
            .sort_by(|a, b| b.bytes.cmp(&a.bytes).then_with(|| a.name.cmp(&b.name)));
        for c in &mut self.children {
            c.sort();
        }
    }

    fn count(&self) -> usize {
        1 + self.children.iter().map(Node::count).sum::<usize>()
    }
}

/// What a frame is called in the graph: its function, else its module.
fn frame_name(f: &Frame) -> String {
    match (&f.function, &f.location) {
        (Some(name), _) => name.clone(),
        // A module (libc.so.6) rather than file:line: name the module.
        (None, Some(l)) => format!("[{l}]"),
        (None, None) => "[unknown]".into(),
    }
}

fn process_name(s: &LocatedStack) -> String {
    format!("{} (pid {})", s.comm, s.id.pid)
}

fn tree(stacks: &[LocatedStack]) -> Node {
    let mut root = Node::new("all processes".into(), None);
    for s in stacks {
        root.bytes = root.bytes.saturating_add(s.bytes);
        let mut node = root.child(process_name(s), None);
        node.bytes = node.bytes.saturating_add(s.bytes);
        // Innermost first in the recording: the graph grows from the
        // outermost caller up.
        for f in s.frames.iter().rev() {
            node = node.child(frame_name(f), f.location.as_deref());
            node.bytes = node.bytes.saturating_add(s.bytes);
        }
    }
    root.sort();
    root
}

/// A frame as drawn.
#[derive(Clone, Debug, PartialEq)]
pub struct Rect {
    pub x: f64,
    pub width: f64,
    /// 0 for the root.
    pub depth: usize,
    pub name: String,
    pub location: Option<String>,
    pub bytes: u64,
}

/// The laid-out graph: the frames drawn, and how many were left out.
#[derive(Debug, Default)]
pub struct Layout {
    pub rects: Vec<Rect>,
    pub omitted: usize,
    pub total_bytes: u64,
}

fn place(n: &Node, x: f64, depth: usize, scale: f64, out: &mut Layout) {
    let width = n.bytes as f64 * scale;
    if width < MIN_WIDTH {
        out.omitted += n.count();
        return;
    }
    out.rects.push(Rect {
        x,
        width,
        depth,
        name: n.name.clone(),
        location: n.location.clone(),
        bytes: n.bytes,
    });
    let mut cx = x;
    for c in &n.children {
        place(c, cx, depth + 1, scale, out);
        cx += c.bytes as f64 * scale;
    }
}

/// Lays out the flame graph of `l` over [`W`] less the margins.
pub fn layout(l: &Located) -> Layout {
    let root = tree(&l.stacks);
    let mut out = Layout {
        total_bytes: root.bytes,
        ..Layout::default()
    };
    if root.bytes == 0 {
        return out;
    }
    let scale = (W - 2.0 * PAD) / root.bytes as f64;
    place(&root, PAD, 0, scale, &mut out);
    if out.rects.len() > MAX_FRAMES {
        // The widest; a parent is never narrower than its child and is
        // nearer the root, so what is kept hangs together.
        out.rects.sort_by(|a, b| {
            b.width
                .total_cmp(&a.width)
                .then(a.depth.cmp(&b.depth))
                .then(a.x.total_cmp(&b.x))
        });
        out.omitted += out.rects.len() - MAX_FRAMES;
        out.rects.truncate(MAX_FRAMES);
        out.rects
            .sort_by(|a, b| a.depth.cmp(&b.depth).then(a.x.total_cmp(&b.x)));
    }
    out
}

/// FNV-1a: a colour per name that does not change between runs.
fn colour(name: &str) -> &'static str {
    let mut h: u32 = 0x811c_9dc5;
    for b in name.bytes() {
        h = (h ^ u32::from(b)).wrapping_mul(0x0100_0193);
    }
    PALETTE[h as usize % PALETTE.len()]
}

/// `name` cut to what fits in `width`, with ".." when cut; "" when not
/// even three characters fit.
fn fit_label(name: &str, width: f64) -> String {
    let room = ((width - 6.0) / CHAR_W).floor();
    if room < 3.0 {
        return String::new();
    }
    let room = room as usize;
    if name.chars().count() <= room {
        return name.to_string();
    }
    let mut s: String = name.chars().take(room - 2).collect();
    s.push_str("..");
    s
}

/// The flame graph as an `<svg>` element, or None when nothing was located.
pub fn render_svg(l: &Located) -> Option<String> {
    svg_of(&layout(l))
}

fn svg_of(lay: &Layout) -> Option<String> {
    if lay.rects.is_empty() {
        return None;
    }
    let depth = lay.rects.iter().map(|r| r.depth).max().unwrap_or(0);
    let h = TOP + (depth + 1) as f64 * FH + BOTTOM;
    let total = lay.total_bytes.max(1) as f64;
    let mut s = String::new();
    let _ = writeln!(
        s,
        "<svg class=\"flame\" xmlns=\"http://www.w3.org/2000/svg\" width=\"{W}\" height=\"{h}\" viewBox=\"0 0 {W} {h}\" font-family=\"monospace\" font-size=\"{FONT_PX}\" role=\"img\" aria-label=\"flame graph of new memory by call stack\">"
    );
    for r in &lay.rects {
        let y = h - BOTTOM - (r.depth + 1) as f64 * FH;
        let tip = format!(
            "{}{}: {}, {:.1}%",
            r.name,
            r.location
                .as_deref()
                .map(|l| format!(" ({l})"))
                .unwrap_or_default(),
            fmt_bytes(r.bytes as f64),
            100.0 * r.bytes as f64 / total
        );
        let _ = write!(
            s,
            "<g><title>{}</title><rect x=\"{:.2}\" y=\"{y:.1}\" width=\"{:.2}\" height=\"{:.1}\" rx=\"2\" fill=\"{}\"/>",
            esc(&tip),
            r.x,
            // A pixel of gap between neighbours of one colour.
            if r.width > 3.0 { r.width - 1.0 } else { r.width },
            FH - 1.0,
            colour(&r.name)
        );
        let label = fit_label(&r.name, r.width);
        if !label.is_empty() {
            let _ = write!(
                s,
                "<text x=\"{:.2}\" y=\"{:.1}\">{}</text>",
                r.x + 3.0,
                y + FH - 5.0,
                esc(&label)
            );
        }
        s.push_str("</g>\n");
    }
    s.push_str("</svg>\n");
    Some(s)
}

/// The HTML section: heading, what the widths mean, the flame graph and
/// the top stacks. "" when nothing was located.
pub fn render_section(l: &Located) -> String {
    let lay = layout(l);
    let Some(svg) = svg_of(&lay) else {
        return String::new();
    };
    let lay_omitted = lay.omitted;
    let total: u64 = l.stacks.iter().map(|s| s.bytes).sum();
    let mut h = String::new();
    h.push_str("<h2 id=\"located\">Where new memory was first touched</h2>\n");
    let _ = writeln!(
        h,
        "<p>Sampled with <code>--locate</code>: one page fault in {} with its user stack, each sample standing for about {} of new memory (estimated bytes = samples × period × page size), over the whole recording. Root at the bottom, callers below the functions they call; a frame's width is its share of the estimated bytes. First touch, not retention: memory freed and reused is not counted again, memory given back to the kernel and taken again is. Hover a frame for its full name.</p>",
        l.period,
        esc(&fmt_bytes((l.period * l.page_size) as f64))
    );
    let _ = writeln!(h, "<figure class=\"flame\">\n{svg}<figcaption>{} estimated in {} stacks{}{}.</figcaption></figure>",
        esc(&fmt_bytes(total as f64)),
        l.stacks.len(),
        if lay_omitted > 0 {
            format!(
                "; {lay_omitted} frame{} too narrow to draw {} left out",
                if lay_omitted == 1 { "" } else { "s" },
                if lay_omitted == 1 { "is" } else { "are" }
            )
        } else {
            String::new()
        },
        if l.lost > 0 {
            format!("; {} samples could not be attributed to a stack", l.lost)
        } else {
            String::new()
        }
    );
    h.push_str("<table class=\"stacks\">\n<tr><th>#</th><th>Estimated</th><th>Share</th><th>Samples</th><th>Process</th><th>Where (innermost first)</th></tr>\n");
    for (i, s) in l.stacks.iter().take(TABLE_STACKS).enumerate() {
        let mut path: Vec<String> = s
            .frames
            .iter()
            .take(TABLE_FRAMES)
            .map(|f| esc(&f.label()))
            .collect();
        if s.frames.len() > TABLE_FRAMES {
            path.push(format!("… {} more", s.frames.len() - TABLE_FRAMES));
        }
        let _ = writeln!(
            h,
            "<tr><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{:.1}%</td><td class=\"n\">{}</td><td>{}</td><td><code>{}</code></td></tr>",
            i + 1,
            esc(&fmt_bytes(s.bytes as f64)),
            100.0 * s.bytes as f64 / total.max(1) as f64,
            s.samples,
            esc(&process_name(s)),
            path.join("</code> ← <code>")
        );
    }
    h.push_str("</table>\n");
    if l.stacks.len() > TABLE_STACKS {
        let _ = writeln!(
            h,
            "<p>{} more stacks in the flame graph and the JSON report (<code>--format json</code>).</p>",
            l.stacks.len() - TABLE_STACKS
        );
    }
    h
}

/// The per-test part of the HTML section: for each of `tests` (the
/// flagged ones) with located samples, the function on top of its stacks.
/// "" when none has any.
pub fn render_test_tops(l: &Located, tests: &[&str]) -> String {
    let rows: Vec<_> = tests
        .iter()
        .filter_map(|t| l.phase(t))
        .filter_map(|p| super::located::phase_top(p).map(|top| (p, top)))
        .take(TABLE_STACKS)
        .collect();
    if rows.is_empty() {
        return String::new();
    }
    let mut h = String::from("<h3 id=\"located-tests\">Flagged tests: where each first touched new memory</h3>\n<table class=\"stacks\">\n<tr><th>Test</th><th>Estimated</th><th>Top stack's share</th><th>Process</th><th>Top function</th></tr>\n");
    for (p, (top, frame)) in rows {
        let _ = writeln!(
            h,
            "<tr><td><code>{}</code></td><td class=\"n\">{}</td><td class=\"n\">{:.0}%</td><td>{}</td><td><code>{}</code></td></tr>",
            esc(&p.name),
            esc(&fmt_bytes(p.bytes() as f64)),
            100.0 * top.samples as f64 / p.samples().max(1) as f64,
            esc(&process_name(top)),
            esc(&frame.label())
        );
    }
    h.push_str("</table>\n");
    h
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::sample::ProcId;

    fn frame(function: &str, location: &str) -> Frame {
        Frame {
            addr: 0x1000,
            function: Some(function.into()),
            location: Some(location.into()),
        }
    }

    /// A stack of `pid` with `samples` samples; `path` outermost first.
    pub(crate) fn stack(pid: u32, samples: u64, path: &[&str]) -> LocatedStack {
        LocatedStack {
            id: ProcId { pid, start_ns: 1 },
            comm: "leaky".into(),
            samples,
            bytes: samples * 97 * 4096,
            frames: path.iter().rev().map(|f| frame(f, "leaky.c:1")).collect(),
        }
    }

    pub(crate) fn located(stacks: Vec<LocatedStack>) -> Located {
        let mut stacks = stacks;
        crate::locate::rank(&mut stacks);
        Located {
            period: 97,
            page_size: 4096,
            lost: 0,
            stacks,
            phases: Vec::new(),
        }
    }

    fn find<'a>(lay: &'a Layout, name: &str) -> &'a Rect {
        lay.rects
            .iter()
            .find(|r| r.name == name)
            .unwrap_or_else(|| panic!("no frame {name}: {lay:?}"))
    }

    #[test]
    fn widths_are_proportional_and_children_fill_their_parent() {
        let l = located(vec![
            stack(7, 30, &["main", "run", "leak_site"]),
            stack(7, 10, &["main", "run", "churn"]),
            stack(7, 20, &["main", "init"]),
        ]);
        let lay = layout(&l);
        assert_eq!(lay.omitted, 0);
        let root = find(&lay, "all processes");
        assert_eq!(root.depth, 0);
        assert!((root.width - (W - 2.0 * PAD)).abs() < 1e-9);
        let main = find(&lay, "main");
        assert!(
            (main.width - root.width).abs() < 1e-9,
            "one caller: full width"
        );
        let (leak, churn, init) = (
            find(&lay, "leak_site"),
            find(&lay, "churn"),
            find(&lay, "init"),
        );
        assert!((leak.width / churn.width - 3.0).abs() < 1e-9);
        // run (40) and init (20) fill main; widest on the left.
        let run = find(&lay, "run");
        assert!((run.width + init.width - main.width).abs() < 1e-9);
        assert!(run.x < init.x && (run.x - main.x).abs() < 1e-9);
        assert!((leak.width + churn.width - run.width).abs() < 1e-9);
        assert_eq!(leak.depth, 4, "root, process, main, run, leak_site");
        // Callers below callees: deeper frames are drawn higher up.
        let svg = render_svg(&l).unwrap();
        let y_of = |name: &str| -> f64 {
            let at = svg.find(&format!("<title>{name} ")).unwrap();
            let y = &svg[at..];
            let y = &y[y.find("y=\"").unwrap() + 3..];
            y[..y.find('"').unwrap()].parse().unwrap()
        };
        assert!(y_of("leak_site") < y_of("run") && y_of("run") < y_of("main"));
        let tip = format!(
            "<title>leak_site (leaky.c:1): {}, 50.0%</title>",
            fmt_bytes((30 * 97 * 4096) as f64)
        );
        assert!(svg.contains(&tip), "{svg}");
    }

    #[test]
    fn hostile_names_are_escaped() {
        let mut s = stack(7, 5, &["main", "<script>alert(1)</script>&\"'"]);
        s.comm = "evil</svg><img src=x>".into();
        let l = located(vec![s]);
        let html = render_section(&l);
        assert!(
            !html.contains("<script>") && !html.contains("<img"),
            "{html}"
        );
        assert!(html.contains("&lt;script&gt;"), "{html}");
        assert!(html.contains("evil&lt;/svg&gt;"), "{html}");
        assert_eq!(html.matches("</svg>").count(), 1);
    }

    #[test]
    fn tiny_frames_are_left_out_and_frames_capped() {
        let l = located(vec![
            stack(7, 100_000, &["main", "leak_site"]),
            stack(7, 1, &["main", "rare_path"]),
        ]);
        let lay = layout(&l);
        assert!(lay.rects.iter().all(|r| r.name != "rare_path"));
        assert_eq!(lay.omitted, 1);
        assert!(!render_svg(&l).unwrap().contains("rare_path"));
        // Thousands of stacks: at most MAX_FRAMES drawn, each with its
        // parent drawn too.
        let names: Vec<String> = (0..3000).map(|i| format!("f{i}")).collect();
        let many: Vec<LocatedStack> = names
            .iter()
            .map(|n| stack(7, 3, &["main", n, "leaf"]))
            .collect();
        let lay = layout(&located(many));
        assert!(lay.rects.len() <= MAX_FRAMES);
        assert!(lay.omitted > 0);
        for r in lay.rects.iter().filter(|r| r.depth > 0) {
            assert!(
                lay.rects
                    .iter()
                    .any(|p| p.depth + 1 == r.depth && p.x <= r.x + 1e-9 && r.x < p.x + p.width),
                "{r:?} has no parent drawn"
            );
        }
    }

    #[test]
    fn labels_are_cut_to_fit() {
        assert_eq!(fit_label("leak_site", 200.0), "leak_site");
        assert_eq!(fit_label("a_very_long_function_name", 60.0), "a_very..");
        assert_eq!(fit_label("leak_site", 20.0), "");
        // By characters, not bytes.
        assert_eq!(fit_label("ééééééééééé", 60.0), "éééééé..");
    }

    #[test]
    fn nothing_located_draws_nothing() {
        assert!(render_svg(&Located::default()).is_none());
        assert_eq!(render_section(&Located::default()), "");
    }

    #[test]
    fn unnamed_frames_merge_by_module() {
        let mut s1 = stack(7, 5, &["main"]);
        let mut s2 = stack(7, 5, &["main"]);
        for (s, addr) in [(&mut s1, 0x10), (&mut s2, 0x20)] {
            s.frames.insert(
                0,
                Frame {
                    addr,
                    function: None,
                    location: Some("libc.so.6".into()),
                },
            );
        }
        let lay = layout(&located(vec![s1, s2]));
        assert_eq!(
            lay.rects.iter().filter(|r| r.name == "[libc.so.6]").count(),
            1
        );
    }
}
