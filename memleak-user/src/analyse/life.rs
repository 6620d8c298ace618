//! How a process's life ended, and what that means for its verdict.
//!
//! - **Exit teardown.** Interpreters free their heaps as they shut down
//!   (CPython clears modules, V8 and the JVM unmap theirs), so the last
//!   moments of a process's series often drop steeply. That drop is not
//!   evidence against a leak: the life *before* it is judged, and the
//!   finding says how much was released at exit ([`exit_teardown`]).
//! - **Finished on its own.** Under the horizon rule a projection asks
//!   "would it reach its limit if it went on?". A process that exited by
//!   itself with status 0 did not go on: it was a bounded batch (a
//!   compiler, a build step) whose memory grew with its work, so its growth
//!   is reported, not flagged; a process that kept growing until it was
//!   stopped (a signal, even one it handled and exited 0 after, as servers
//!   do on SIGTERM; the end of the recording; a failure) is judged as usual. The CI rule asks another question (was memory kept?) and
//!   ignores how the process ended.

use serde::Serialize;

use super::units::{fmt_bytes, fmt_duration};
use super::{Finding, Rule, Settings, Verdict};

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

    /// Exited by itself, successfully: a batch that finished its work.
    pub fn finished(self) -> bool {
        self == ProcessEnd::Exited(0)
    }
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

/// Applies the rule and the process's end to one finding (see the module
/// documentation); `released` is what the teardown gave back.
pub fn apply(
    f: &mut Finding,
    end: ProcessEnd,
    released: Option<f64>,
    rule: Rule,
    settings: &Settings,
) {
    if let Some(r) = released.filter(|_| f.metric.is_kept_memory()) {
        f.why.push_str(&format!(
            "; {} was released as it exited, so its life before that was judged",
            fmt_bytes(r)
        ));
    }
    let Some(fit) = f.fit else { return };
    match rule {
        Rule::Ci => {
            if !f.metric.is_kept_memory() || f.verdict != Verdict::Growing || fit.slope <= 0.0 {
                return;
            }
            let kept = fit.growth();
            let threshold = settings.min_kept(fit.fitted_start());
            if kept > threshold {
                f.verdict = Verdict::Leak;
                f.why.push_str(&format!(
                    "; it kept {} over {}, more than the {} the CI rule allows \
                     (flagged whatever the time to the limit)",
                    fmt_bytes(kept),
                    fmt_duration(fit.span_s()),
                    fmt_bytes(threshold)
                ));
            } else {
                f.why.push_str(&format!(
                    "; it kept {}, not more than the CI rule's {}",
                    fmt_bytes(kept),
                    fmt_bytes(threshold)
                ));
            }
        }
        Rule::Horizon => {
            if f.verdict == Verdict::Leak
                && end.finished()
                && f.time_to_limit_s.is_some_and(|t| t > 0.0)
            {
                f.verdict = Verdict::Growing;
                f.plot = None;
                f.why.push_str(
                    "; but it then finished on its own (exit status 0): a bounded batch \
                     whose memory grew with its work, not a leak by the horizon rule \
                     (`memleak run`'s CI rule judges the memory it kept)",
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analyse::lbr::WindowFit;
    use crate::analyse::limits::Limit;
    use crate::analyse::{Metric, Model};

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
        assert!(!ProcessEnd::Stopped(15).finished());
        assert!(ProcessEnd::Exited(0).finished());
        assert!(!ProcessEnd::Signaled(15).finished());
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
        assert!(!ProcessEnd::OomKilled.finished());
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

    fn finding(verdict: Verdict, growth: f64, ttl: Option<f64>) -> Finding {
        Finding {
            model: Model::Lbr,
            metric: Metric::Anon,
            verdict,
            fit: Some(WindowFit {
                points: 100,
                slope: growth / 10.0,
                r2: 0.99,
                fitted_end: 10e6 + growth,
                t_start: 0.0,
                t_end: 10.0,
            }),
            best_r2: 0.99,
            limit: Limit::UNKNOWN,
            last_value: 10e6 + growth,
            time_to_limit_s: ttl,
            segment: 0,
            segments: 1,
            why: String::new(),
            p_value: None,
            cycles: None,
            plot: None,
        }
    }

    #[test]
    fn ci_rule_flags_kept_memory_whatever_the_horizon() {
        let s = Settings::default();
        let mut f = finding(Verdict::Growing, 160.0 * 1048576.0, Some(9000.0));
        apply(&mut f, ProcessEnd::Exited(0), Some(150e6), Rule::Ci, &s);
        assert_eq!(f.verdict, Verdict::Leak, "{}", f.why);
        assert!(f.why.contains("released as it exited"), "{}", f.why);
        // Below the threshold: still growing, not flagged.
        let mut f = finding(Verdict::Growing, 8.0 * 1048576.0, Some(9000.0));
        apply(&mut f, ProcessEnd::Running, None, Rule::Ci, &s);
        assert_eq!(f.verdict, Verdict::Growing);
        // vm is never judged by what it "kept".
        let mut f = finding(Verdict::Growing, 1e9, None);
        f.metric = Metric::Vm;
        apply(&mut f, ProcessEnd::Running, None, Rule::Ci, &s);
        assert_eq!(f.verdict, Verdict::Growing);
    }

    #[test]
    fn horizon_rule_spares_a_finished_batch_only() {
        let s = Settings::default();
        let mut f = finding(Verdict::Leak, 700e6, Some(900.0));
        apply(&mut f, ProcessEnd::Exited(0), None, Rule::Horizon, &s);
        assert_eq!(f.verdict, Verdict::Growing);
        assert!(f.why.contains("bounded batch"), "{}", f.why);
        for end in [
            ProcessEnd::Signaled(2),
            ProcessEnd::Exited(1),
            ProcessEnd::Running,
        ] {
            let mut f = finding(Verdict::Leak, 700e6, Some(900.0));
            apply(&mut f, end, None, Rule::Horizon, &s);
            assert_eq!(f.verdict, Verdict::Leak, "{end:?}");
        }
        // Already at its limit when it exited: flagged even so.
        let mut f = finding(Verdict::Leak, 700e6, Some(0.0));
        apply(&mut f, ProcessEnd::Exited(0), None, Rule::Horizon, &s);
        assert_eq!(f.verdict, Verdict::Leak);
    }
}
