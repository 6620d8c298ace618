//! Phase markers from the monitored command: "test X started / ended".
//!
//! The recorder creates a FIFO and exports its path to the command as
//! `MEMLEAK_MARKERS`. Any harness, in any language, marks a phase by
//! writing one line to it:
//!
//! ```text
//! begin <name>      a phase (e.g. a test) starts
//! end <name>        it ends
//! mark <text>       a point event
//! begin pid=N <name> / end pid=N <name>
//!                   the same, run by process N (parallel workers such as
//!                   pytest-xdist): its kept memory is measured on N only
//! ```
//!
//! The recorder stores the line's name as written (`pid=N` included); the
//! analysis (`analyse::phases`) reads the pid back, so recordings stay
//! readable by older versions.
//!
//! Lines up to PIPE_BUF (4096 bytes) are written atomically even with many
//! writers. A reader thread timestamps each line as it arrives, so markers
//! are exact to the millisecond whatever the sampling interval.

use std::fs::File;
use std::io::{BufRead, BufReader};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{channel, Receiver};

use crate::sample::boottime_ns;

/// Name of the environment variable that carries the FIFO path.
pub const ENV: &str = "MEMLEAK_MARKERS";

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Marker {
    /// ns since boot.
    pub at_ns: u64,
    /// "begin", "end" or "mark".
    pub kind: String,
    pub name: String,
}

/// Parses one marker line; `None` for blank or malformed lines.
pub fn parse_line(line: &str) -> Option<(String, String)> {
    let line = line.trim_end_matches(['\r', '\n']);
    let (kind, name) = line.split_once(' ').unwrap_or((line, ""));
    match kind {
        "begin" | "end" | "mark" if !name.trim().is_empty() => {
            Some((kind.to_string(), name.trim().to_string()))
        }
        _ => None,
    }
}

pub struct MarkerPipe {
    path: PathBuf,
    rx: Receiver<Marker>,
    // Our own write end keeps the reader from seeing EOF when the last
    // writer closes; closing it stops the reader thread.
    _keep_open: File,
}

impl MarkerPipe {
    /// Creates the FIFO at `path` (mode 0600: only the recording user's
    /// processes may mark) and starts the reader thread.
    pub fn create(path: &Path) -> std::io::Result<MarkerPipe> {
        let c = std::ffi::CString::new(path.as_os_str().as_encoded_bytes())
            .map_err(|_| std::io::Error::other("marker path contains NUL"))?;
        // SAFETY: mkfifo with a valid C string.
        if unsafe { libc::mkfifo(c.as_ptr(), 0o600) } != 0 {
            return Err(std::io::Error::last_os_error());
        }
        // Open read end non-blocking first (a blocking open would wait for a
        // writer), then our write end, then make reads blocking.
        let reader = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NONBLOCK)
            .open(path)?;
        let keep_open = std::fs::OpenOptions::new().write(true).open(path)?;
        use std::os::fd::AsRawFd;
        // SAFETY: clearing O_NONBLOCK on our own fd.
        unsafe {
            let fd = reader.as_raw_fd();
            let flags = libc::fcntl(fd, libc::F_GETFL);
            libc::fcntl(fd, libc::F_SETFL, flags & !libc::O_NONBLOCK);
        }
        let (tx, rx) = channel();
        std::thread::Builder::new()
            .name("memleak-markers".into())
            .spawn(move || {
                let mut r = BufReader::new(reader);
                let mut line = String::new();
                loop {
                    line.clear();
                    match r.read_line(&mut line) {
                        Ok(0) | Err(_) => break,
                        Ok(_) => {
                            if let Some((kind, name)) = parse_line(&line) {
                                let m = Marker {
                                    at_ns: boottime_ns(),
                                    kind,
                                    name,
                                };
                                if tx.send(m).is_err() {
                                    break;
                                }
                            }
                        }
                    }
                }
            })?;
        Ok(MarkerPipe {
            path: path.to_path_buf(),
            rx,
            _keep_open: keep_open,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Markers received since the last call.
    pub fn drain(&self) -> Vec<Marker> {
        self.rx.try_iter().collect()
    }
}

impl Drop for MarkerPipe {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn parses_the_three_kinds_and_rejects_the_rest() {
        assert_eq!(
            parse_line("begin tests/test_a.py::test_x\n"),
            Some(("begin".into(), "tests/test_a.py::test_x".into()))
        );
        assert_eq!(parse_line("end t"), Some(("end".into(), "t".into())));
        assert_eq!(
            parse_line("mark warm cache"),
            Some(("mark".into(), "warm cache".into()))
        );
        assert_eq!(parse_line("begin"), None);
        assert_eq!(parse_line("start x"), None);
        assert_eq!(parse_line(""), None);
    }

    #[test]
    fn lines_written_by_other_openers_arrive_in_order_with_times() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("markers");
        let pipe = MarkerPipe::create(&path).unwrap();
        for line in ["begin a", "garbage", "end a", "mark done"] {
            let mut f = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
            writeln!(f, "{line}").unwrap();
        }
        let mut got = Vec::new();
        for _ in 0..100 {
            got.extend(pipe.drain());
            if got.len() >= 3 {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        let kinds: Vec<_> = got
            .iter()
            .map(|m| (m.kind.as_str(), m.name.as_str()))
            .collect();
        assert_eq!(kinds, vec![("begin", "a"), ("end", "a"), ("mark", "done")]);
        assert!(got.windows(2).all(|w| w[0].at_ns <= w[1].at_ns));
    }
}
