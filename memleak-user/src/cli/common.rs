//! Options shared by `record`, `run` and `watch`.

use std::path::PathBuf;
use std::time::Duration;

use clap::Args;

use crate::record::{RecordOptions, SamplerChoice};
use crate::sample::ebpf::{EbpfHook, DEFAULT_MAX_PROCS};
use crate::sample::Scope;

/// Which processes to record, shared by `record` and `watch`.
#[derive(Args, Debug, Clone)]
pub struct ScopeArgs {
    /// Record every process on the machine.
    #[arg(long, conflicts_with_all = ["cgroup", "pid"])]
    pub all: bool,

    /// Record the processes in a cgroup v2 (a directory under
    /// /sys/fs/cgroup) or its sub-cgroups, while they are there.
    #[arg(long, value_name = "PATH", conflicts_with = "pid")]
    pub cgroup: Option<PathBuf>,

    /// Record these running processes and their descendants (repeatable).
    #[arg(long, value_name = "PID")]
    pub pid: Vec<u32>,
}

impl ScopeArgs {
    /// The chosen scope; `None` when no option chose one. A command run by
    /// `record` is a tree scope of its own (`command` = true).
    pub fn scope(&self, command: bool) -> anyhow::Result<Option<Scope>> {
        Ok(Some(if self.all {
            Scope::All
        } else if let Some(cg) = &self.cgroup {
            if !crate::sysinfo::is_cgroup2_dir(cg) {
                anyhow::bail!(
                    "{} is not a cgroup v2 directory (expected a folder under {} with a cgroup.procs file)",
                    cg.display(),
                    crate::sysinfo::cgroup2_mount().display()
                );
            }
            Scope::Cgroup(cg.clone())
        } else if !self.pid.is_empty() || command {
            Scope::Tree(self.pid.clone())
        } else {
            return Ok(None);
        }))
    }
}

/// How figures are taken, shared by `record`, `run` and `watch`.
#[derive(Args, Debug, Clone)]
pub struct SnapshotArgs {
    /// How often to snapshot memory figures (e.g. 1s, 250ms; at least 10ms).
    /// Default: 100ms for `run` (so a test process living a few seconds is
    /// judged), thinned to at most 1s as the recording grows long; 1s for
    /// `record` and `watch`. With eBPF the cost follows the number of
    /// processes that changed, not the interval. A given interval is kept
    /// for the whole recording.
    #[arg(short, long, value_parser = parse_interval, value_name = "DURATION")]
    pub interval: Option<Duration>,

    /// Where figures come from: `ebpf` (kernel counters, needs root or
    /// CAP_BPF+CAP_PERFMON+CAP_DAC_READ_SEARCH), `procfs` (polls /proc, no privileges), or
    /// `auto` (eBPF when it loads, else procfs, saying why).
    #[arg(long, value_enum, default_value = "auto", value_name = "SAMPLER")]
    pub sampler: SamplerChoice,

    /// Capacity of the eBPF process map: processes alive at once (16 to
    /// 4194304). Overflow is counted and reported, never silent.
    #[arg(long, default_value_t = DEFAULT_MAX_PROCS, value_name = "N",
          value_parser = crate::sample::ebpf::parse_max_procs)]
    pub max_procs: u32,

    /// What refreshes the eBPF counters: `snapshot` (default: every
    /// tracked process is re-read in the kernel at each snapshot, running
    /// or asleep, and at exit; nothing runs per fault or context switch;
    /// the recorder pays ~0.1% of a core per 1,000 processes at 1 s),
    /// `switch` (when a process leaves the CPU, at 4 Hz while it runs, and
    /// at exit; 4-39% slower at extreme context-switch rates) or `faults`
    /// (every RSS change, exact between snapshots; page faults get 5-10%
    /// slower).
    #[arg(long, value_enum, default_value_t, value_name = "HOOK")]
    pub ebpf_hook: EbpfHook,
}

impl SnapshotArgs {
    /// The recorder's options for these settings, for the command named
    /// `origin` (`run` samples finely by default, see [`Self::interval`]).
    pub fn record_options(
        &self,
        origin: &'static str,
        output: PathBuf,
        scope: Scope,
        duration: Option<Duration>,
        command: Option<Vec<String>>,
        progress: bool,
    ) -> RecordOptions {
        let fine = origin == "run";
        let (interval, thin_to) = match self.interval {
            Some(i) => (i, None),
            None if fine => (RUN_INTERVAL, Some(DEFAULT_INTERVAL)),
            None => (DEFAULT_INTERVAL, None),
        };
        RecordOptions {
            origin,
            thin_to,
            output,
            interval,
            duration,
            sampler: self.sampler,
            scope,
            command,
            max_procs: self.max_procs,
            ebpf_hook: self.ebpf_hook,
            progress,
            locate: None,
            kill_after: crate::record::KILL_AFTER,
        }
    }
}

