//! Phase attribution: which marked phases (tests) ran while a flagged
//! process's memory grew, and how much it grew during each.
//!
//! Phases come from the recording's `markers` table (the `MEMLEAK_MARKERS`
//! protocol: `begin NAME` / `end NAME`; see docs/markers.md). A `begin`
//! without its `end` lasts to the end of the recording. For every process
//! whose most urgent finding is a leak or growing, the growth window is that
//! finding's fitted window; each phase overlapping it gets the growth of the
//! process's (held, densified) series between the overlap's start and end.
//!
//! That attribution is by time. Separately, [`test_verdicts`] says what
//! each phase *kept*: the anonymous memory of the process that ran it at the
//! phase's end minus at its start. A leaking test keeps what it leaked
//! whenever it runs (first, last, under pytest-xdist), while a time-based
//! fit only sees processes that grew like a leak over the whole recording,
//! and misses those that free their heap before they exit.
//!
//! A marker line may name the process that sent it (`begin pid=N NAME`):
//! the phase is then measured on that process. Without a pid, every process
//! alive across the phase is measured and the one that kept the most wins.

use std::collections::HashMap;

use serde::Serialize;

use super::Metric;
use crate::marker_name::split_sender;
use crate::sample::Mem;

/// A `begin`..`end` interval, seconds since the recording's start.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Phase {
    pub name: String,
    /// The process that sent the markers (`pid=N`), when it said.
    pub pid: Option<u32>,
    pub start_s: f64,
    /// `None`: never ended (the harness died, or the recording stopped first).
    pub end_s: Option<f64>,
    /// The harness said this run failed (`mark inconclusive NAME` after
    /// its end): what it kept confirms nothing.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub inconclusive: bool,
    /// The harness measured this run keeping less than the floor (`mark
    /// cleared NAME` after its end).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub cleared: bool,
}

/// The `mark` text that makes the run of NAME just ended inconclusive
/// (`mark inconclusive pid=N NAME`): pytest-memleak sends it when a rerun
/// failed, errored or skipped.
pub const INCONCLUSIVE_MARK: &str = "inconclusive ";

/// The `mark` text by which the harness says the run of NAME just ended
/// kept less than the floor (`mark cleared pid=N NAME`). It measures in
/// the process at the run's exact end, after a garbage collection; the
/// recording has the figure of the sampler's nearest tick, coarser in time
/// and in the pages it counts. Near the floor the two can disagree, and
/// then the finer measurement decides: a leak keeps memory on every run,
/// so one run the harness saw below the floor clears the test.
pub const CLEARED_MARK: &str = "cleared ";

/// How much one phase saw a process grow.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct PhaseGrowth {
    pub name: String,
    pub start_s: f64,
    pub end_s: Option<f64>,
    /// Seconds of the phase inside the growth window.
    pub overlap_s: f64,
    /// Change of the metric across that overlap (bytes; negative: shrank).
    pub growth_bytes: f64,
}

/// Phase attribution of one flagged (leak or growing) process.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ProcessPhases {
    pub pid: u32,
    pub start_ns: u64,
    pub comm: String,
    pub metric: Metric,
    /// The growth window (the chosen fit), seconds since the recording's start.
    pub window_start_s: f64,
    pub window_end_s: f64,
    /// Overlapping phases, the largest growth first.
    pub phases: Vec<PhaseGrowth>,
}

/// Pairs `begin`/`end` markers by name and sender pid (nested and repeated
/// names are fine: an `end` closes the latest open phase of that name from
/// the same sender). `mark` events are not phases; `mark inconclusive
/// [pid=N ]NAME` flags the latest ended phase of NAME from that sender.
pub fn phases_from_markers(markers: &[(f64, String, String)]) -> Vec<Phase> {
    let mut out: Vec<Phase> = Vec::new();
    for (t, kind, raw) in markers {
        let (pid, name) = split_sender(raw);
        match kind.as_str() {
            "begin" => out.push(Phase {
                name: name.to_string(),
                pid,
                start_s: *t,
                end_s: None,
                inconclusive: false,
                cleared: false,
            }),
            "mark" => {
                let (rest, cleared) = match raw.strip_prefix(INCONCLUSIVE_MARK) {
                    Some(rest) => (rest, false),
                    None => match raw.strip_prefix(CLEARED_MARK) {
                        Some(rest) => (rest, true),
                        None => continue,
                    },
                };
                let (pid, name) = split_sender(rest);
                if let Some(p) = out
                    .iter_mut()
                    .rev()
                    .find(|p| p.end_s.is_some() && p.pid == pid && p.name == name)
                {
                    if cleared {
                        p.cleared = true;
                    } else {
                        p.inconclusive = true;
                    }
                }
            }
            "end" => {
                if let Some(p) = out
                    .iter_mut()
                    .rev()
                    .find(|p| p.end_s.is_none() && p.pid == pid && p.name == name)
                {
                    p.end_s = Some(*t);
                }
            }
            _ => {}
        }
    }
    out
}

