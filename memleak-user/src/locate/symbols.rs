//! Turning sampled addresses into function names, from what was captured
//! while the process lived (see [`super::maps`]): each address in a file
//! is named from that file by its offset (ELF symbols, and DWARF for
//! file:line when present), so a process that has exited since is named
//! as well as a live one. Addresses outside files (JIT code) are named
//! from `/tmp/perf-PID.map`, the file JIT runtimes (node
//! --perf-basic-prof, java with perf-map-agent, Python 3.12+ with -X
//! perf) write for profilers.

use std::collections::HashMap;
use std::sync::Arc;

use blazesym::symbolize::source::{Elf, Source};
use blazesym::symbolize::{Input, Symbolized, Symbolizer};

use super::maps::{MappedFile, PerfMap, Place};
use super::Frame;

/// One file's frames: the file, the frames' indices, their offsets.
type FileRequest = (Arc<MappedFile>, Vec<usize>, Vec<u64>);

/// One symbolizer for the whole run: it caches each parsed ELF file, so
/// resolving many stacks of one program reads its symbols once.
pub struct Symbols {
    inner: Symbolizer,
    /// Where to read each file from (checked once; None: nowhere).
    sources: std::sync::Mutex<HashMap<(u64, u64), Option<std::path::PathBuf>>>,
}

impl Default for Symbols {
    fn default() -> Self {
        Self::new()
    }
}

impl Symbols {
    pub fn new() -> Self {
        Symbols {
            inner: Symbolizer::new(),
            sources: Default::default(),
        }
    }

    fn source(&self, file: &MappedFile) -> Option<std::path::PathBuf> {
        let mut seen = self.sources.lock().unwrap_or_else(|e| e.into_inner());
        seen.entry((file.dev, file.ino))
            .or_insert_with(|| file.source())
            .clone()
    }

    /// The frames of a user stack of process `pid`, innermost first, from
    /// the addresses and where each was (`places`, same order). An address
    /// that cannot be named (a stripped library, JIT code without a perf
    /// map, a file replaced since) keeps its address and file name.
    pub fn frames(&self, pid: u32, stack: &[u64], places: &[Place]) -> Vec<Frame> {
        let mut names: Vec<Option<(String, Option<String>)>> = vec![None; stack.len()];
        // One request per file: blazesym looks the offsets up together.
        let mut by_file: HashMap<*const MappedFile, FileRequest> = HashMap::new();
        // Read once per stack, and only for a stack with JIT frames.
        let mut perf: Option<Option<PerfMap>> = None;
        for (i, place) in places.iter().enumerate().take(stack.len()) {
            // Every frame but the innermost holds a return address, which
            // points after the call and may be the first byte of the next
            // line or even the next function: look up the call instead.
            let back = u64::from(i > 0);
            match place {
                Place::File { file, offset } => {
                    let e = by_file
                        .entry(Arc::as_ptr(file))
                        .or_insert_with(|| (Arc::clone(file), Vec::new(), Vec::new()));
                    e.1.push(i);
                    e.2.push(offset.saturating_sub(back));
                }
                Place::Other => {
                    let perf = perf.get_or_insert_with(|| PerfMap::read(pid));
                    names[i] = perf
                        .as_ref()
                        .and_then(|m| m.name(stack[i].saturating_sub(back)))
                        .map(|f| (f.to_string(), Some(format!("perf-{pid}.map"))));
                }
            }
        }
        for (file, at, offsets) in by_file.into_values() {
            let module = file
                .path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned());
            let Some(source) = self.source(&file) else {
                tracing::debug!(path = %file.path.display(), "replaced since it was mapped");
                continue;
            };
            let src = Source::Elf(Elf::new(source));
            match self.inner.symbolize(&src, Input::FileOffset(&offsets)) {
                Ok(syms) => {
                    for (i, s) in at.into_iter().zip(syms.iter()) {
                        names[i] = name(s, module.as_deref());
                    }
                }
                Err(e) => tracing::debug!(path = %file.path.display(), "symbolising: {e}"),
            }
        }
        stack
            .iter()
            .zip(names)
            .zip(places.iter().map(Some).chain(std::iter::repeat(None)))
            .map(|((&addr, name), place)| {
                let (function, location) = name.unzip();
                // Unnamed: at least the file it was in.
                let module = match place {
                    Some(Place::File { file, .. }) => file
                        .path
                        .file_name()
                        .map(|n| n.to_string_lossy().into_owned()),
                    _ => None,
                };
                Frame {
                    addr,
                    function,
                    location: location.flatten().or(module),
                }
            })
            .collect()
    }
}

/// The function name, and where it is: `file.c:12` from DWARF, else the
/// file name of the module (`libc.so.6`); None when unknown.
fn name(s: &Symbolized<'_>, module: Option<&str>) -> Option<(String, Option<String>)> {
    let Symbolized::Sym(sym) = s else {
        return None;
    };
    let location = if let Some(code) = &sym.code_info {
        let file = code.file.to_string_lossy();
        Some(match code.line {
            Some(line) => format!("{file}:{line}"),
            None => file.into_owned(),
        })
    } else {
        module.map(str::to_string)
    };
    Some((sym.name.to_string(), location))
}
