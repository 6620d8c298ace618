//! The memory limit each metric is projected against.
//!
//! - **vm** (virtual size) against `RLIMIT_AS` of the recorded command when it
//!   is set; otherwise against MemTotal + SwapTotal. Linux overcommits
//!   virtual memory (reserved-but-untouched mappings, thread stacks, arenas),
//!   so a process's vm can pass that figure without harm: vm is a weak
//!   signal, kept because the original tool watched it and because address
//!   space growth is what `RLIMIT_AS` kills.
//! - **rss** (anon + file + shmem resident pages) against the cgroup's
//!   `memory.max` when set (what the OOM killer enforces for the run),
//!   otherwise MemTotal. Note that file-backed pages count, so a process
//!   mapping ever more of a large file looks like growth.

use serde::Serialize;

use super::Metric;
use crate::store::RunMeta;

/// Where a limit came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum LimitSource {
    /// `RLIMIT_AS` of the recorded command.
    RlimitAs,
    /// MemTotal + SwapTotal of the machine.
    MemTotalPlusSwap,
    /// The cgroup's `memory.max`.
    CgroupMax,
    /// MemTotal of the machine.
    MemTotal,
    /// The recording does not say.
    Unknown,
}

impl LimitSource {
    pub fn name(self) -> &'static str {
        match self {
            LimitSource::RlimitAs => "rlimit_as",
            LimitSource::MemTotalPlusSwap => "mem_total_plus_swap",
            LimitSource::CgroupMax => "cgroup_max",
            LimitSource::MemTotal => "mem_total",
            LimitSource::Unknown => "unknown",
        }
    }
    /// Short, for "1.0 GiB (cgroup memory.max)".
    pub fn describe(self) -> &'static str {
        match self {
            LimitSource::RlimitAs => "RLIMIT_AS",
            LimitSource::MemTotalPlusSwap => "RAM + swap",
            LimitSource::CgroupMax => "cgroup memory.max",
            LimitSource::MemTotal => "RAM",
            LimitSource::Unknown => "no known limit",
        }
    }
}

/// A limit in bytes, or none known.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Limit {
    pub bytes: Option<f64>,
    pub source: LimitSource,
}

impl Limit {
    pub const UNKNOWN: Limit = Limit {
        bytes: None,
        source: LimitSource::Unknown,
    };

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
}

/// The limit `metric` is judged against in the run described by `meta`.
pub fn limit_for(metric: Metric, meta: &RunMeta) -> Limit {
    match metric {
        Metric::Vm => match meta.rlimit_as {
            Some(l) if l > 0 => Limit::new(l, LimitSource::RlimitAs),
            _ => Limit::new(
                meta.mem_total.saturating_add(meta.swap_total),
                LimitSource::MemTotalPlusSwap,
            ),
        },
        Metric::Rss => match meta.cgroup_max {
            Some(l) if l > 0 => Limit::new(l, LimitSource::CgroupMax),
            _ => Limit::new(meta.mem_total, LimitSource::MemTotal),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn picks_the_specific_limit_first() {
        let mut m = RunMeta {
            mem_total: 8 << 30,
            swap_total: 2 << 30,
            ..RunMeta::default()
        };
        assert_eq!(
            limit_for(Metric::Vm, &m),
            Limit::new(10 << 30, LimitSource::MemTotalPlusSwap)
        );
        assert_eq!(
            limit_for(Metric::Rss, &m),
            Limit::new(8 << 30, LimitSource::MemTotal)
        );
        m.rlimit_as = Some(1 << 30);
        m.cgroup_max = Some(512 << 20);
        assert_eq!(limit_for(Metric::Vm, &m).source, LimitSource::RlimitAs);
        assert_eq!(
            limit_for(Metric::Rss, &m).bytes,
            Some((512u64 << 20) as f64)
        );
        assert_eq!(limit_for(Metric::Rss, &RunMeta::default()), Limit::UNKNOWN);
    }
}