/// Value of a held (step) series at `at`: the last point at or before it
/// (the first point before the series starts).
fn value_at(t: &[f64], y: &[f64], at: f64) -> Option<f64> {
    if t.is_empty() {
        return None;
    }
    let i = t.partition_point(|&x| x <= at);
    Some(y[i.saturating_sub(1)])
}

/// Growth of `(t, y)` during each phase overlapping `[w0, w1]`, the
/// largest growth first. Phases without overlap are left out.
pub fn attribute(t: &[f64], y: &[f64], w0: f64, w1: f64, phases: &[Phase]) -> Vec<PhaseGrowth> {
    let mut out: Vec<PhaseGrowth> = phases
        .iter()
        .filter_map(|p| {
            let a = p.start_s.max(w0);
            let b = p.end_s.unwrap_or(f64::INFINITY).min(w1);
            if b <= a {
                return None;
            }
            let growth = value_at(t, y, b)? - value_at(t, y, a)?;
            Some(PhaseGrowth {
                name: p.name.clone(),
                start_s: p.start_s,
                end_s: p.end_s,
                overlap_s: b - a,
                growth_bytes: growth,
            })
        })
        .collect();
    out.sort_by(|a, b| b.growth_bytes.total_cmp(&a.growth_bytes));
    out
}

/// Memory a process holds for itself: anonymous resident, shared-anonymous
/// (shmem) and swapped-out pages. Not the virtual size (thread stacks and
/// reserved arenas inflate it without using memory) and not file-backed
/// resident pages (the page cache can drop them; mapping a library is not
/// a leak).
pub fn anon_bytes(m: &Mem) -> u64 {
    m.rss_anon
        .saturating_add(m.rss_shmem)
        .saturating_add(m.swap)
}

/// One process's anonymous memory on the sampler's ticks (held values, as
/// [`crate::store::ProcessSeries`]), read by the caller from the recording.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct AnonSeries {
    pub pid: u32,
    pub start_ns: u64,
    pub comm: String,
    /// Seconds since the recording's start, ascending.
    pub t: Vec<f64>,
    /// [`anon_bytes`] at each point.
    pub anon: Vec<u64>,
    /// When the process exited (seconds since the recording's start).
    pub exit_s: Option<f64>,
}

impl AnonSeries {
    /// The settled value at instant `x`: the held value (last point at or
    /// before `x`), or the lowest point of the next sampler tick when that
    /// is lower. A harness frees garbage right before its marker; the tick
    /// before it (up to one interval stale) may still hold the test's
    /// transient peak, which would charge a test that only churned with
    /// memory it gave back. Memory only grows again after the marker when
    /// the next test allocates, so the lower neighbour is the closer bound.
    ///
    /// "The next tick" is the points up to `lookahead` seconds after `x`: a
    /// tick's figures are stored a little after the tick itself (the tick
    /// and its sample are two points), and a busy machine delays ticks.
    /// Points within an `interval` of the process's exit are not used: an
    /// exiting interpreter frees its heap, which is not the test settling.
    /// `None` before the first point.
    fn settled_at(&self, x: f64, lookahead: f64, interval: f64) -> Option<u64> {
        let i = self.t.partition_point(|&t| t <= x);
        let held = self.anon[..i].last().copied()?;
        let usable = |t: f64| t <= x + lookahead && self.exit_s.is_none_or(|e| t < e - interval);
        let next = self.t[i..]
            .iter()
            .zip(&self.anon[i..])
            .take_while(|(&t, _)| usable(t))
            .map(|(_, &v)| v)
            .min();
        Some(next.map_or(held, |n| held.min(n)))
    }

