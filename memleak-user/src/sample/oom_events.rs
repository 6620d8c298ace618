//! OOM kills as the procfs sampler can know them: the `oom_kill` counter of
//! the memory cgroup a process is in (cgroup v2 `memory.events`, v1
//! `memory.oom_control`). The counter says how many processes the OOM killer
//! killed there, not which: see [`victims`] for how that is inferred.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Counter files of memory cgroups, each read at most once per snapshot.
#[derive(Debug)]
pub struct OomCounters {
    v2: PathBuf,
    /// The v1 hierarchy holding the memory controller (hybrid hosts).
    v1: Option<PathBuf>,
    /// This snapshot's values (`None`: unreadable, e.g. the cgroup is gone).
    now: HashMap<Arc<Path>, Option<u64>>,
}

impl Default for OomCounters {
    fn default() -> Self {
        Self::new()
    }
}

impl OomCounters {
    pub fn new() -> OomCounters {
        OomCounters {
            v2: crate::sysinfo::cgroup2_mount(),
            v1: std::fs::read_to_string("/proc/self/mounts")
                .ok()
                .and_then(|m| v1_memory_mount(&m)),
            now: HashMap::new(),
        }
    }

    /// Forgets the previous snapshot's values.
    pub fn begin_snapshot(&mut self) {
        self.now.clear();
    }

    /// The counter file of the memory cgroup `pid` is in, when there is one
    /// this process can read.
    pub fn file_of(&self, pid: u32) -> Option<Arc<Path>> {
        let text = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).ok()?;
        let file = match (&self.v1, cgroup_path(&text, true)) {
            // The memory controller lives where it is bound: with a v1
            // memory hierarchy, the v2 cgroup has no memory files.
            (Some(mount), Some(rel)) => mount
                .join(rel.trim_start_matches('/'))
                .join("memory.oom_control"),
            _ => self
                .v2
                .join(cgroup_path(&text, false)?.trim_start_matches('/'))
                .join("memory.events"),
        };
        file.is_file().then(|| Arc::from(file))
    }

    /// The file's `oom_kill` count in this snapshot.
    pub fn count(&mut self, file: &Arc<Path>) -> Option<u64> {
        *self.now.entry(file.clone()).or_insert_with(|| {
            std::fs::read_to_string(file)
                .ok()
                .and_then(|t| parse_oom_kill(&t))
        })
    }
}

/// Which of the processes that vanished in one snapshot the OOM killer
/// killed: `gone` gives each one's counter file and the count when it was
/// last seen alive. This is an inference, not an observation (procfs sees
/// neither the kill nor the exit status): all the processes that vanished
/// from one cgroup are taken as victims when its count rose by at least as
/// many since; when fewer kills than exits happened there, none is, since
/// which ones died of memory cannot be told.
pub fn victims(counters: &mut OomCounters, gone: &[(Option<Arc<Path>>, u64)]) -> Vec<bool> {
    let mut by_file: HashMap<&Arc<Path>, (u64, u64)> = HashMap::new();
    for (file, base) in gone {
        if let Some(f) = file {
            let e = by_file.entry(f).or_insert((0, u64::MAX));
            e.0 += 1;
            e.1 = e.1.min(*base);
        }
    }
    let mut killed: HashMap<&Arc<Path>, bool> = HashMap::new();
    for (f, (n, base)) in by_file {
        let rose = counters.count(f).map_or(0, |now| now.saturating_sub(base));
        killed.insert(f, rose > 0 && rose >= n);
    }
    gone.iter()
        .map(|(f, _)| f.as_ref().is_some_and(|f| killed[f]))
        .collect()
}

/// The `oom_kill N` line of `memory.events` or `memory.oom_control`.
pub fn parse_oom_kill(text: &str) -> Option<u64> {
    text.lines()
        .find_map(|l| l.strip_prefix("oom_kill ")?.trim().parse().ok())
}

/// The cgroup path in `/proc/PID/cgroup` text: of the v1 hierarchy with the
/// memory controller (`v1`), or the v2 one (`0::/path`).
pub fn cgroup_path(text: &str, v1: bool) -> Option<&str> {
    text.lines().find_map(|l| {
        let mut f = l.splitn(3, ':');
        let (id, controllers, path) = (f.next()?, f.next()?, f.next()?);
        let hit = if v1 {
            controllers.split(',').any(|c| c == "memory")
        } else {
            id == "0" && controllers.is_empty()
        };
        hit.then_some(path)
    })
}

/// The mount point of the v1 hierarchy with the memory controller, from
/// `/proc/self/mounts` text.
pub fn v1_memory_mount(mounts: &str) -> Option<PathBuf> {
    mounts.lines().find_map(|l| {
        let f: Vec<&str> = l.split_whitespace().collect();
        (f.len() >= 4 && f[2] == "cgroup" && f[3].split(',').any(|o| o == "memory"))
            .then(|| PathBuf::from(f[1]))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_counters_and_cgroup_files() {
        let events = "low 0\nhigh 0\nmax 12\noom 3\noom_kill 2\noom_group_kill 0\n";
        assert_eq!(parse_oom_kill(events), Some(2));
        let v1 = "oom_kill_disable 0\nunder_oom 0\noom_kill 5\n";
        assert_eq!(parse_oom_kill(v1), Some(5));
        assert_eq!(parse_oom_kill("max 1\n"), None);

        let hybrid = "9:name=systemd:/\n4:memory:/a/b\n1:cpu,cpuacct:/\n0::/user.slice\n";
        assert_eq!(cgroup_path(hybrid, true), Some("/a/b"));
        assert_eq!(cgroup_path(hybrid, false), Some("/user.slice"));
        assert_eq!(cgroup_path("0::/x\n", true), None);
        let mounts = "cgroup2 /sys/fs/cgroup/unified cgroup2 rw 0 0\n\
                      cgroup /sys/fs/cgroup/memory cgroup rw,relatime,memory 0 0\n";
        assert_eq!(
            v1_memory_mount(mounts),
            Some(PathBuf::from("/sys/fs/cgroup/memory"))
        );
        assert_eq!(
            v1_memory_mount("cgroup2 /sys/fs/cgroup cgroup2 rw 0 0\n"),
            None
        );
    }

    #[test]
    fn victims_only_when_the_kills_cover_the_exits() {
        let dir = tempfile::tempdir().unwrap();
        let a: Arc<Path> = Arc::from(dir.path().join("a"));
        let b: Arc<Path> = Arc::from(dir.path().join("b"));
        std::fs::write(&a, "oom_kill 3\n").unwrap();
        std::fs::write(&b, "oom_kill 1\n").unwrap();
        let mut c = OomCounters::new();
        // a: two kills since, two gone: both victims. b: one kill, two
        // gone: which one died of memory is unknown. No file: unknown.
        let gone = [
            (Some(a.clone()), 1),
            (Some(b.clone()), 0),
            (Some(a.clone()), 1),
            (Some(b.clone()), 0),
            (None, 0),
        ];
        assert_eq!(victims(&mut c, &gone), [true, false, true, false, false]);
        // No rise: nobody.
        assert_eq!(victims(&mut c, &[(Some(a.clone()), 3)]), [false]);
        // Read once per snapshot: a new value shows after begin_snapshot.
        std::fs::write(&a, "oom_kill 4\n").unwrap();
        assert_eq!(victims(&mut c, &[(Some(a.clone()), 3)]), [false]);
        c.begin_snapshot();
        assert_eq!(victims(&mut c, &[(Some(a), 3)]), [true]);
    }
}
