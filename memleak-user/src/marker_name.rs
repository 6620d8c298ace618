//! The `pid=N NAME` convention of phase marker names: a harness that runs
//! tests in several processes prefixes each marker with the sending
//! process, so phases of different processes can be open at once. The
//! recorder reads it to charge `--locate` samples to the sender's phase,
//! and the analysis to judge each test in its own process; both take the
//! rule from here.

/// Splits the optional `pid=N ` prefix off a marker name. A name that
/// merely looks like `pid=x` (no digits, nothing after) stays a name, so
/// recordings made before the prefix existed read the same.
pub fn split_sender(name: &str) -> (Option<u32>, &str) {
    let Some(rest) = name.strip_prefix("pid=") else {
        return (None, name);
    };
    let Some((num, tail)) = rest.split_once(char::is_whitespace) else {
        return (None, name);
    };
    match num.parse::<u32>() {
        Ok(pid) if !tail.trim().is_empty() => (Some(pid), tail.trim()),
        _ => (None, name),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn senders_split_off_only_a_real_prefix() {
        assert_eq!(split_sender("pid=42 t.py::x"), (Some(42), "t.py::x"));
        assert_eq!(split_sender("pid=42  a b "), (Some(42), "a b"));
        assert_eq!(split_sender("t.py::x"), (None, "t.py::x"));
        assert_eq!(split_sender("pid=42"), (None, "pid=42"));
        assert_eq!(split_sender("pid=x y"), (None, "pid=x y"));
        assert_eq!(split_sender("pid= t"), (None, "pid= t"));
    }
}