    /// Anon at `a` and what was kept from `a` to `b`; `last`: no later
    /// phase of the same sender began (see [`LOOKAHEAD_LAST`]).
    fn kept(&self, a: f64, b: f64, last: bool, interval: f64) -> Option<(f64, f64)> {
        let start = self.settled_at(a, LOOKAHEAD * interval, interval)? as f64;
        let ahead = if last { LOOKAHEAD_LAST } else { LOOKAHEAD };
        let end = self.settled_at(b, ahead * interval, interval)? as f64;
        Some((start, end - start))
    }

    /// Whether the process was measured at `a` and still alive at `b`.
    fn alive_across(&self, a: f64, b: f64) -> bool {
        self.t.first().is_some_and(|&t0| t0 <= a) && self.exit_s.is_none_or(|e| e >= b)
    }
}

/// How far past a marker (in sampling intervals) the next tick is looked
/// for: one interval, plus as much again for a tick delayed on a busy
/// machine.
const LOOKAHEAD: f64 = 2.0;

/// The same after a sender's last phase: no next test follows, so nothing
/// but the harness's own wind-down runs until it exits, and a harness holds
/// still for a few intervals before exiting (pytest-memleak: 5) so the
/// recorder sees it settled; ticks within an interval of the exit are not
/// used anyway.
const LOOKAHEAD_LAST: f64 = 5.0;

/// Default of [`super::Settings::test_floor_bytes`]: what a run of a test
/// must keep, every time it is repeated, to be a leak. pytest-memleak's
/// `_KEPT_FLOOR` mirrors it.
///
/// Half the smallest leak worth naming (1 MiB per run): a test keeping
/// 1 MiB per run clears it twice over, so it is named even when part of
/// each MiB lands in pages already resident or a sampling tick falls
/// early in a run. Above the allocators' granularity: a test that keeps
/// nothing still moves anonymous memory by what the harness keeps per
/// test (pytest's reports, captured output: a few KiB to tens of KiB), by
/// pages (4 KiB), obmalloc pools (16 KiB), glibc's 128 KiB heap-top steps,
/// and by obmalloc arenas: since CPython 3.10 an arena is 1 MiB and goes
/// back only when wholly free, so a test that makes and drops many objects
/// can leave a few hundred KiB of pools behind in partly used arenas on
/// each run (attrs' class-making tests keep about 256 KiB per run this
/// way). One run above it proves nothing (a cache or an import warmed
/// once); the repetitions decide.
pub const TEST_FLOOR_BYTES: f64 = 512.0 * 1024.0;

/// When a test's kept memory is flagged.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct KeptThreshold {
    /// A limit stated by hand (`--test-kept`): one run keeping this much
    /// is flagged. `None`: only the confirmation rule.
    pub fixed: Option<f64>,
    /// Confirmation rule: a test run more than once is flagged when every
    /// run after the first kept at least this much (`--test-floor`).
    pub floor_bytes: f64,
}

impl KeptThreshold {
    /// The thresholds `settings` define.
    pub fn from_settings(settings: &super::Settings) -> KeptThreshold {
        KeptThreshold {
            fixed: settings.test_kept_bytes,
            floor_bytes: settings.test_floor_bytes,
        }
    }

    /// The threshold reported with a verdict: the stated limit, else the
    /// floor.
    pub fn bytes(&self) -> f64 {
        self.fixed.unwrap_or(self.floor_bytes)
    }
}

/// One measured run of a test (a phase occurrence).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct TestRun {
    pub pid: u32,
    pub start_ns: u64,
    pub comm: String,
    pub start_s: f64,
    pub end_s: f64,
    /// Anon memory of the process when the run started.
    pub anon_start_bytes: f64,
    /// Anon at the end minus at the start (negative: it freed memory).
    pub kept_bytes: f64,
    /// `true` when the marker named the process (`pid=N`); `false` when the
    /// process that kept the most of those alive was taken.
    pub by_pid: bool,
}

