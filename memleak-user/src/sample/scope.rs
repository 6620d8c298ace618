//! Which processes a recording covers.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

/// Which processes a recording covers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Scope {
    /// Every process on the machine.
    All,
    /// The given processes and every descendant (followed through fork and
    /// exec, including children that daemonise and get re-parented), those
    /// already running when recording starts included.
    Tree(Vec<u32>),
    /// Every process in a cgroup v2 (the directory under /sys/fs/cgroup) or
    /// one of its sub-cgroups, for as long as it stays there: a process
    /// that moves out, and what it starts afterwards, is out of scope.
    Cgroup(PathBuf),
}

/// Membership of a cgroup v2 subtree right now. Children start in their
/// parent's cgroup, so "in the subtree" alone decides: a process that moved
/// out takes its later children out with it.
#[derive(Clone, Debug)]
pub struct CgroupMembers {
    dir: PathBuf,
    /// The directory as `/proc/PID/cgroup` names it ("/a/b"; "" for the root).
    rel: String,
}

impl CgroupMembers {
    pub fn new(dir: &Path) -> Self {
        let mount = crate::sysinfo::cgroup2_mount();
        let rel = dir
            .strip_prefix(&mount)
            .map(|r| {
                let r = r.to_string_lossy();
                let r = r.trim_end_matches('/');
                if r.is_empty() {
                    String::new()
                } else {
                    format!("/{r}")
                }
            })
            .unwrap_or_else(|_| dir.to_string_lossy().into_owned());
        CgroupMembers {
            dir: dir.to_path_buf(),
            rel,
        }
    }

    /// The pids in `cgroup.procs` of the directory and every sub-cgroup,
    /// with the number of files that could not be read (a sub-cgroup
    /// removed meanwhile is not an error).
    pub fn pids(&self) -> (HashSet<u32>, u64) {
        let mut pids = HashSet::new();
        let mut errors = 0;
        let mut dirs = vec![self.dir.clone()];
        while let Some(dir) = dirs.pop() {
            match std::fs::read_to_string(dir.join("cgroup.procs")) {
                Ok(text) => pids.extend(text.lines().filter_map(|l| l.trim().parse::<u32>().ok())),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(_) => errors += 1,
            }
            if let Ok(rd) = std::fs::read_dir(&dir) {
                dirs.extend(
                    rd.flatten()
                        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
                        .map(|e| e.path()),
                );
            }
        }
        (pids, errors)
    }

    /// Whether `pid` is in the subtree, from its `/proc/PID/cgroup`; `None`
    /// when that cannot be read (the process is gone).
    pub fn holds(&self, pid: u32) -> Option<bool> {
        let text = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).ok()?;
        // An exiting process keeps its cgroup line until it is reaped.
        let path = text.lines().find_map(|l| l.strip_prefix("0::"))?;
        Some(self.contains_path(path.trim_end_matches(" (deleted)")))
    }

    /// Whether a `/proc/PID/cgroup` v2 path lies in the subtree.
    pub fn contains_path(&self, path: &str) -> bool {
        self.rel.is_empty()
            || path == self.rel
            || path
                .strip_prefix(self.rel.as_str())
                .is_some_and(|rest| rest.starts_with('/'))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subtree_paths_match_by_component_not_by_prefix() {
        let m = CgroupMembers {
            dir: PathBuf::from("/sys/fs/cgroup/app"),
            rel: "/app".into(),
        };
        assert!(m.contains_path("/app"));
        assert!(m.contains_path("/app/worker"));
        assert!(!m.contains_path("/application"));
        assert!(!m.contains_path("/"));
        let root = CgroupMembers {
            dir: PathBuf::from("/sys/fs/cgroup"),
            rel: String::new(),
        };
        assert!(root.contains_path("/anything"));
    }
}
