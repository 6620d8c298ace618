//! How a process's life ended, and what that means for its verdict.
//!
//! - **Exit teardown.** Interpreters free their heaps as they shut down
//!   (CPython clears modules, V8 and the JVM unmap theirs), so the last
//!   moments of a process's series often drop steeply. That drop is not
//!   evidence against a leak: the life *before* it is judged, and the
//!   finding says how much was released at exit ([`exit_teardown`]).
//! - **How it ended** ([`ProcessEnd`]) decides what its growth is evidence
//!   of: see [`super::evidence`].

use serde::Serialize;

/// How a process's recorded life ended.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "kind", content = "code")]
pub enum ProcessEnd {
    /// Still running when the recording ended (or not known to have exited).
    #[default]
    Running,
    /// Exited by itself with this status (`exit(n)`).
    Exited(i32),
    /// Killed by this signal.
    Signaled(i32),
    /// Exited with status 0 after this stop request (SIGTERM, SIGINT, ...):
    /// a graceful shutdown, not a finished batch.
    Stopped(i32),
    /// Killed by the kernel's OOM killer: it died of memory, which is
    /// evidence of a leak whatever its exit status says (SIGKILL).
    OomKilled,
    /// Exited, but the sampler could not see how (procfs).
    Unknown,
}

impl ProcessEnd {
    /// From the recorded exit time, raw wait status, last stop request and
    /// whether the OOM killer chose it.
    pub fn from_exit(
        exit_ns: Option<u64>,
        status: Option<i32>,
        stop_signal: Option<i32>,
        oom_killed: bool,
    ) -> ProcessEnd {
        match (exit_ns, status) {
            (None, _) => ProcessEnd::Running,
            // Whatever the status: a victim that handled nothing still
            // dies by SIGKILL, and procfs knows no status at all.
            (Some(_), _) if oom_killed => ProcessEnd::OomKilled,
            (Some(_), None) => ProcessEnd::Unknown,
            (Some(_), Some(st)) if st & 0x7f == 0 => match ((st >> 8) & 0xff, stop_signal) {
                (0, Some(sig)) => ProcessEnd::Stopped(sig),
                (code, _) => ProcessEnd::Exited(code),
            },
            (Some(_), Some(st)) => ProcessEnd::Signaled(st & 0x7f),
        }
    }

    /// Whether the process is gone (its last samples may be a teardown).
    pub fn exited(self) -> bool {
        self != ProcessEnd::Running
    }

    /// Ended on its own: its work had an end (or, `Unknown`, nobody can
    /// say it was stopped).
    pub fn by_itself(self) -> bool {
        matches!(self, ProcessEnd::Exited(_) | ProcessEnd::Unknown)
    }

    /// Ended in failure: a non-zero exit, or a signal that is not a stop
    /// request (SIGKILL, SIGABRT, SIGSEGV, ...).
    pub fn failed(self) -> bool {
        match self {
            ProcessEnd::Exited(code) => code != 0,
            ProcessEnd::Signaled(sig) => !is_stop_request(sig),
            _ => false,
        }
    }
}

/// Signals that ask a process to stop (what `kill`, Ctrl-C, a terminal
/// hang-up and service managers send): dying of one is being stopped, not
/// failing.
fn is_stop_request(sig: i32) -> bool {
    matches!(
        sig,
        libc::SIGHUP | libc::SIGINT | libc::SIGQUIT | libc::SIGTERM
    )
}