/// What a test (every run of one phase name) kept, and whether that is
/// flagged.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct TestVerdict {
    pub name: String,
    /// Kept bytes summed over the runs (`pytest --count`, reruns).
    pub kept_bytes: f64,
    /// The stated limit (`--test-kept`), else the floor.
    pub threshold_bytes: f64,
    /// What every rerun must keep to confirm a leak (`--test-floor`).
    pub floor_bytes: f64,
    /// Runs after the first (the harness's reruns, `pytest --count`).
    pub reruns: usize,
    /// Every rerun kept at least the floor (false without reruns): memory
    /// kept on every repetition, not a cache or an import warmed once.
    pub confirmed: bool,
    /// A run failed, errored or skipped (the harness said so): the reruns
    /// confirm nothing.
    pub inconclusive: bool,
    /// The harness measured a run keeping less than the floor
    /// ([`CLEARED_MARK`]): not a leak, whatever the recording's figures.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub cleared: bool,
    /// Confirmed, or one run kept at least the stated limit. A test run
    /// once that kept at least the floor is not: it is unconfirmed (see
    /// [`TestVerdict::unconfirmed`]).
    pub flagged: bool,
    /// Every measured run, in time order.
    pub runs: Vec<TestRun>,
}

impl TestVerdict {
    /// Run once, kept at least the floor, not flagged: it may leak or may
    /// have warmed a cache; only reruns could tell.
    pub fn unconfirmed(&self) -> bool {
        !self.flagged && self.reruns == 0 && self.kept_bytes >= self.floor_bytes
    }
}

