//! The limit each metric of each process is projected against: the nearest
//! of the limits that apply to *that* process.
//!
//! - **anon** (anonymous + shmem resident, + swap: the memory only the
//!   process can give back): the smallest of `--limit` (the production
//!   container's, stated by hand), the process's cgroup (`memory.max`,
//!   `memory.high`, v1 `memory.limit_in_bytes`), `RLIMIT_AS` and
//!   `RLIMIT_DATA` (anon memory counts against both, so reaching them with
//!   anon alone is certain failure), and a runtime's heap cap (`-Xmx`,
//!   `--max-old-space-size`, `GOMEMLIMIT`) plus the process's smallest anon
//!   (what the runtime needs besides its heap); without any, RAM + swap.
//! - **vm** (address space): only a real address-space limit:
//!   `RLIMIT_AS`, or CommitLimit under strict overcommit
//!   (`vm.overcommit_memory = 2`). Otherwise Linux overcommits: thread
//!   stacks and arenas reserve address space nobody touches, and no amount
//!   of it runs out before RAM does, so vm growth is reported, never flagged.
//! - **file** (file-backed resident pages): page cache the kernel reclaims
//!   under pressure; no limit, reported, never flagged.
//! - **rss** (all resident pages, for sources that do not split them, like
//!   Prometheus): as anon.
//!
//! Per-process limits come from the recording (read while the process was
//! alive; a process that exited before it was read inherits its nearest
//! recorded ancestor's, as fork copies rlimits and the cgroup); recordings
//! made before memleak stored them fall back to the limits memleak itself
//! ran under.

use serde::Serialize;

use super::Metric;
use crate::sample::proclimits::{LimitKind, LimitRow};
use crate::store::RunMeta;

/// Where a limit came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(into = "&'static str")]
pub enum LimitSource {
    /// `--limit` / `limit` in the config: stated by the user.
    User,
    /// A limit of the process itself (or of the recorded command, in
    /// recordings made before per-process limits): an rlimit, its cgroup,
    /// a runtime heap cap (plus what the process holds besides its heap).
    Process(LimitKind),
    /// CommitLimit under strict overcommit.
    CommitLimit,
    /// MemTotal + SwapTotal of the machine.
    MemTotalPlusSwap,
    /// MemTotal of the machine.
    MemTotal,
    /// Virtual size under overcommit: no address-space limit applies.
    NoAddressSpaceLimit,
    /// File-backed pages: reclaimable, no limit.
    Reclaimable,
    /// The recording does not say.
    Unknown,
}

impl From<LimitSource> for &'static str {
    fn from(s: LimitSource) -> &'static str {
        s.name()
    }
}

impl LimitSource {
    /// Stable name (JSON `limit_source`).
    pub fn name(self) -> &'static str {
        match self {
            LimitSource::User => "user",
            LimitSource::Process(k) => k.name(),
            LimitSource::CommitLimit => "commit_limit",
            LimitSource::MemTotalPlusSwap => "mem_total_plus_swap",
            LimitSource::MemTotal => "mem_total",
            LimitSource::NoAddressSpaceLimit => "no_address_space_limit",
            LimitSource::Reclaimable => "reclaimable",
            LimitSource::Unknown => "unknown",
        }
    }

    /// Short, for "1.0 GiB (cgroup memory.max)".
    pub fn describe(self) -> &'static str {
        match self {
            LimitSource::User => "--limit",
            LimitSource::Process(k) => k.describe(),
            LimitSource::CommitLimit => "CommitLimit, strict overcommit",
            LimitSource::MemTotalPlusSwap => "RAM + swap",
            LimitSource::MemTotal => "RAM",
            LimitSource::NoAddressSpaceLimit => "no address-space limit",
            LimitSource::Reclaimable => "reclaimable",
            LimitSource::Unknown => "no known limit",
        }
    }

    /// Why there is no projection, for a limit without bytes.
    pub fn no_limit_why(self) -> &'static str {
        match self {
            LimitSource::NoAddressSpaceLimit => {
                "no address-space limit applies (no RLIMIT_AS, and Linux overcommits \
                 address space), so vm growth is reported, not flagged"
            }
            LimitSource::Reclaimable => {
                "file-backed pages are page cache the kernel reclaims under pressure, \
                 so their growth is reported, not flagged"
            }
            _ => "no limit is known, so no projection",
        }
    }
}

/// A limit in bytes, or none known (and why, in `source`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Limit {
    pub bytes: Option<f64>,
    pub source: LimitSource,
}

