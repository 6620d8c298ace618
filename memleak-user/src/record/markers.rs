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
//!
//! The writers are the monitored command, so the reader trusts nothing:
//! lines that are not UTF-8, too long or unknown are skipped (counted, and
//! reported once), an over-long line is discarded up to its newline so
//! memory stays bounded, and the reader keeps draining the FIFO until the
//! last writer closes it, so a writer never blocks on a reader that gave
//! up. The FIFO lives in a fresh directory (random name, mode 0700): no
//! other user can predict, pre-create or open it, and it disappears with
//! the recorder.

use std::collections::HashSet;
use std::fs::File;
use std::io::Read;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{channel, Receiver, Sender};
use std::sync::Arc;

use crate::locate::probe::Count;
use crate::marker_name::split_sender;
use crate::sample::boottime_ns;

/// Name of the environment variable that carries the FIFO path.
pub const ENV: &str = "MEMLEAK_MARKERS";

/// Longest marker line kept, newline excluded: PIPE_BUF, the most a single
/// `write()` delivers without interleaving with other writers.
pub const MAX_LINE: usize = 4096;

#[derive(Clone, Debug, PartialEq, Eq)]
/// One phase marker a test wrote: start or end of a named phase.
pub struct Marker {
    /// ns since boot.
    pub at_ns: u64,
    /// "begin", "end" or "mark".
    pub kind: String,
    pub name: String,
    /// With `--locate`: the cumulative page-fault sample counts read the
    /// moment this marker arrived (see [`MarkerPipe::create_with_tap`]).
    /// Set on the first marker of each read only: the markers of one read
    /// arrived together, so nothing was sampled between them.
    pub located: Option<Vec<Count>>,
}

/// Read by the reader thread as markers arrive, before it passes them on
/// (`--locate`: the sample counts, see [`crate::locate::probe::ProbeTap`]).
pub type Tap = Box<dyn FnMut() -> Vec<Count> + Send>;

/// Why a marker line was skipped.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum BadLine {
    #[error("not UTF-8")]
    NotUtf8,
    #[error("longer than {MAX_LINE} bytes")]
    TooLong,
    #[error("not `begin NAME`, `end NAME` or `mark TEXT`")]
    Unknown,
}