/// The exit teardown at the end of a series: the index just past the last
/// point of the life before it, and the bytes released. `None` when the
/// series does not end with a drop of more than `min_drop` within the
/// teardown window: `max(2 s, 3 intervals)`, at most a quarter of the life
/// (a long decline is the program's doing, not its exit).
pub fn exit_teardown(t: &[f64], y: &[f64], interval_s: f64, min_drop: f64) -> Option<(usize, f64)> {
    let n = t.len().min(y.len());
    if n < 3 {
        return None;
    }
    let (first, last) = (t[0], t[n - 1]);
    let window = (2.0f64).max(3.0 * interval_s).min(0.25 * (last - first));
    let from = t[..n].partition_point(|&x| x < last - window);
    // The peak of the window; on ties the latest, so a plateau before the
    // teardown is kept whole.
    let (peak_i, peak) = (from..n).fold((n - 1, f64::NEG_INFINITY), |(bi, bv), i| {
        if y[i] >= bv {
            (i, y[i])
        } else {
            (bi, bv)
        }
    });
    let released = peak - y[n - 1];
    // A teardown starts from the top of the life: a process already
    // declining before the window is shrinking on its own.
    let before = y[..from].iter().copied().fold(f64::NEG_INFINITY, f64::max);
    (peak_i + 1 < n && released > min_drop && released.is_finite() && peak + min_drop >= before)
        .then_some((peak_i + 1, released))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wait_statuses() {
        let end = |e, st, sig| ProcessEnd::from_exit(e, st, sig, false);
        assert_eq!(end(None, Some(0), None), ProcessEnd::Running);
        assert_eq!(end(Some(1), None, None), ProcessEnd::Unknown);
        assert_eq!(end(Some(1), Some(0), None), ProcessEnd::Exited(0));
        assert_eq!(end(Some(1), Some(3 << 8), None), ProcessEnd::Exited(3));
        assert_eq!(end(Some(1), Some(2), None), ProcessEnd::Signaled(2));
        // A graceful shutdown on SIGTERM is a stop, not a finished batch.
        assert_eq!(end(Some(1), Some(0), Some(15)), ProcessEnd::Stopped(15));
        assert!(!ProcessEnd::Stopped(15).by_itself());
        assert!(ProcessEnd::Exited(0).by_itself());
        assert!(!ProcessEnd::Signaled(15).by_itself());
    }

    #[test]
    fn oom_kill_wins_over_the_wait_status() {
        let end = ProcessEnd::from_exit;
        // SIGKILL, what the OOM killer sends.
        assert_eq!(end(Some(1), Some(9), None, true), ProcessEnd::OomKilled);
        assert_eq!(end(Some(1), Some(9), None, false), ProcessEnd::Signaled(9));
        // A stop request came first, then the OOM killer.
        assert_eq!(end(Some(1), Some(9), Some(15), true), ProcessEnd::OomKilled);
        assert_eq!(end(Some(1), None, None, true), ProcessEnd::OomKilled);
        // No exit recorded: still running, whatever the flag.
        assert_eq!(end(None, None, None, true), ProcessEnd::Running);
        assert!(ProcessEnd::OomKilled.exited());
        assert!(!ProcessEnd::OomKilled.by_itself());
        assert_eq!(
            serde_json::to_string(&ProcessEnd::OomKilled).unwrap(),
            r#"{"kind":"oom_killed"}"#
        );
    }

    #[test]
    fn finds_the_teardown_drop() {
        // 10 s of growth at 0.1 s, then the heap is freed in the last 0.3 s.
        let t: Vec<f64> = (0..=103).map(|i| i as f64 * 0.1).collect();
        let mut y: Vec<f64> = t.iter().map(|x| 1e6 + x * 1e7).collect();
        for v in y.iter_mut().skip(101) {
            *v = 2e6;
        }
        let (cut, released) = exit_teardown(&t, &y, 0.1, 1e6).unwrap();
        assert_eq!(cut, 101);
        assert!((released - (1e6 + 10.0 * 1e7 - 2e6)).abs() < 1.0);
        // No drop at the end: nothing cut.
        assert_eq!(exit_teardown(&t[..100], &y[..100], 0.1, 1e6), None);
        // A slow decline over the second half is the program's, not a teardown.
        let slow: Vec<f64> = t.iter().map(|x| 1e8 - x * 1e6).collect();
        assert_eq!(exit_teardown(&t, &slow, 0.1, 1e6), None);
    }
}