impl Limit {
    /// No limit known: findings can be `growing`, never `leak`.
    pub const UNKNOWN: Limit = Limit {
        bytes: None,
        source: LimitSource::Unknown,
    };

    /// A limit of `bytes` (0 means none: [`Limit::UNKNOWN`]).
    pub fn new(bytes: u64, source: LimitSource) -> Limit {
        if bytes == 0 {
            Limit::UNKNOWN
        } else {
            Limit {
                bytes: Some(bytes as f64),
                source,
            }
        }
    }

    const fn none(source: LimitSource) -> Limit {
        Limit {
            bytes: None,
            source,
        }
    }
}

/// The limits in effect for one process at the end of its analysed life:
/// the last recorded value of each kind at or before `at_ns` (removed
/// kinds dropped). `rows` are (ns since boot, kind, bytes) in time order.
pub fn in_effect(rows: &[LimitRow], at_ns: u64) -> Vec<(LimitKind, u64)> {
    let mut out: Vec<(LimitKind, Option<u64>)> = Vec::new();
    // Limits read after the last sample still describe the process (it was
    // alive): use them when nothing was read before.
    let before = rows.iter().filter(|r| r.0 <= at_ns).count();
    let upto = if before == 0 { rows.len() } else { before };
    for &(_, k, b) in &rows[..upto] {
        match out.iter_mut().find(|(k2, _)| *k2 == k) {
            Some(slot) => slot.1 = b,
            None => out.push((k, b)),
        }
    }
    out.into_iter().filter_map(|(k, b)| Some((k, b?))).collect()
}

/// What the limit of a process is judged from.
#[derive(Clone, Debug, Default)]
pub struct LimitInputs<'a> {
    /// The process's limits in effect (see [`in_effect`]); empty when none
    /// were recorded, then the recording-wide ones of `meta` apply.
    pub process: &'a [(LimitKind, u64)],
    /// The user's `--limit`, bytes.
    pub user: Option<f64>,
    /// The process's smallest anon figure: what a managed runtime uses
    /// besides its capped heap.
    pub anon_floor: f64,
}

/// The limit `metric` of a process is judged against (see the module
/// documentation for the rules).
pub fn limit_for(metric: Metric, meta: &RunMeta, inputs: &LimitInputs<'_>) -> Limit {
    let proc_limit = |k: LimitKind| {
        inputs
            .process
            .iter()
            .find(|(k2, _)| *k2 == k)
            .map(|(_, v)| *v)
    };
    let recorded = !inputs.process.is_empty();
    let rlimit_as = if recorded {
        proc_limit(LimitKind::RlimitAs)
    } else {
        meta.rlimit_as.filter(|l| *l > 0)
    };
    match metric {
        Metric::File => Limit::none(LimitSource::Reclaimable),
        Metric::Vm => {
            let mut c: Vec<Limit> = Vec::new();
            if let Some(l) = rlimit_as {
                c.push(Limit::new(l, LimitSource::Process(LimitKind::RlimitAs)));
            }
            if meta.overcommit_memory == Some(2) {
                if let Some(l) = meta.commit_limit {
                    c.push(Limit::new(l, LimitSource::CommitLimit));
                }
            }
            nearest(c).unwrap_or(Limit::none(LimitSource::NoAddressSpaceLimit))
        }
        Metric::Anon | Metric::Rss => {
            let mut c: Vec<Limit> = Vec::new();
            if let Some(u) = inputs.user.filter(|u| u.is_finite() && *u > 0.0) {
                c.push(Limit {
                    bytes: Some(u),
                    source: LimitSource::User,
                });
            }
            if let Some(l) = rlimit_as {
                c.push(Limit::new(l, LimitSource::Process(LimitKind::RlimitAs)));
            }
            if recorded {
                for &(k, v) in inputs.process {
                    let source = LimitSource::Process(k);
                    let bytes = match k {
                        LimitKind::RlimitAs => continue,
                        // The heap cap bounds the heap; the process also
                        // holds code, stacks and runtime structures.
                        LimitKind::JavaXmx | LimitKind::NodeMaxOldSpace => {
                            v as f64 + inputs.anon_floor.max(0.0)
                        }
                        _ => v as f64,
                    };
                    c.push(Limit {
                        bytes: Some(bytes),
                        source,
                    });
                }
            } else if let Some(l) = meta.cgroup_max.filter(|l| *l > 0) {
                c.push(Limit::new(l, LimitSource::Process(LimitKind::CgroupMax)));
            }
            let machine = if metric == Metric::Anon {
                Limit::new(
                    meta.mem_total.saturating_add(meta.swap_total),
                    LimitSource::MemTotalPlusSwap,
                )
            } else {
                Limit::new(meta.mem_total, LimitSource::MemTotal)
            };
            c.push(machine);
            nearest(c).unwrap_or(Limit::UNKNOWN)
        }
    }
}

