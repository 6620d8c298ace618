//! Arbitrary bytes on the marker FIFO: splitting into lines never panics,
//! never yields a line over `MAX_LINE` or one holding a newline, does not
//! depend on how the bytes were cut into reads, and every accepted marker
//! is a known kind with a non-empty, trimmed, single-line name.
#![no_main]

use libfuzzer_sys::fuzz_target;
use memleak::record::markers::{parse_line, BadLine, LineSplitter, MAX_LINE};

fn lines<'a>(chunks: impl Iterator<Item = &'a [u8]>) -> Vec<Result<Vec<u8>, BadLine>> {
    let mut splitter = LineSplitter::default();
    let mut out = Vec::new();
    for c in chunks {
        splitter.push(c, |l| out.push(l.map(<[u8]>::to_vec)));
    }
    out
}

fuzz_target!(|data: &[u8]| {
    // The first byte picks the read size, so lines straddle reads.
    let Some((&step, data)) = data.split_first() else {
        return;
    };
    let whole = lines(std::iter::once(data));
    let cut = lines(data.chunks(usize::from(step) % 97 + 1));
    assert_eq!(whole, cut, "lines depend on read boundaries");
    for line in whole.into_iter().flatten() {
        assert!(line.len() <= MAX_LINE);
        assert!(!line.contains(&b'\n'));
        if let Ok(Some((kind, name))) = parse_line(&line) {
            assert!(matches!(kind.as_str(), "begin" | "end" | "mark"));
            assert!(!name.is_empty() && name.trim() == name);
            assert!(!name.contains('\n'));
        }
    }
});
