//! What a leak verdict rests on, and what is reported as ambiguous.
//!
//! Memory figures show growth; they cannot show whether the memory was
//! still needed. awk building a hash, a compiler's symbol tables and a
//! leaking script look the same until the process exits: each grew, each
//! held its memory to the end. So a process is flagged only on evidence
//! that its memory would run out, or was kept when it should not have been:
//!
//! 1. **Over a stated limit** ([`Evidence::OverStatedLimit`]): its kept
//!    memory peaked above `--limit` (the production container's). Whatever
//!    the cause, it will not fit where it is deployed.
//! 2. **Died of memory**: the kernel's OOM killer killed it
//!    ([`Evidence::OomKilled`]), or it failed (a non-zero exit, or a signal
//!    that is not a stop request) while growing, holding at least half of a
//!    limit of its own ([`Evidence::DiedAtLimit`]). Half, because
//!    allocators grow their buffers geometrically (doubling), so the request
//!    that fails can be as large as everything already held: a process that
//!    died of memory held at least half its limit; one far below that
//!    failed for another reason.
//! 3. **A long-lived process that grew until it was stopped**: still
//!    running at the end, stopped by a signal (handled or not), or killed.
//!    Its growth had no end of its own; the rule of the recording judges it
//!    (the CI rule: it kept memory, [`Evidence::KeptUntilStopped`]; the
//!    horizon rule: it reaches its limit soon, [`Evidence::ReachesLimit`]).
//!
//! A process that **exited by itself** (any status: a failing test run
//! exits 1 without having leaked), whose memory grew until its exit, is
//! none of these: its work had an end, and the memory went with it. It gets
//! [`Verdict::GrewUntilExit`], shown with its peak and growth in every
//! format, and never fails a run by itself. So does a process whose end the
//! sampler could not see (procfs), since whether it was stopped is unknown.
//! Per-test verdicts, confirmed by repetition, are the evidence for the
//! code a test runner ran (see [`super::phases`]).

use serde::Serialize;

use super::lbr::WindowFit;
use super::life::ProcessEnd;
use super::limits::LimitSource;
use super::units::{fmt_bytes, fmt_duration};
use super::{Finding, Rule, Settings, Verdict};
use crate::sample::proclimits::LimitKind;

/// Why a finding is a leak.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Evidence {
    /// Kept memory peaked above the user's `--limit`.
    OverStatedLimit,
    /// Killed by the kernel's OOM killer.
    OomKilled,
    /// Failed while holding at least half of a limit of its own.
    DiedAtLimit,
    /// Grew until stopped (or the end of the recording), keeping more than
    /// the CI rule allows.
    KeptUntilStopped,
    /// Grew until stopped (or the end of the recording), and at that rate
    /// reaches its limit within the horizon.
    ReachesLimit,
}

impl Evidence {
    /// The name used in reports and the JSON schema.
    pub fn name(self) -> &'static str {
        match self {
            Evidence::OverStatedLimit => "over_stated_limit",
            Evidence::OomKilled => "oom_killed",
            Evidence::DiedAtLimit => "died_at_limit",
            Evidence::KeptUntilStopped => "kept_until_stopped",
            Evidence::ReachesLimit => "reaches_limit",
        }
    }

    /// A few words for people ("died of memory: OOM-killed").
    pub fn describe(self) -> &'static str {
        match self {
            Evidence::OverStatedLimit => "over the stated --limit",
            Evidence::OomKilled => "died of memory: OOM-killed",
            Evidence::DiedAtLimit => "died of memory: failed at its own limit",
            Evidence::KeptUntilStopped => "kept memory until stopped",
            Evidence::ReachesLimit => "reaches its limit within the horizon",
        }
    }
}

/// What is known of a process's life beyond its series.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Life {
    pub end: ProcessEnd,
    /// Bytes of kept memory it gave back as it exited.
    pub released: Option<f64>,
    /// Highest value of the finding's metric over the whole recorded life
    /// (teardown included).
    pub peak: f64,
}

