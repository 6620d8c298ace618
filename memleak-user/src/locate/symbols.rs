//! Turning sampled addresses into function names, through the live
//! process: blazesym reads /proc/PID/maps, the mapped ELF files (symbols,
//! and DWARF for file:line when present) and `/tmp/perf-PID.map`, the file
//! JIT runtimes (node --perf-basic-prof, java with perf-map-agent, Python
//! 3.12+ with -X perf) write for profilers.
//!
//! It must run while the process is alive: after exit its maps are gone
//! and the addresses mean nothing. The names are stored, not the maps.

use blazesym::symbolize::source::{Process, Source};
use blazesym::symbolize::{Input, Symbolized, Symbolizer};
use blazesym::Pid;

use super::Frame;

/// One symbolizer for the whole run: it caches each parsed ELF file, so
/// resolving many stacks of one program reads its symbols once.
pub struct Symbols {
    inner: Symbolizer,
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
        }
    }

    /// The frames of a user stack of process `pid`, innermost first. An
    /// address that cannot be named (the process is gone, a stripped
    /// library, JIT code without a perf map) keeps only its address.
    pub fn frames(&self, pid: u32, stack: &[u64]) -> Vec<Frame> {
        // Every frame but the innermost holds a return address, which points
        // after the call and may be the first byte of the next line or even
        // the next function: look up the call instruction instead.
        let lookup: Vec<u64> = stack
            .iter()
            .enumerate()
            .map(|(i, &a)| if i == 0 { a } else { a.saturating_sub(1) })
            .collect();
        let src = Source::Process(Process::new(Pid::from(pid)));
        let names: Vec<Option<(String, Option<String>)>> =
            match self.inner.symbolize(&src, Input::AbsAddr(&lookup)) {
                Ok(syms) => syms.iter().map(name).collect(),
                Err(e) => {
                    tracing::debug!(pid, "symbolising: {e}");
                    vec![None; stack.len()]
                }
            };
        stack
            .iter()
            .zip(names.into_iter().chain(std::iter::repeat(None)))
            .map(|(&addr, name)| {
                let (function, location) = name.unzip();
                Frame {
                    addr,
                    function,
                    location: location.flatten(),
                }
            })
            .collect()
    }
}

/// The function name, and where it is: `file.c:12` from DWARF, else the
/// file name of the module (`libc.so.6`); None when unknown.
fn name(s: &Symbolized<'_>) -> Option<(String, Option<String>)> {
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
        sym.module.as_ref().map(|m| {
            let m = std::path::Path::new(m);
            m.file_name()
                .unwrap_or(m.as_os_str())
                .to_string_lossy()
                .into_owned()
        })
    };
    Some((sym.name.to_string(), location))
}
