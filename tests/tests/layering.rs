//! The library's modules form layers along the data flow: each module may
//! use only modules of lower layers, so no arrow points back up (the
//! analysis never reaches into I/O, a report never into the recorder) and
//! no two modules form a cycle. docs/architecture.md explains each layer.
//!
//! Test modules (`#[cfg(test)] mod tests` at the end of a file, and files
//! only compiled for tests) may reach further: they build recordings to
//! test with.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Layer of every top-level module of memleak-user/src; a module may use a
/// module of a strictly lower layer.
const LAYERS: &[(&str, u32)] = &[
    ("diag", 0),
    ("files", 0),
    ("marker_name", 0),
    ("sysinfo", 0),
    ("sample", 1),
    ("locate", 2),
    ("store", 3),
    ("record", 4),
    ("analyse", 4),
    ("load", 5),
    ("source", 6),
    ("report", 7),
    ("export", 7),
    ("watch", 8),
    ("cli", 9),
];

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../memleak-user/src")
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// The code of a file that ships: without its trailing test module, and
/// nothing for files compiled only for tests.
fn shipped(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap();
    if path
        .file_name()
        .is_some_and(|n| n == "tests.rs" || n == "corpus.rs")
    {
        return String::new();
    }
    match text.find("#[cfg(test)]\nmod tests") {
        Some(i) => text[..i].to_string(),
        None => text,
    }
}

/// `crate::X` paths of a text, for X a top-level module.
fn uses(text: &str) -> Vec<String> {
    let known: Vec<&str> = LAYERS.iter().map(|(m, _)| *m).collect();
    let mut out = Vec::new();
    for (i, _) in text.match_indices("crate::") {
        let rest = &text[i + "crate::".len()..];
        let name: String = rest
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        if known.contains(&name.as_str()) {
            out.push(name);
        }
    }
    out
}

#[test]
fn every_module_uses_only_lower_layers() {
    let layer: BTreeMap<&str, u32> = LAYERS.iter().copied().collect();
    let mut bad = Vec::new();
    let mut seen = 0;
    for entry in std::fs::read_dir(src()).unwrap().flatten() {
        let path = entry.path();
        let name = path.file_stem().unwrap().to_string_lossy().to_string();
        if name == "lib" || name == "main" {
            continue;
        }
        let Some(&own) = layer.get(name.as_str()) else {
            panic!("{name}: a new top-level module needs a layer in LAYERS (and in docs/architecture.md)");
        };
        seen += 1;
        let mut files = Vec::new();
        if path.is_dir() {
            rust_files(&path, &mut files);
        } else {
            files.push(path.clone());
        }
        for f in files {
            for used in uses(&shipped(&f)) {
                if used != name && layer[used.as_str()] >= own {
                    bad.push(format!(
                        "{} (layer {own}) uses crate::{used} (layer {})",
                        f.strip_prefix(src()).unwrap_or(&f).display(),
                        layer[used.as_str()]
                    ));
                }
            }
        }
    }
    assert_eq!(seen, LAYERS.len(), "every layer names a module that exists");
    bad.sort();
    bad.dedup();
    assert!(bad.is_empty(), "back edges:\n{}", bad.join("\n"));
}

/// The checker itself: a use of a higher layer is found.
#[test]
fn a_back_edge_is_detected() {
    assert_eq!(
        uses("use crate::report::table;\nlet x = crate::analyse::lbr::fit();"),
        ["report", "analyse"]
    );
    let shipped_part = "fn f() {}\n#[cfg(test)]\nmod tests {\n use crate::store::Writer;\n}\n";
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("x.rs");
    std::fs::write(&p, shipped_part).unwrap();
    assert!(
        uses(&shipped(&p)).is_empty(),
        "test modules may reach further"
    );
}