/// Why the markers FIFO could not be created.
#[derive(Debug, thiserror::Error)]
pub enum MarkerError {
    #[error("cannot create a private directory for the marker FIFO in {dir}: {source} (set TMPDIR to a writable directory)")]
    Dir {
        dir: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot create the marker FIFO {path}: {source}")]
    Fifo {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot start the marker reader thread: {0}")]
    Thread(#[source] std::io::Error),
}

/// Parses one marker line (without or with its line ending): `Ok(None)`
/// for a blank line, which is not worth a warning.
pub fn parse_line(line: &[u8]) -> Result<Option<(String, String)>, BadLine> {
    if line.len() > MAX_LINE + 2 {
        return Err(BadLine::TooLong);
    }
    let line = std::str::from_utf8(line).map_err(|_| BadLine::NotUtf8)?;
    let line = line.trim_end_matches(['\r', '\n']);
    if line.trim().is_empty() {
        return Ok(None);
    }
    let (kind, name) = line.split_once(' ').unwrap_or((line, ""));
    match kind {
        "begin" | "end" | "mark" if !name.trim().is_empty() => {
            Ok(Some((kind.to_string(), name.trim().to_string())))
        }
        _ => Err(BadLine::Unknown),
    }
}

/// Cuts a byte stream into lines of at most [`MAX_LINE`] bytes, whatever
/// the read boundaries. It holds at most one line: the rest of a longer
/// line is dropped up to its newline.
#[derive(Debug, Default)]
pub struct LineSplitter {
    partial: Vec<u8>,
    /// Inside a line already reported as too long.
    discarding: bool,
}

impl LineSplitter {
    /// Feeds `bytes`; calls `emit` with each complete line (newline
    /// excluded), or once with [`BadLine::TooLong`] for an over-long line
    /// as soon as it passes the limit.
    pub fn push(&mut self, mut bytes: &[u8], mut emit: impl FnMut(Result<&[u8], BadLine>)) {
        while !bytes.is_empty() {
            let newline = bytes.iter().position(|&b| b == b'\n');
            let part = &bytes[..newline.unwrap_or(bytes.len())];
            bytes = newline.map_or(&[][..], |i| &bytes[i + 1..]);
            if !self.discarding && self.partial.len() + part.len() > MAX_LINE {
                self.partial.clear();
                self.discarding = true;
                emit(Err(BadLine::TooLong));
            }
            if newline.is_none() {
                if !self.discarding {
                    self.partial.extend_from_slice(part);
                }
                break;
            }
            if self.discarding {
                self.discarding = false;
            } else if self.partial.is_empty() {
                emit(Ok(part));
            } else {
                self.partial.extend_from_slice(part);
                emit(Ok(&self.partial));
                self.partial.clear();
            }
        }
    }
}

/// The private FIFO the recorded command writes markers to.
pub struct MarkerPipe {
    path: PathBuf,
    rx: Receiver<Marker>,
    skipped: Arc<AtomicU64>,
    // Our own write end keeps the reader from seeing EOF when the last
    // writer closes; closing it lets the reader stop once the command's
    // writers are gone too.
    _keep_open: File,
    // Removed (with the FIFO) when the pipe is dropped.
    _dir: tempfile::TempDir,
}

impl MarkerPipe {
    /// Creates the FIFO (mode 0600: only the recording user's processes
    /// may mark) in a new private directory under `parent` and starts the
    /// reader thread.
    pub fn create_in(parent: &Path) -> Result<MarkerPipe, MarkerError> {
        Self::create_in_with_tap(parent, None)
    }

    /// [`MarkerPipe::create`], and `tap` is read as each batch of markers
    /// arrives (see [`Marker::located`]): in the reader thread, so the
    /// reading is as close to the marker as it gets, whatever the
    /// recorder's sampling interval.
    pub fn create_with_tap(tap: Option<Tap>) -> Result<MarkerPipe, MarkerError> {
        Self::create_in_with_tap(&std::env::temp_dir(), tap)
    }

    fn create_in_with_tap(parent: &Path, tap: Option<Tap>) -> Result<MarkerPipe, MarkerError> {
        let dir = tempfile::Builder::new()
            .prefix("memleak-markers-")
            .permissions(std::fs::Permissions::from_mode(0o700))
            .tempdir_in(parent)
            .map_err(|source| MarkerError::Dir {
                dir: parent.to_path_buf(),
                source,
            })?;
        let path = dir.path().join("markers");
        let fifo_err = |source| MarkerError::Fifo {
            path: path.clone(),
            source,
        };
        let (reader, keep_open) = open_fifo(&path).map_err(fifo_err)?;
        let (tx, rx) = channel();
        let skipped = Arc::new(AtomicU64::new(0));
        let counter = Arc::clone(&skipped);
        std::thread::Builder::new()
            .name("memleak-markers".into())
            .spawn(move || read_until_closed(reader, tx, &counter, tap))
            .map_err(MarkerError::Thread)?;
        Ok(MarkerPipe {
            path,
            rx,
            skipped,
            _keep_open: keep_open,
            _dir: dir,
        })
    }

    /// [`MarkerPipe::create_in`] the system's temporary directory.
    pub fn create() -> Result<MarkerPipe, MarkerError> {
        Self::create_in(&std::env::temp_dir())
    }

    /// Where the FIFO is (passed to the command in `MEMLEAK_MARKERS`).
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Markers received since the last call.
    pub fn drain(&self) -> Vec<Marker> {
        self.rx.try_iter().collect()
    }

    /// Lines skipped so far (not UTF-8, too long, or unknown).
    pub fn skipped(&self) -> u64 {
        self.skipped.load(Ordering::Relaxed)
    }
}

impl Drop for MarkerPipe {
    fn drop(&mut self) {
        let n = self.skipped();
        if n > 1 {
            diag!("memleak: warning: {n} phase-marker lines were ignored in all (see docs/markers.md for the format)");
        }
    }
}

/// The phases open at a point of the marker stream: which test a process
/// was running, to charge its `--locate` samples to (see
/// [`crate::locate::Charges`]).
#[derive(Debug, Default)]
pub struct OpenPhases {
    /// (sender, name), in begin order.
    open: Vec<(Option<u32>, String)>,
    /// Every process that named itself in a marker.
    senders: HashSet<u32>,
}

impl OpenPhases {
    /// Follows one marker (`begin`/`end`; `mark` is not a phase).
    pub fn apply(&mut self, kind: &str, raw: &str) {
        let (pid, name) = split_sender(raw);
        match kind {
            "begin" => {
                self.senders.extend(pid);
                self.open.push((pid, name.to_string()));
            }
            "end" => {
                if let Some(i) = self.open.iter().rposition(|(p, n)| *p == pid && n == name) {
                    self.open.remove(i);
                }
            }
            _ => {}
        }
    }

    /// The phase process `tgid` is in: the latest one it opened itself; for
    /// a process that never sent a marker (a test's subprocess), the latest
    /// unnamed phase, else the only open phase if there is just one.
    pub fn of(&self, tgid: u32) -> Option<String> {
        let latest = |pid: Option<u32>| {
            self.open
                .iter()
                .rev()
                .find(|(p, _)| *p == pid)
                .map(|(_, n)| n.clone())
        };
        if self.senders.contains(&tgid) {
            return latest(Some(tgid));
        }
        latest(None).or_else(|| match self.open.as_slice() {
            [(_, only)] => Some(only.clone()),
            _ => None,
        })
    }
}

/// Makes the FIFO at `path` (which must not exist) and opens its read end
/// (blocking) and our own write end.
fn open_fifo(path: &Path) -> std::io::Result<(File, File)> {
    let c = std::ffi::CString::new(path.as_os_str().as_encoded_bytes())
        .map_err(|_| std::io::Error::other("marker path contains NUL"))?;
    // SAFETY: mkfifo with a valid C string. It fails with EEXIST rather
    // than reuse an entry someone else made.
    if unsafe { libc::mkfifo(c.as_ptr(), 0o600) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    // Read end non-blocking first (a blocking open would wait for a
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
    Ok((reader, keep_open))
}

/// The reader thread: forwards markers until every writer has closed the
/// FIFO. It keeps reading after the recorder stops listening (a daemonised
/// child may still write), so no writer ever blocks on a full pipe.
fn read_until_closed(
    mut reader: File,
    tx: Sender<Marker>,
    skipped: &AtomicU64,
    mut tap: Option<Tap>,
) {
    let mut splitter = LineSplitter::default();
    let mut chunk = vec![0u8; 64 * 1024];
    let mut listening = true;
    loop {
        let n = match reader.read(&mut chunk) {
            Ok(0) => return,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => {
                diag!("memleak: warning: phase markers stopped: reading the FIFO failed: {e}");
                return;
            }
        };
        let at_ns = boottime_ns();
        let mut first = true;
        splitter.push(&chunk[..n], |line| match line.and_then(parse_line) {
            Ok(Some((kind, name))) => {
                let located = match (first && listening, tap.as_mut()) {
                    (true, Some(t)) => Some(t()),
                    _ => None,
                };
                first = false;
                let m = Marker {
                    at_ns,
                    kind,
                    name,
                    located,
                };
                listening = listening && tx.send(m).is_ok();
            }
            Ok(None) => {}
            Err(why) => {
                if skipped.fetch_add(1, Ordering::Relaxed) == 0 {
                    diag!("memleak: warning: ignored a phase-marker line ({why}); further bad lines are only counted");
                }
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn parses_the_three_kinds_and_rejects_the_rest() {
        let ok = |k: &str, n: &str| Ok(Some((k.to_string(), n.to_string())));
        assert_eq!(
            parse_line(b"begin tests/test_a.py::test_x\n"),
            ok("begin", "tests/test_a.py::test_x")
        );
        assert_eq!(parse_line(b"end t"), ok("end", "t"));
        assert_eq!(parse_line(b"mark warm cache\r\n"), ok("mark", "warm cache"));
        assert_eq!(parse_line(b"begin"), Err(BadLine::Unknown));
        assert_eq!(parse_line(b"start x"), Err(BadLine::Unknown));
        assert_eq!(parse_line(b"begin \xff\xfe"), Err(BadLine::NotUtf8));
        assert_eq!(parse_line(b""), Ok(None));
        assert_eq!(parse_line(b"  \n"), Ok(None));
    }

    #[test]
    fn open_phases_follow_each_sender() {
        let mut o = OpenPhases::default();
        assert_eq!(o.of(1), None);
        o.apply("begin", "pid=1 a");
        // A subprocess of the only running test belongs to it.
        assert_eq!((o.of(1), o.of(99)), (Some("a".into()), Some("a".into())));
        o.apply("begin", "pid=2 b");
        assert_eq!(o.of(2), Some("b".into()));
        assert_eq!(o.of(99), None, "two tests run: a subprocess is nobody's");
        o.apply("end", "pid=1 a");
        o.apply("mark", "x");
        // Worker 1 is between tests: its samples belong to no test.
        assert_eq!((o.of(1), o.of(2)), (None, Some("b".into())));
        o.apply("begin", "suite");
        assert_eq!(o.of(99), Some("suite".into()));
        o.apply("end", "suite");
        o.apply("end", "pid=2 b");
        assert_eq!((o.of(1), o.of(2), o.of(99)), (None, None, None));
    }

    #[test]
    fn the_tap_is_read_once_per_batch_of_markers() {
        let dir = tempfile::tempdir().unwrap();
        let reads = Arc::new(AtomicU64::new(0));
        let r = Arc::clone(&reads);
        let tap: Tap = Box::new(move || {
            let n = r.fetch_add(1, Ordering::Relaxed) + 1;
            vec![Count {
                tgid: 1,
                stack: 2,
                samples: n,
            }]
        });
        let pipe = MarkerPipe::create_in_with_tap(dir.path(), Some(tap)).unwrap();
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .open(pipe.path())
            .unwrap();
        f.write_all(b"end pid=1 a\nbegin pid=1 b\n").unwrap();
        let mut got = Vec::new();
        for _ in 0..200 {
            got.extend(pipe.drain());
            if got.len() >= 2 {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        assert_eq!(got.len(), 2, "{got:?}");
        assert!(got[0].located.is_some(), "{got:?}");
        let taps = got.iter().filter(|m| m.located.is_some()).count() as u64;
        assert_eq!(taps, reads.load(Ordering::Relaxed));
    }

    #[test]
    fn lines_written_by_other_openers_arrive_in_order_with_times() {
        let dir = tempfile::tempdir().unwrap();
        let pipe = MarkerPipe::create_in(dir.path()).unwrap();
        let path = pipe.path().to_path_buf();
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

    fn split(chunks: &[&[u8]]) -> Vec<Result<Vec<u8>, BadLine>> {
        let mut s = LineSplitter::default();
        let mut out = Vec::new();
        for c in chunks {
            s.push(c, |l| out.push(l.map(<[u8]>::to_vec)));
        }
        assert!(
            s.partial.capacity() <= 2 * MAX_LINE,
            "{}",
            s.partial.capacity()
        );
        out
    }

    #[test]
    fn lines_are_whole_across_reads_and_long_ones_are_cut_once() {
        assert_eq!(
            split(&[b"begin a\nen", b"d a\n", b"mark"]),
            vec![Ok(b"begin a".to_vec()), Ok(b"end a".to_vec())]
        );
        let long = vec![b'x'; 3 * MAX_LINE];
        let exact = vec![b'y'; MAX_LINE];
        assert_eq!(
            split(&[&long, &long, b"tail\nmark ok\n", &exact, b"\n"]),
            vec![Err(BadLine::TooLong), Ok(b"mark ok".to_vec()), Ok(exact)]
        );
    }

    #[test]
    fn the_fifo_is_private_and_gone_after_drop() {
        let parent = tempfile::tempdir().unwrap();
        let pipe = MarkerPipe::create_in(parent.path()).unwrap();
        let dir = pipe.path().parent().unwrap().to_path_buf();
        assert_ne!(dir, parent.path());
        let mode = std::fs::metadata(&dir).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o700);
        let other = MarkerPipe::create_in(parent.path()).unwrap();
        assert_ne!(other.path(), pipe.path(), "names are not reused");
        drop(pipe);
        assert!(!dir.exists());
    }

    #[test]
    fn bad_lines_are_skipped_and_counted_and_later_markers_still_arrive() {
        let dir = tempfile::tempdir().unwrap();
        let pipe = MarkerPipe::create_in(dir.path()).unwrap();
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .open(pipe.path())
            .unwrap();
        f.write_all(b"begin \xff bad\n").unwrap();
        f.write_all(&vec![b'x'; 1 << 20]).unwrap();
        f.write_all(b"\nbegin good\n").unwrap();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        let mut got = Vec::new();
        while got.is_empty() && std::time::Instant::now() < deadline {
            got.extend(pipe.drain());
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].name, "good");
        assert_eq!(pipe.skipped(), 2);
    }

    proptest::proptest! {
        // The invariants of the `markers` fuzz target (fuzz/), run by plain
        // `cargo test`; few cases, the fuzzer explores further.
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(48))]
        #[test]
        fn any_bytes_split_the_same_whatever_the_reads(
            bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..3 * MAX_LINE),
            step in 1usize..200,
            newlines in 0u8..4,
        ) {
            // From no newline at all (one over-long line) to many.
            let data: Vec<u8> = bytes
                .iter()
                .map(|&b| match b {
                    b'\n' if newlines == 0 => b'x',
                    b if b < 4 * newlines => b'\n',
                    b => b,
                })
                .collect();
            let whole = split(&[&data]);
            let chunks: Vec<&[u8]> = data.chunks(step).collect();
            proptest::prop_assert_eq!(&whole, &split(&chunks));
            for line in whole.into_iter().flatten() {
                proptest::prop_assert!(line.len() <= MAX_LINE && !line.contains(&b'\n'));
                if let Ok(Some((kind, name))) = parse_line(&line) {
                    proptest::prop_assert!(matches!(kind.as_str(), "begin" | "end" | "mark"));
                    proptest::prop_assert!(!name.is_empty() && name.trim() == name);
                }
            }
        }
    }
}