/// `--locate` on `run` and `record`.
#[derive(Args, Debug, Clone)]
pub struct LocateFlags {
    /// Also sample where the command's processes (or the --pid ones) first
    /// touch new memory, with user stacks: the report then lists the code
    /// paths that grew them most (estimated bytes). One page fault in
    /// --locate-period is sampled, for these processes only. Needs root
    /// (or CAP_BPF and CAP_PERFMON) and frame pointers in the code; see
    /// `memleak locate --help` and "Locating growth" in the README.
    #[arg(long)]
    pub locate: bool,

    /// Page faults per --locate sample (each stands for about N x 4 KiB of
    /// new memory).
    #[arg(long, default_value_t = crate::locate::DEFAULT_PERIOD, value_name = "N",
          value_parser = clap::value_parser!(u64).range(1..), requires = "locate")]
    pub locate_period: u64,
}

impl LocateFlags {
    pub fn period(&self) -> Option<u64> {
        self.locate.then_some(self.locate_period)
    }
}

#[derive(Args, Debug, Clone)]
pub struct SamplingArgs {
    /// Recording file to write (SQLite). Default: memleak-<time>.memleak in
    /// the current directory. It must not exist yet; it is created mode 0600.
    #[arg(short, long, value_name = "FILE")]
    pub output: Option<PathBuf>,

    #[command(flatten)]
    pub snapshot: SnapshotArgs,

    /// At a stop (Ctrl-C, SIGTERM, SIGHUP, the end of --duration) the
    /// command gets SIGTERM; if it has not ended this long after, it and
    /// every process it started are killed (SIGKILL). A second Ctrl-C kills
    /// at once.
    #[arg(long, value_parser = parse_duration, value_name = "DURATION",
          default_value = "10s")]
    pub kill_after: Duration,

    /// Do not show the progress line.
    #[arg(short, long)]
    pub quiet: bool,
}

impl SamplingArgs {
    pub fn output_path(&self) -> PathBuf {
        self.output.clone().unwrap_or_else(default_output)
    }
}

/// A new recording in the current directory, named for its start time.
fn default_output() -> PathBuf {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    PathBuf::from(crate::record::naming::file_name(secs))
}

/// Every duration flag's parser: bounded (see
/// [`crate::analyse::units::parse_duration`]), so a huge value is a usage
/// error naming the flag, not an overflow later.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    crate::analyse::units::parse_duration(s).map(Duration::from_secs_f64)
}

/// A duration that must not be zero (a period: zero would spin, and
/// tokio's interval panics on it).
pub fn parse_positive_duration(s: &str) -> Result<Duration, String> {
    let d = parse_duration(s)?;
    if d.is_zero() {
        return Err("must be positive (e.g. 5s)".to_string());
    }
    Ok(d)
}

/// `record` and `watch`'s interval, and the coarsest `run` thins to.
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(1);

/// `run`'s starting interval: a test process living 8 s gets ~70 points
/// after its warm-up (the analyser needs 20).
pub const RUN_INTERVAL: Duration = Duration::from_millis(100);

/// The shortest interval any sampler takes; a sampler may need more (procfs
/// 20ms) and says so when it starts.
const MIN_INTERVAL: Duration = Duration::from_millis(10);

/// `--interval`: a duration of at least [`MIN_INTERVAL`], checked while
/// parsing so a typo is a usage error (exit 2) before anything starts.
pub fn parse_interval(s: &str) -> Result<Duration, String> {
    let d = parse_duration(s)?;
    if d < MIN_INTERVAL {
        return Err(format!(
            "must be at least {} (got {})",
            humantime::format_duration(MIN_INTERVAL),
            humantime::format_duration(d)
        ));
    }
    Ok(d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn intervals_below_the_floor_are_usage_errors() {
        assert_eq!(parse_interval("10ms"), Ok(Duration::from_millis(10)));
        let e = parse_interval("1ms").unwrap_err();
        assert!(e.contains("at least 10ms"), "{e}");
        assert!(parse_interval("fast").is_err());
    }

    #[test]
    fn a_zero_period_is_a_usage_error() {
        assert_eq!(parse_positive_duration("5s"), Ok(Duration::from_secs(5)));
        let e = parse_positive_duration("0s").unwrap_err();
        assert!(e.contains("must be positive"), "{e}");
    }

    #[test]
    fn durations_parse_with_units() {
        assert_eq!(parse_duration("250ms").unwrap(), Duration::from_millis(250));
        assert!(parse_duration("fast").unwrap_err().contains("examples"));
    }
}