fn nearest(candidates: Vec<Limit>) -> Option<Limit> {
    candidates
        .into_iter()
        .filter(|l| l.bytes.is_some_and(|b| b.is_finite() && b > 0.0))
        .min_by(|a, b| a.bytes.unwrap_or(0.0).total_cmp(&b.bytes.unwrap_or(0.0)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta() -> RunMeta {
        RunMeta {
            mem_total: 8 << 30,
            swap_total: 2 << 30,
            ..RunMeta::default()
        }
    }

    #[test]
    fn vm_is_judged_only_against_an_address_space_limit() {
        let mut m = meta();
        let none = LimitInputs::default();
        assert_eq!(
            limit_for(Metric::Vm, &m, &none).source,
            LimitSource::NoAddressSpaceLimit
        );
        assert_eq!(limit_for(Metric::Vm, &m, &none).bytes, None);
        m.overcommit_memory = Some(2);
        m.commit_limit = Some(6 << 30);
        assert_eq!(
            limit_for(Metric::Vm, &m, &none),
            Limit::new(6 << 30, LimitSource::CommitLimit)
        );
        // The process's own RLIMIT_AS, set inside the command, wins over
        // memleak's (none here).
        let p = [(LimitKind::RlimitAs, 768 << 20)];
        let inputs = LimitInputs {
            process: &p,
            ..LimitInputs::default()
        };
        assert_eq!(
            limit_for(Metric::Vm, &m, &inputs),
            Limit::new(768 << 20, LimitSource::Process(LimitKind::RlimitAs))
        );
    }

    #[test]
    fn anon_takes_the_nearest_limit_of_the_process() {
        let m = meta();
        assert_eq!(
            limit_for(Metric::Anon, &m, &LimitInputs::default()),
            Limit::new(10 << 30, LimitSource::MemTotalPlusSwap)
        );
        let p = [
            (LimitKind::CgroupMax, 512 << 20),
            (LimitKind::RlimitData, 4 << 30),
        ];
        let inputs = LimitInputs {
            process: &p,
            ..LimitInputs::default()
        };
        assert_eq!(
            limit_for(Metric::Anon, &m, &inputs),
            Limit::new(512 << 20, LimitSource::Process(LimitKind::CgroupMax))
        );
        let user = LimitInputs {
            user: Some(256.0 * 1048576.0),
            ..inputs.clone()
        };
        assert_eq!(limit_for(Metric::Anon, &m, &user).source, LimitSource::User);
        // A heap cap counts with what the runtime holds besides the heap.
        let p = [(LimitKind::NodeMaxOldSpace, 256 << 20)];
        let node = LimitInputs {
            process: &p,
            anon_floor: 40.0 * 1048576.0,
            ..LimitInputs::default()
        };
        assert_eq!(
            limit_for(Metric::Anon, &m, &node),
            Limit {
                bytes: Some(296.0 * 1048576.0),
                source: LimitSource::Process(LimitKind::NodeMaxOldSpace)
            }
        );
        assert_eq!(limit_for(Metric::File, &m, &node).bytes, None);
    }

    #[test]
    fn old_recordings_use_the_recording_wide_limits() {
        let mut m = meta();
        m.rlimit_as = Some(1 << 30);
        m.cgroup_max = Some(512 << 20);
        let none = LimitInputs::default();
        assert_eq!(
            limit_for(Metric::Vm, &m, &none).source,
            LimitSource::Process(LimitKind::RlimitAs)
        );
        assert_eq!(
            limit_for(Metric::Anon, &m, &none),
            Limit::new(512 << 20, LimitSource::Process(LimitKind::CgroupMax))
        );
    }

    #[test]
    fn limits_in_effect_follow_changes() {
        let rows = [
            (10, LimitKind::RlimitAs, Some(100)),
            (10, LimitKind::CgroupMax, Some(50)),
            (20, LimitKind::RlimitAs, Some(200)),
            (30, LimitKind::CgroupMax, None),
        ];
        assert_eq!(
            in_effect(&rows, 15),
            vec![(LimitKind::RlimitAs, 100), (LimitKind::CgroupMax, 50)]
        );
        assert_eq!(in_effect(&rows, 99), vec![(LimitKind::RlimitAs, 200)]);
        // Read only after the last sample: still the process's.
        assert_eq!(in_effect(&rows, 5), vec![(LimitKind::RlimitAs, 200)]);
    }
}