/// Whether a limit is one whose crossing kills or fails the process (not
/// RAM, which the OOM killer guards, nor `memory.high`, which throttles).
fn limit_that_fails(source: LimitSource) -> bool {
    match source {
        LimitSource::Process(kind) => kind != LimitKind::CgroupHigh,
        LimitSource::CommitLimit | LimitSource::User => true,
        _ => false,
    }
}

fn flag(f: &mut Finding, evidence: Evidence, why: String) {
    f.verdict = Verdict::Leak;
    f.evidence = Some(evidence);
    f.why.push_str(&why);
}

/// Applies the evidence rules (see the module documentation) to one
/// finding, given how its process lived and ended and the recording's rule.
pub fn apply(f: &mut Finding, life: Life, rule: Rule, settings: &Settings) {
    f.peak = Some(life.peak);
    let kept_memory = f.metric.is_kept_memory();
    if let Some(r) = life.released.filter(|_| kept_memory) {
        f.why.push_str(&format!(
            "; {} was released as it exited, so its life before that was judged",
            fmt_bytes(r)
        ));
    }
    if let Some(limit) = settings
        .limit_bytes
        .filter(|&l| kept_memory && life.peak > l)
    {
        flag(
            f,
            Evidence::OverStatedLimit,
            format!(
                "; it peaked at {}, above the stated limit of {} (--limit): it would not fit there",
                fmt_bytes(life.peak),
                fmt_bytes(limit)
            ),
        );
        return;
    }
    if kept_memory && life.end == ProcessEnd::OomKilled {
        flag(
            f,
            Evidence::OomKilled,
            format!(
                "; it died of memory: the kernel's OOM killer killed it at {}",
                fmt_bytes(life.peak)
            ),
        );
        return;
    }
    let Some(fit) = f.fit else { return };
    let grew = f.verdict >= Verdict::Growing && fit.slope > 0.0;
    if grew && life.end.failed() && limit_that_fails(f.limit.source) {
        if let Some(limit) = f.limit.bytes.filter(|&l| life.peak >= 0.5 * l) {
            let how = match life.end {
                ProcessEnd::Exited(code) => format!("exited with status {code}"),
                ProcessEnd::Signaled(sig) => format!("was killed by signal {sig}"),
                _ => "failed".into(),
            };
            flag(
                f,
                Evidence::DiedAtLimit,
                format!(
                    "; it {how} holding {} of its {} ({}): it died of memory",
                    fmt_bytes(life.peak),
                    fmt_bytes(limit),
                    f.limit.source.describe()
                ),
            );
            return;
        }
    }
    // A leak the models found reaches its limit within the horizon (see
    // `judge`), under either rule.
    if f.verdict == Verdict::Leak {
        f.evidence = Some(Evidence::ReachesLimit);
    } else if rule == Rule::Ci {
        ci_rule(f, fit, settings);
    }
    if f.verdict == Verdict::Leak && life.end.by_itself() {
        f.verdict = Verdict::GrewUntilExit;
        f.evidence = None;
        let how = match life.end {
            ProcessEnd::Exited(code) => format!("exited by itself (status {code})"),
            _ => "exited, and the sampler could not see how (procfs): nothing says it was stopped"
                .into(),
        };
        f.why.push_str(&format!(
            "; that alone would make it a leak, but it {how}, so its work had an end: \
             memory that grows with a job until it finishes is not by itself a leak \
             (peak {}). Reported, not failed; mark its work units (tests) to judge \
             them, or state a limit with --limit",
            fmt_bytes(life.peak)
        ));
    }
}

