//! Which processes a recording covers.

use std::path::PathBuf;

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Scope {
    /// Every process on the machine.
    All,
    /// The given processes and every descendant (followed through fork and
    /// exec, including children that daemonise and get re-parented).
    Tree(Vec<u32>),
    /// Every process in a cgroup v2 (the directory under /sys/fs/cgroup),
    /// plus their descendants.
    Cgroup(PathBuf),
}
