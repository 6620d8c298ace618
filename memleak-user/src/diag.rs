//! Diagnostics on stderr that can never stop a recording, and the
//! sanitiser for text that comes from a recording or a server.
//!
//! `eprintln!` panics when stderr is closed or full (`2>/dev/full`, a log
//! pipe whose reader died): the recorder would exit 101 and lose the
//! report and the command's exit code. A diagnostic nobody can read is
//! not worth a recording, so write errors are dropped.

/// `eprintln!` that ignores write errors.
#[macro_export]
macro_rules! diag {
    ($($arg:tt)*) => {{
        use ::std::io::Write as _;
        let _ = ::std::writeln!(::std::io::stderr(), $($arg)*);
    }};
}

/// Replaces control characters (terminal escape sequences, newlines) with
/// U+FFFD so recorded names cannot move the cursor or forge log lines:
/// the one sanitiser every text renderer and error message uses.
pub fn printable(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_control() { '\u{fffd}' } else { c })
        .collect()
}

#[cfg(test)]
mod tests {
    #[test]
    fn formats_like_eprintln() {
        let n = 3;
        crate::diag!("memleak: {n} {}", "diagnostics");
        crate::diag!();
    }
}