/// The CI rule: sustained growth that kept more than `min_kept` is a leak
/// whatever the time to the limit (a test runs seconds on a big CI
/// machine; the code it tests runs for weeks in a small container).
fn ci_rule(f: &mut Finding, fit: WindowFit, settings: &Settings) {
    if !f.metric.is_kept_memory() || f.verdict != Verdict::Growing || fit.slope <= 0.0 {
        return;
    }
    let kept = fit.growth();
    let threshold = settings.min_kept(fit.fitted_start());
    if kept > threshold {
        flag(
            f,
            Evidence::KeptUntilStopped,
            format!(
                "; it kept {} over {}, more than the {} the CI rule allows \
                 (a leak whatever the time to the limit)",
                fmt_bytes(kept),
                fmt_duration(fit.span_s()),
                fmt_bytes(threshold)
            ),
        );
    } else {
        f.why.push_str(&format!(
            "; it kept {}, not more than the CI rule's {}",
            fmt_bytes(kept),
            fmt_bytes(threshold)
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analyse::lbr::WindowFit;
    use crate::analyse::limits::Limit;
    use crate::analyse::{Metric, Model};

    const MIB: f64 = 1048576.0;

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
            peak: None,
            time_to_limit_s: ttl,
            segment: 0,
            segments: 1,
            why: String::new(),
            p_value: None,
            cycles: None,
            evidence: None,
            plot: None,
        }
    }

    fn life(end: ProcessEnd, peak: f64) -> Life {
        Life {
            end,
            released: None,
            peak,
        }
    }

    #[test]
    fn ci_rule_flags_kept_memory_of_a_process_that_was_stopped() {
        let s = Settings::default();
        for end in [
            ProcessEnd::Running,
            ProcessEnd::Stopped(15),
            ProcessEnd::Signaled(15),
            ProcessEnd::Signaled(9),
        ] {
            let mut f = finding(Verdict::Growing, 160.0 * MIB, Some(9000.0));
            apply(&mut f, life(end, 170.0 * MIB), Rule::Ci, &s);
            assert_eq!(f.verdict, Verdict::Leak, "{end:?}: {}", f.why);
            assert_eq!(f.evidence, Some(Evidence::KeptUntilStopped));
        }
        // Below the threshold: still growing, not flagged.
        let mut f = finding(Verdict::Growing, 8.0 * MIB, Some(9000.0));
        apply(&mut f, life(ProcessEnd::Running, 20.0 * MIB), Rule::Ci, &s);
        assert_eq!(f.verdict, Verdict::Growing);
        // vm is never judged by what it "kept".
        let mut f = finding(Verdict::Growing, 1e9, None);
        f.metric = Metric::Vm;
        apply(&mut f, life(ProcessEnd::Running, 2e9), Rule::Ci, &s);
        assert_eq!(f.verdict, Verdict::Growing);
    }

    #[test]
    fn a_process_that_exited_by_itself_grew_until_exit_under_either_rule() {
        let s = Settings::default();
        for end in [
            ProcessEnd::Exited(0),
            ProcessEnd::Exited(1),
            ProcessEnd::Unknown,
        ] {
            let mut f = finding(Verdict::Growing, 160.0 * MIB, Some(9000.0));
            let mut l = life(end, 170.0 * MIB);
            l.released = Some(150e6);
            apply(&mut f, l, Rule::Ci, &s);
            assert_eq!(f.verdict, Verdict::GrewUntilExit, "{end:?}: {}", f.why);
            assert_eq!(f.evidence, None);
            assert!(f.why.contains("released as it exited"), "{}", f.why);
            assert_eq!(f.peak, Some(170.0 * MIB));
            let mut f = finding(Verdict::Leak, 700e6, Some(900.0));
            apply(&mut f, life(end, 710e6), Rule::Horizon, &s);
            assert_eq!(f.verdict, Verdict::GrewUntilExit, "{end:?}");
        }
        // Growth the old rule did not flag stays plain growth.
        let mut f = finding(Verdict::Growing, 4.0 * MIB, Some(9000.0));
        apply(
            &mut f,
            life(ProcessEnd::Exited(0), 20.0 * MIB),
            Rule::Ci,
            &s,
        );
        assert_eq!(f.verdict, Verdict::Growing);
    }

    #[test]
    fn horizon_rule_flags_what_was_stopped_or_still_runs() {
        let s = Settings::default();
        for end in [
            ProcessEnd::Signaled(2),
            ProcessEnd::Stopped(15),
            ProcessEnd::Running,
        ] {
            let mut f = finding(Verdict::Leak, 700e6, Some(900.0));
            apply(&mut f, life(end, 710e6), Rule::Horizon, &s);
            assert_eq!(f.verdict, Verdict::Leak, "{end:?}");
            assert_eq!(f.evidence, Some(Evidence::ReachesLimit));
        }
    }

    #[test]
    fn a_stated_limit_exceeded_is_a_leak_whatever_the_end_or_shape() {
        let s = Settings {
            limit_bytes: Some(512.0 * MIB),
            ..Settings::default()
        };
        let mut f = finding(Verdict::NoTrend, 0.0, None);
        f.fit = None;
        apply(
            &mut f,
            life(ProcessEnd::Exited(0), 600.0 * MIB),
            Rule::Ci,
            &s,
        );
        assert_eq!(f.verdict, Verdict::Leak, "{}", f.why);
        assert_eq!(f.evidence, Some(Evidence::OverStatedLimit));
        assert!(f.why.contains("--limit"), "{}", f.why);
        // Under it: the ordinary rules.
        let mut f = finding(Verdict::Growing, 160.0 * MIB, None);
        apply(
            &mut f,
            life(ProcessEnd::Exited(0), 500.0 * MIB),
            Rule::Ci,
            &s,
        );
        assert_eq!(f.verdict, Verdict::GrewUntilExit);
    }

    #[test]
    fn dying_near_a_limit_of_its_own_is_dying_of_memory() {
        let s = Settings::default();
        let cgroup = Limit::new(
            (256.0 * MIB) as u64,
            LimitSource::Process(LimitKind::CgroupMax),
        );
        for end in [ProcessEnd::Exited(1), ProcessEnd::Signaled(6)] {
            let mut f = finding(Verdict::Growing, 100.0 * MIB, None);
            f.limit = cgroup;
            apply(&mut f, life(end, 200.0 * MIB), Rule::Horizon, &s);
            assert_eq!(f.verdict, Verdict::Leak, "{end:?}: {}", f.why);
            assert_eq!(f.evidence, Some(Evidence::DiedAtLimit));
        }
        // Far below its limit, a failure is not of memory.
        let mut f = finding(Verdict::Growing, 100.0 * MIB, None);
        f.limit = cgroup;
        apply(
            &mut f,
            life(ProcessEnd::Exited(1), 100.0 * MIB),
            Rule::Ci,
            &s,
        );
        assert_eq!(f.verdict, Verdict::GrewUntilExit, "{}", f.why);
        // RAM is guarded by the OOM killer, not by failing allocations.
        let mut f = finding(Verdict::Growing, 100.0 * MIB, None);
        f.limit = Limit::new((256.0 * MIB) as u64, LimitSource::MemTotal);
        apply(
            &mut f,
            life(ProcessEnd::Exited(1), 200.0 * MIB),
            Rule::Ci,
            &s,
        );
        assert_eq!(f.verdict, Verdict::GrewUntilExit, "{}", f.why);
        // A clean exit near its limit did not die.
        let mut f = finding(Verdict::Growing, 100.0 * MIB, None);
        f.limit = cgroup;
        apply(
            &mut f,
            life(ProcessEnd::Exited(0), 250.0 * MIB),
            Rule::Ci,
            &s,
        );
        assert_eq!(f.verdict, Verdict::GrewUntilExit, "{}", f.why);
    }

    #[test]
    fn stop_requests_are_not_failures() {
        assert!(!ProcessEnd::Signaled(libc::SIGTERM).failed());
        assert!(ProcessEnd::Signaled(libc::SIGKILL).failed());
        assert!(ProcessEnd::Exited(2).failed());
        assert!(!ProcessEnd::Exited(0).failed());
        assert!(!ProcessEnd::Stopped(15).failed());
        assert!(ProcessEnd::Exited(0).by_itself());
        assert!(!ProcessEnd::Stopped(15).by_itself());
    }
}
