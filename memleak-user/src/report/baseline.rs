//! `memleak compare` and `memleak diff` as text: one line per process name.

use std::fmt::Write as _;

use crate::analyse::baseline::Comparison;
use crate::analyse::units::{fmt_bytes, fmt_rate};

fn fmt_fig(figure: &str, v: f64) -> String {
    if figure == "slope" {
        fmt_rate(v)
    } else {
        fmt_bytes(v)
    }
}

/// "python3: peak 120 MiB vs 118 MiB ± 3 MiB — unchanged", one line per
/// name, then a summary line.
pub fn render(cmp: &[Comparison], against: &str) -> String {
    let mut out = String::new();
    let name_of = |c: &Comparison| match c {
        Comparison::Compared { name, .. }
        | Comparison::New { name, .. }
        | Comparison::Gone { name } => super::printable(name),
    };
    for c in cmp {
        let name = name_of(c);
        match c {
            Comparison::Compared { figures, .. } => {
                let parts: Vec<String> = figures
                    .iter()
                    .map(|f| {
                        let mut s = format!(
                            "{} {} vs {} ± {}",
                            f.figure,
                            fmt_fig(f.figure, f.value),
                            fmt_fig(f.figure, f.baseline.mean),
                            fmt_fig(f.figure, f.baseline.sd),
                        );
                        if f.changed {
                            s.push_str(if f.value > f.baseline.mean {
                                " (HIGHER)"
                            } else {
                                " (lower)"
                            });
                        }
                        s
                    })
                    .collect();
                let verdict = if c.changed() { "CHANGED" } else { "unchanged" };
                let _ = writeln!(out, "{name}: {} — {verdict}", parts.join(", "));
            }
            Comparison::New { figures, .. } => {
                let _ = writeln!(
                    out,
                    "{name}: new (not in {against}): slope {}, peak {}, final {}",
                    fmt_rate(figures.slope),
                    fmt_bytes(figures.peak),
                    fmt_bytes(figures.final_)
                );
            }
            Comparison::Gone { .. } => {
                let _ = writeln!(out, "{name}: in {against} but not in this run");
            }
        }
    }
    let changed = cmp.iter().filter(|c| c.changed()).count();
    let compared = cmp
        .iter()
        .filter(|c| matches!(c, Comparison::Compared { .. }))
        .count();
    let _ = writeln!(
        out,
        "memleak: {changed} of {compared} process names changed memory behaviour beyond the usual spread"
    );
    out
}