/// Kept anonymous memory per test: the settled anon at each phase's end
/// minus at its start (see [`AnonSeries`]; `interval_s` is the sampling
/// interval). Phases that never ended, or that no recorded process lived
/// across, are left out (nothing to measure). Flagged tests first, then
/// the most kept first.
///
/// A leak keeps memory every time its test runs; a test that fills a
/// cache or imports a module keeps memory on its first run only. So a test
/// is flagged when it ran at least twice (pytest-memleak reruns a test
/// that kept at least the floor) and every run after the first kept at
/// least the floor, or when one run kept at least a stated `--test-kept`.
pub fn test_verdicts(
    phases: &[Phase],
    procs: &[AnonSeries],
    interval_s: f64,
    threshold: KeptThreshold,
) -> Vec<TestVerdict> {
    let mut out: Vec<TestVerdict> = Vec::new();
    // Index by name: suites have tens of thousands of tests.
    let mut index: HashMap<&str, usize> = HashMap::new();
    // Latest begin per sender (unnamed senders count as one).
    let mut last_begin: HashMap<Option<u32>, f64> = HashMap::new();
    for p in phases {
        let t = last_begin.entry(p.pid).or_insert(p.start_s);
        *t = t.max(p.start_s);
    }
    for p in phases {
        let Some(end) = p.end_s else { continue };
        let (a, b) = (p.start_s, end);
        let last = last_begin.get(&p.pid).is_none_or(|&t| t <= a);
        let measure =
            |s| AnonSeries::kept(s, a, b, last, interval_s).map(|(start, kept)| (s, start, kept));
        let alive = || procs.iter().filter(|s| s.alive_across(a, b));
        // The sender when it said who it is; when that pid is not in the
        // recording (another pid namespace), fall back as if it had not.
        let by_pid = p
            .pid
            .and_then(|pid| alive().filter(|s| s.pid == pid).find_map(measure));
        let chosen = by_pid.or_else(|| {
            alive()
                .filter_map(measure)
                .max_by(|x, y| x.2.total_cmp(&y.2))
        });
        let Some((s, anon_start, kept)) = chosen else {
            continue;
        };
        let (inconclusive, cleared) = (p.inconclusive, p.cleared);
        let run = TestRun {
            pid: s.pid,
            start_ns: s.start_ns,
            comm: s.comm.clone(),
            start_s: a,
            end_s: b,
            anon_start_bytes: anon_start,
            kept_bytes: kept,
            by_pid: by_pid.is_some(),
        };
        match index.get(p.name.as_str()) {
            Some(&i) => {
                out[i].kept_bytes += kept;
                out[i].inconclusive |= inconclusive;
                out[i].cleared |= cleared;
                out[i].runs.push(run);
            }
            None => {
                index.insert(&p.name, out.len());
                out.push(TestVerdict {
                    name: p.name.clone(),
                    kept_bytes: kept,
                    threshold_bytes: threshold.bytes(),
                    floor_bytes: threshold.floor_bytes,
                    reruns: 0,
                    confirmed: false,
                    inconclusive,
                    cleared,
                    flagged: false,
                    runs: vec![run],
                })
            }
        }
    }
    for v in &mut out {
        let repeats = &v.runs[1..];
        v.reruns = repeats.len();
        v.confirmed = !v.inconclusive
            && !v.cleared
            && !repeats.is_empty()
            && repeats
                .iter()
                .all(|r| r.kept_bytes >= threshold.floor_bytes);
        let over_stated = threshold
            .fixed
            .is_some_and(|limit| v.runs.iter().any(|r| r.kept_bytes >= limit));
        v.flagged = v.confirmed || over_stated;
    }
    out.sort_by(|x, y| {
        y.flagged
            .cmp(&x.flagged)
            .then(y.kept_bytes.total_cmp(&x.kept_bytes))
    });
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analyse::Settings;

    fn m(t: f64, k: &str, n: &str) -> (f64, String, String) {
        (t, k.into(), n.into())
    }

    #[test]
    fn pairs_begin_and_end_by_name() {
        let p = phases_from_markers(&[
            m(1.0, "begin", "a"),
            m(2.0, "mark", "x"),
            m(3.0, "end", "a"),
            m(3.0, "begin", "b"),
            m(4.0, "begin", "c"),
            m(6.0, "end", "c"),
            m(7.0, "end", "nothing-open"),
        ]);
        assert_eq!(p.len(), 3);
        assert_eq!((p[0].start_s, p[0].end_s), (1.0, Some(3.0)));
        assert_eq!((p[1].name.as_str(), p[1].end_s), ("b", None));
        assert_eq!(p[2].end_s, Some(6.0));
    }

    #[test]
    fn growth_goes_to_the_phase_that_ran_while_memory_rose() {
        // Flat at 100 during "stable" (0..10 s), +10/s during "leaky"
        // (10..20 s), flat again during "after" (20..30 s, never ended).
        let t: Vec<f64> = (0..=30).map(f64::from).collect();
        let y: Vec<f64> = t
            .iter()
            .map(|&x| 100.0 + 10.0 * (x - 10.0).clamp(0.0, 10.0))
            .collect();
        let phases = phases_from_markers(&[
            m(0.0, "begin", "stable"),
            m(10.0, "end", "stable"),
            m(10.0, "begin", "leaky"),
            m(20.0, "end", "leaky"),
            m(20.0, "begin", "after"),
            m(40.0, "begin", "outside"),
        ]);
        let g = attribute(&t, &y, 5.0, 30.0, &phases);
        let names: Vec<_> = g.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(names, ["leaky", "stable", "after"]);
        assert_eq!(g[0].growth_bytes, 100.0);
        assert_eq!(g[0].overlap_s, 10.0);
        assert_eq!(g[1].growth_bytes, 0.0);
        assert_eq!(g[1].overlap_s, 5.0);
        assert_eq!(g[2].overlap_s, 10.0);
    }
    const MIB: f64 = 1024.0 * 1024.0;

    /// A process sampled every second from `t0`, anon given per second.
    fn proc(pid: u32, t0: f64, anon_mib: &[f64]) -> AnonSeries {
        AnonSeries {
            pid,
            start_ns: pid as u64 * 1000,
            comm: format!("p{pid}"),
            t: (0..anon_mib.len()).map(|i| t0 + i as f64).collect(),
            anon: anon_mib.iter().map(|m| (m * MIB) as u64).collect(),
            exit_s: None,
        }
    }

    #[test]
    fn marker_names_may_carry_the_sender_pid() {
        // The prefix rule itself: marker_name's tests.
        // Two workers running a test of the same name: ends pair per sender.
        let p = phases_from_markers(&[
            m(1.0, "begin", "pid=1 t"),
            m(2.0, "begin", "pid=2 t"),
            m(3.0, "end", "pid=1 t"),
            m(5.0, "end", "pid=2 t"),
        ]);
        assert_eq!(p.len(), 2);
        assert_eq!((p[0].pid, p[0].end_s), (Some(1), Some(3.0)));
        assert_eq!((p[1].pid, p[1].end_s), (Some(2), Some(5.0)));
        assert_eq!(p[0].name, "t");
    }

    #[test]
    fn kept_is_measured_on_the_sender_when_it_says() {
        // Worker 10 keeps 100 MiB during its test; worker 20 churns: it
        // grows 200 MiB mid-test and frees it again.
        let w10 = proc(10, 0.0, &[50.0, 50.0, 100.0, 150.0, 150.0, 150.0]);
        let w20 = proc(20, 0.0, &[50.0, 250.0, 250.0, 50.0, 50.0, 50.0]);
        let phases = phases_from_markers(&[
            m(0.5, "begin", "pid=10 leaky"),
            m(0.5, "begin", "pid=20 churny"),
            m(4.5, "end", "pid=10 leaky"),
            m(4.5, "end", "pid=20 churny"),
        ]);
        let v = test_verdicts(
            &phases,
            &[w10, w20],
            1.0,
            KeptThreshold::from_settings(&Settings::default()),
        );
        assert_eq!(v.len(), 2);
        assert_eq!(v[0].name, "leaky");
        // Run once: unconfirmed, whatever it kept.
        assert!(!v[0].flagged && v[0].unconfirmed(), "{v:?}");
        assert_eq!(v[0].kept_bytes, 100.0 * MIB);
        assert_eq!(v[0].threshold_bytes, TEST_FLOOR_BYTES);
        assert_eq!((v[0].runs[0].pid, v[0].runs[0].by_pid), (10, true));
        assert_eq!(v[1].name, "churny");
        assert!(!v[1].flagged);
        assert_eq!(v[1].kept_bytes, 0.0);
        assert_eq!(v[1].runs[0].pid, 20);
    }

    #[test]
    fn without_a_pid_the_process_that_kept_most_is_taken() {
        let harness = proc(10, 0.0, &[50.0, 90.0, 130.0, 130.0]);
        let helper = proc(20, 0.0, &[5.0, 6.0, 7.0, 7.0]);
        // Born after the test started: not measured.
        let late = proc(30, 1.5, &[0.0, 900.0]);
        // Exited before the test ended: not measured.
        let mut gone = proc(40, 0.0, &[0.0, 500.0, 900.0]);
        gone.exit_s = Some(2.5);
        let phases = phases_from_markers(&[
            m(0.0, "begin", "t"),
            m(3.0, "end", "t"),
            m(3.0, "begin", "open"),
        ]);
        let v = test_verdicts(
            &phases,
            &[helper, late, harness, gone],
            1.0,
            KeptThreshold::from_settings(&Settings::default()),
        );
        assert_eq!(v.len(), 1, "a phase never ended is not measured: {v:?}");
        assert_eq!((v[0].runs[0].pid, v[0].runs[0].by_pid), (10, false));
        assert_eq!(v[0].kept_bytes, 80.0 * MIB);
        assert!(v[0].unconfirmed());
    }

    /// Runs of "t" on pid 1, one second each, sampled every second from
    /// `base` MiB; `kept` MiB per run.
    fn runs_of_t(base: f64, kept: &[f64]) -> Vec<TestVerdict> {
        runs_judged(
            base,
            kept,
            KeptThreshold::from_settings(&Settings::default()),
        )
    }

    fn runs_judged(base: f64, kept: &[f64], threshold: KeptThreshold) -> Vec<TestVerdict> {
        let mut anon = vec![base];
        for k in kept {
            anon.push(anon.last().unwrap() + k);
        }
        // One more tick after the last run, the settled figure.
        anon.push(*anon.last().unwrap());
        let p = proc(1, 0.0, &anon);
        let mut markers = Vec::new();
        for i in 0..kept.len() {
            markers.push(m(i as f64 + 0.5, "begin", "pid=1 t"));
            markers.push(m(i as f64 + 1.5, "end", "pid=1 t"));
        }
        test_verdicts(&phases_from_markers(&markers), &[p], 1.0, threshold)
    }

    #[test]
    fn a_leak_keeps_memory_on_every_rerun_and_is_flagged() {
        // 1 MiB on the first run and on each of 3 reruns.
        let v = runs_of_t(50.0, &[1.0, 1.0, 1.0, 1.0]);
        assert_eq!((v[0].runs.len(), v[0].reruns), (4, 3));
        assert_eq!(v[0].kept_bytes, 4.0 * MIB);
        assert!(
            v[0].confirmed && v[0].flagged && !v[0].unconfirmed(),
            "{v:?}"
        );
        assert_eq!(v[0].floor_bytes, TEST_FLOOR_BYTES);
        // The first run may keep less (it was measured before a rerun
        // existed): only the repetitions decide.
        let v = runs_of_t(50.0, &[0.0, 0.5, 0.5, 0.5]);
        assert!(v[0].flagged, "{v:?}");
    }

    #[test]
    fn a_cache_warmed_once_is_not_flagged() {
        // 40 MiB on the first run, nothing after: a cache, an import.
        let v = runs_of_t(50.0, &[40.0, 0.0, 0.0, 0.0]);
        assert!(
            !v[0].confirmed && !v[0].flagged && !v[0].unconfirmed(),
            "{v:?}"
        );
        // One rerun below the floor is enough to clear it.
        let v = runs_of_t(50.0, &[4.0, 1.0, 0.1, 1.0]);
        assert!(!v[0].flagged, "{v:?}");
        // Run once above the floor: unconfirmed, not flagged.
        let v = runs_of_t(50.0, &[4.0]);
        assert!(!v[0].flagged && v[0].unconfirmed(), "{v:?}");
        // Below the floor once: neither.
        let v = runs_of_t(50.0, &[0.1]);
        assert!(!v[0].flagged && !v[0].unconfirmed(), "{v:?}");
    }

    #[test]
    fn a_stated_limit_flags_a_single_run_and_the_floor_is_a_setting() {
        let stated = KeptThreshold {
            fixed: Some(10.0 * MIB),
            ..KeptThreshold::from_settings(&Settings::default())
        };
        let v = runs_judged(50.0, &[12.0], stated);
        assert!(v[0].flagged && !v[0].confirmed, "{v:?}");
        assert_eq!(v[0].threshold_bytes, 10.0 * MIB);
        // The rule still applies under a stated limit.
        let v = runs_judged(50.0, &[1.0, 1.0, 1.0], stated);
        assert!(v[0].flagged && v[0].confirmed, "{v:?}");
        let v = runs_judged(50.0, &[8.0], stated);
        assert!(!v[0].flagged, "{v:?}");
        // A higher floor (`--test-floor 2MiB`) clears a 1 MiB leak.
        let settings = Settings {
            test_floor_bytes: 2.0 * MIB,
            ..Settings::default()
        };
        let v = runs_judged(
            50.0,
            &[1.0, 1.0, 1.0],
            KeptThreshold::from_settings(&settings),
        );
        assert!(!v[0].flagged, "{v:?}");
        // The process's size does not matter (no 10% rule any more).
        let v = runs_of_t(4096.0, &[1.0, 1.0, 1.0]);
        assert!(v[0].flagged, "{v:?}");
    }

    #[test]
    fn a_run_the_harness_measured_below_the_floor_clears_the_test() {
        // The recording's ticks see 1 MiB kept on every run...
        let p = proc(1, 0.0, &[10.0, 11.0, 12.0, 13.0, 13.0]);
        let mut markers = Vec::new();
        for i in 0..3 {
            markers.push(m(i as f64 + 0.5, "begin", "pid=1 t"));
            markers.push(m(i as f64 + 1.5, "end", "pid=1 t"));
        }
        let threshold = KeptThreshold::from_settings(&Settings::default());
        let v = test_verdicts(
            &phases_from_markers(&markers),
            std::slice::from_ref(&p),
            1.0,
            threshold,
        );
        assert!(v[0].flagged, "{v:?}");
        // ...but the harness measured the last rerun below the floor.
        markers.push(m(3.6, "mark", "cleared pid=1 t"));
        let v = test_verdicts(&phases_from_markers(&markers), &[p], 1.0, threshold);
        assert!(v[0].cleared && !v[0].confirmed && !v[0].flagged, "{v:?}");
    }

    #[test]
    fn a_rerun_the_harness_says_failed_confirms_nothing() {
        let p = proc(1, 0.0, &[10.0, 11.0, 12.0, 13.0, 13.0]);
        let mut markers = Vec::new();
        for i in 0..3 {
            markers.push(m(i as f64 + 0.5, "begin", "pid=1 t"));
            markers.push(m(i as f64 + 1.5, "end", "pid=1 t"));
        }
        // Another sender's mark, or another name's, changes nothing.
        markers.push(m(3.6, "mark", "inconclusive pid=2 t"));
        markers.push(m(3.6, "mark", "inconclusive pid=1 u"));
        let threshold = KeptThreshold::from_settings(&Settings::default());
        let v = test_verdicts(
            &phases_from_markers(&markers),
            std::slice::from_ref(&p),
            1.0,
            threshold,
        );
        assert!(v[0].flagged && !v[0].inconclusive, "{v:?}");
        markers.push(m(3.6, "mark", "inconclusive pid=1 t"));
        let phases = phases_from_markers(&markers);
        assert_eq!(phases.iter().filter(|p| p.inconclusive).count(), 1);
        let v = test_verdicts(&phases, &[p], 1.0, threshold);
        assert!(
            v[0].inconclusive && !v[0].confirmed && !v[0].flagged,
            "{v:?}"
        );
    }

    #[test]
    fn flagged_tests_come_first() {
        let p = proc(1, 0.0, &[10.0, 50.0, 51.0, 52.0, 52.0]);
        let markers = [
            m(0.5, "begin", "pid=1 warm"),
            m(1.5, "end", "pid=1 warm"),
            m(1.5, "begin", "pid=1 leak"),
            m(2.5, "end", "pid=1 leak"),
            m(2.5, "begin", "pid=1 leak"),
            m(3.5, "end", "pid=1 leak"),
        ];
        let v = test_verdicts(
            &phases_from_markers(&markers),
            &[p],
            1.0,
            KeptThreshold::from_settings(&Settings::default()),
        );
        let names: Vec<_> = v.iter().map(|t| (t.name.as_str(), t.flagged)).collect();
        assert_eq!(names, [("leak", true), ("warm", false)]);
    }

    #[test]
    fn a_peak_freed_at_the_end_marker_is_not_kept() {
        // Sampled every second: the tick at 1 s saw the churning test's
        // transient 60 MiB; it was freed before its end marker at 1.8 s,
        // which the tick at 2 s shows.
        let p = proc(1, 0.0, &[50.0, 110.0, 50.0, 50.0]);
        let phases = phases_from_markers(&[
            m(0.2, "begin", "churn"),
            m(1.8, "end", "churn"),
            m(1.81, "begin", "next"),
        ]);
        let v = test_verdicts(
            &phases,
            std::slice::from_ref(&p),
            1.0,
            KeptThreshold::from_settings(&Settings::default()),
        );
        assert_eq!(v[0].kept_bytes, 0.0);
        // The next tick only counts within two intervals of the marker...
        let v = test_verdicts(
            &phases,
            std::slice::from_ref(&p),
            0.05,
            KeptThreshold::from_settings(&Settings::default()),
        );
        assert_eq!(v[0].kept_bytes, 60.0 * MIB);
        // A tick's figures land a little after the tick: the tick holds the
        // stale peak, the sample right after it the settled value.
        let mut late = p.clone();
        late.t = vec![0.0, 1.0, 2.0, 2.01, 3.0];
        late.anon = [50.0, 110.0, 110.0, 50.0, 50.0]
            .iter()
            .map(|m| (m * MIB) as u64)
            .collect();
        let v = test_verdicts(
            &phases,
            &[late],
            1.0,
            KeptThreshold::from_settings(&Settings::default()),
        );
        assert_eq!(v[0].kept_bytes, 0.0);
        // ...and not when it is the process exiting (its heap freed).
        let mut exiting = p.clone();
        exiting.exit_s = Some(2.5);
        let v = test_verdicts(
            &phases,
            &[exiting],
            1.0,
            KeptThreshold::from_settings(&Settings::default()),
        );
        assert_eq!(v[0].kept_bytes, 60.0 * MIB);
    }

    #[test]
    fn after_a_senders_last_test_the_settled_tick_may_come_later() {
        // The ticks at 2 s and 3 s still show the peak (a busy machine);
        // the one at 4 s the settled value.
        let p = proc(1, 0.0, &[50.0, 110.0, 110.0, 110.0, 50.0, 50.0]);
        let last = phases_from_markers(&[m(0.2, "begin", "t"), m(1.8, "end", "t")]);
        let v = test_verdicts(
            &last,
            std::slice::from_ref(&p),
            1.0,
            KeptThreshold::from_settings(&Settings::default()),
        );
        assert_eq!(v[0].kept_bytes, 0.0);
        // With a test after it, the tick at 4 s belongs to that test.
        let mut markers = vec![m(0.2, "begin", "t"), m(1.8, "end", "t")];
        markers.push(m(1.81, "begin", "u"));
        let v = test_verdicts(
            &phases_from_markers(&markers),
            &[p],
            1.0,
            KeptThreshold::from_settings(&Settings::default()),
        );
        assert_eq!(v[0].kept_bytes, 60.0 * MIB);
    }

    #[test]
    fn anon_is_anonymous_shmem_and_swap_only() {
        let m = Mem {
            vm: 1 << 40,
            rss_anon: 1,
            rss_file: 1 << 30,
            rss_shmem: 2,
            swap: 4,
        };
        assert_eq!(anon_bytes(&m), 7);
    }
}
