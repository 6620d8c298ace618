//! When the recorder reads a process's limits (see `sample::proclimits`):
//! when it first appears, after it execs (a new program brings new runtime
//! flags), and again every [`REREAD_S`] while it keeps changing, since
//! `prlimit`, cgroup moves and `memory.max` writes happen at any time.
//! Processes that did not change since their last read are not re-read:
//! their cost then follows activity, like the eBPF sampler's.

use std::collections::HashMap;

use crate::sample::{Observation, ProcId};

/// Seconds between two reads of a process that keeps changing.
pub const REREAD_S: u64 = 5;

struct Seen {
    comm: String,
    read_ns: u64,
}

/// When each process's limits are read again: new processes at once,
/// then after an exec and every so often.
#[derive(Default)]
pub struct LimitSchedule {
    seen: HashMap<ProcId, Seen>,
}

impl LimitSchedule {
    /// Processes of this snapshot whose limits are due for a read at
    /// `now_ns`; forgets the ones that exited.
    pub fn due(&mut self, now_ns: u64, observations: &[Observation]) -> Vec<ProcId> {
        let mut out = Vec::new();
        for o in observations {
            if o.exit.is_some() {
                self.seen.remove(&o.id);
                continue;
            }
            match self.seen.get_mut(&o.id) {
                Some(s)
                    if s.comm == o.meta.comm
                        && now_ns.saturating_sub(s.read_ns) < REREAD_S * 1_000_000_000 => {}
                Some(s) => {
                    s.comm.clone_from(&o.meta.comm);
                    s.read_ns = now_ns;
                    out.push(o.id);
                }
                None => {
                    self.seen.insert(
                        o.id,
                        Seen {
                            comm: o.meta.comm.clone(),
                            read_ns: now_ns,
                        },
                    );
                    out.push(o.id);
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sample::{Exit, Mem, ProcMeta};

    fn obs(pid: u32, comm: &str, exit: bool) -> Observation {
        Observation {
            id: ProcId { pid, start_ns: 7 },
            at_ns: 0,
            mem: Mem::default(),
            meta: ProcMeta {
                ppid: 1,
                comm: comm.into(),
                cmdline: None,
            },
            exit: exit.then_some(Exit {
                at_ns: 0,
                code: None,
                stop_signal: None,
                oom_killed: false,
            }),
        }
    }

    #[test]
    fn reads_new_renamed_and_stale_processes_only() {
        let mut s = LimitSchedule::default();
        let sec = 1_000_000_000;
        assert_eq!(s.due(0, &[obs(1, "sh", false)]).len(), 1);
        assert!(s.due(sec, &[obs(1, "sh", false)]).is_empty());
        // exec changed the name: read again at once.
        assert_eq!(s.due(2 * sec, &[obs(1, "java", false)]).len(), 1);
        assert!(s.due(3 * sec, &[obs(1, "java", false)]).is_empty());
        assert_eq!(s.due(8 * sec, &[obs(1, "java", false)]).len(), 1);
        // An exit is never read, and is forgotten.
        assert!(s.due(9 * sec, &[obs(1, "java", true)]).is_empty());
        assert!(s.seen.is_empty());
    }
}
