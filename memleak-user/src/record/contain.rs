//! Keeping the command's whole process tree on a leash: nothing it starts
//! may outlive memleak, even when memleak itself is killed with SIGKILL.
//!
//! The parent-death signal reaches the command's own process only; its
//! children (a shell's background jobs, test workers) would run on. So the
//! command runs in a cgroup v2 of its own, a child of memleak's cgroup,
//! killed as a whole with `cgroup.kill` (as systemd stops a unit). Where no
//! cgroup can be made (cgroup v1 only, no write access), the command gets a
//! process group of its own and the group is killed; a process that leaves
//! the group escapes. On a terminal where memleak runs in the foreground, a
//! group of its own would put the command in the background (a read from the
//! terminal would stop it), so there only the command itself is covered.
//!
//! A SIGKILLed memleak runs no code, so a tiny guard process (forked before
//! the command, outside its tree) waits on a pipe only memleak writes to:
//! end-of-file means memleak is gone, and the guard kills the tree. The
//! guard re-executes memleak ([`GUARD_ARG`]) so that it does not keep a
//! copy-on-write image of the recorder's heap for the whole run; if that
//! exec fails, the forked copy does the same job itself.

use std::ffi::CString;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

/// Prefix of the cgroups memleak creates: `memleak-<pid>-<n>`.
const PREFIX: &str = "memleak-";

/// `memleak __memleak-guard cgroup DIR` or `... pgroup PGID`, with the
/// pipe's read end as fd 3: the guard's own entry point ([`guard_main`]).
pub const GUARD_ARG: &str = "__memleak-guard";

/// Set by the `memleak` binary's entry point, which knows [`GUARD_ARG`]:
/// another program using the library (a test harness) would take the
/// guard's arguments for its own, so there the forked copy guards.
pub static GUARD_EXEC: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// The pipe's read end in the re-executed guard.
const GUARD_FD: i32 = 3;

/// How long a stop waits for a killed cgroup to empty before removing it.
const EMPTY_WAIT: Duration = Duration::from_secs(10);

/// How the command's tree is held.
#[derive(Debug)]
pub enum Kind {
    /// A cgroup v2 directory of its own.
    Cgroup(PathBuf),
    /// A process group of its own (its id is the command's pid).
    ProcessGroup,
    /// The command alone (parent-death signal).
    ChildOnly,
}

/// The leash on one command, from before it starts until it is removed.
pub struct Containment {
    kind: Kind,
    /// Why no cgroup (for the user's note).
    fallback_reason: Option<String>,
    pid: Option<u32>,
    /// Write end of the guard's pipe: one byte says "done, exit quietly";
    /// end-of-file without it says "memleak died, kill the tree".
    guard_pipe: Option<OwnedFd>,
    guard_pid: Option<u32>,
}

impl Containment {
    /// Creates a cgroup for the next command, or picks the fallback.
    /// Also removes empty cgroups left by a memleak that was SIGKILLed.
    pub fn prepare() -> Containment {
        let (kind, fallback_reason) = match make_cgroup() {
            Ok(dir) => (Kind::Cgroup(dir), None),
            Err(reason) => {
                let kind = if stdin_is_foreground_terminal() {
                    Kind::ChildOnly
                } else {
                    Kind::ProcessGroup
                };
                (kind, Some(reason))
            }
        };
        Containment {
            kind,
            fallback_reason,
            pid: None,
            guard_pipe: None,
            guard_pid: None,
        }
    }

    /// Puts the forked (not yet exec'd) command `pid` on the leash and
    /// starts the guard. A cgroup that refuses the process falls back to a
    /// process group, and the reason is kept for [`Containment::describe`].
    pub fn place(&mut self, pid: u32) {
        self.pid = Some(pid);
        let refused = match &self.kind {
            Kind::Cgroup(dir) => std::fs::write(dir.join("cgroup.procs"), pid.to_string())
                .err()
                .map(|e| (dir.clone(), e)),
            _ => None,
        };
        if let Some((dir, e)) = refused {
            self.fallback_reason = Some(format!(
                "cannot move the command into {}: {e}",
                dir.display()
            ));
            let _ = std::fs::remove_dir(&dir);
            self.kind = if stdin_is_foreground_terminal() {
                Kind::ChildOnly
            } else {
                Kind::ProcessGroup
            };
        }
        if let Kind::ProcessGroup = self.kind {
            // The child is still held before exec, so its group can be set
            // from here.
            // SAFETY: plain syscall on our own child.
            if unsafe { libc::setpgid(pid as i32, pid as i32) } != 0 {
                self.fallback_reason = Some(format!(
                    "{}; no process group of its own either: {}",
                    self.fallback_reason.take().unwrap_or_default(),
                    io::Error::last_os_error()
                ));
                self.kind = Kind::ChildOnly;
            }
        }
        // The command alone has the parent-death signal: no guard needed.
        if !matches!(self.kind, Kind::ChildOnly) {
            if let Err(e) = self.start_guard(pid) {
                tracing::warn!("no guard for the command's tree: {e}");
            }
        }
    }

    /// One line for the user: how the tree is held, and what escapes.
    pub fn describe(&self) -> String {
        let why = self
            .fallback_reason
            .as_deref()
            .map(|r| format!(" (no cgroup: {r})"))
            .unwrap_or_default();
        match &self.kind {
            Kind::Cgroup(dir) => format!("the command runs in cgroup {}", dir.display()),
            Kind::ProcessGroup => format!(
                "the command runs in a process group of its own{why}: a process that leaves it (setsid, setpgid) is not stopped with it"
            ),
            Kind::ChildOnly => format!(
                "only the command itself is stopped with memleak{why}, not the processes it starts (memleak runs in the foreground of a terminal, where the command must share its process group)"
            ),
        }
    }

    /// Short name for the recording's metadata.
    pub fn name(&self) -> &'static str {
        match self.kind {
            Kind::Cgroup(_) => "cgroup",
            Kind::ProcessGroup => "process-group",
            Kind::ChildOnly => "child-only",
        }
    }

    /// Whether the tree is held as a whole (not the command alone).
    pub fn is_fallback(&self) -> bool {
        self.fallback_reason.is_some()
    }

    /// SIGKILLs every process of the tree still held; returns how many
    /// were in it when that can be told (the cgroup's count).
    pub fn kill_tree(&self) -> Option<usize> {
        let pid = self.pid?;
        match &self.kind {
            Kind::Cgroup(dir) => {
                let n = procs_in(dir);
                let _ = std::fs::write(dir.join("cgroup.kill"), "1");
                Some(n)
            }
            Kind::ProcessGroup => {
                // SAFETY: plain syscall; the group is the command's own.
                unsafe { libc::kill(-(pid as i32), libc::SIGKILL) };
                None
            }
            Kind::ChildOnly => {
                // SAFETY: plain syscall on our own child (maybe a zombie).
                unsafe { libc::kill(pid as i32, libc::SIGKILL) };
                None
            }
        }
    }

    /// Kills what the command left running once it has been reaped, and
    /// says how many when that is known.
    pub fn kill_leftovers(&self) -> Option<usize> {
        match &self.kind {
            Kind::Cgroup(_) | Kind::ProcessGroup => self.kill_tree(),
            // The pid may be reused by now: never signal it.
            Kind::ChildOnly => None,
        }
    }

    /// Forks the guard: it blocks on the pipe, and on end-of-file (memleak
    /// gone without saying "done") kills the tree and removes the cgroup.
    fn start_guard(&mut self, pid: u32) -> io::Result<()> {
        let mut fds = [0; 2];
        // SAFETY: pipe2 fills the two fds.
        if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: fresh fds we own.
        let (r, w) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
        // Everything the guard needs is built before the fork: it may not
        // allocate after it (memleak is multi-threaded).
        let (kill_path, events_path, dir_path) = match &self.kind {
            Kind::Cgroup(dir) => (
                Some(cpath(&dir.join("cgroup.kill"))?),
                Some(cpath(&dir.join("cgroup.events"))?),
                Some(cpath(dir)?),
            ),
            _ => (None, None, None),
        };
        let pgroup = matches!(self.kind, Kind::ProcessGroup);
        let reexec = GUARD_EXEC.load(Ordering::Relaxed);
        let name = c"memleak-guard";
        let exe = c"/proc/self/exe";
        let guard_argv: Vec<CString> = {
            let mut a = vec![
                CString::new("memleak-guard").unwrap(),
                CString::new(GUARD_ARG).unwrap(),
            ];
            match &self.kind {
                Kind::Cgroup(dir) => {
                    a.push(CString::new("cgroup").unwrap());
                    a.push(cpath(dir)?);
                }
                Kind::ProcessGroup => {
                    a.push(CString::new("pgroup").unwrap());
                    a.push(CString::new(pid.to_string()).unwrap());
                }
                Kind::ChildOnly => {}
            }
            a
        };
        let mut guard_ptrs: Vec<*const libc::c_char> =
            guard_argv.iter().map(|c| c.as_ptr()).collect();
        guard_ptrs.push(std::ptr::null());
        // SAFETY: the child only makes async-signal-safe calls on memory
        // prepared before the fork, then _exits.
        let g = unsafe { libc::fork() };
        if g < 0 {
            return Err(io::Error::last_os_error());
        }
        if g == 0 {
            unsafe {
                // Hold nothing of memleak's (eBPF programs, the recording,
                // the pipe's write end): only the pipe's read end, as fd 3
                // (dup2 clears close-on-exec).
                let mut rfd = r.as_raw_fd();
                if rfd != GUARD_FD && libc::dup2(rfd, GUARD_FD) == GUARD_FD {
                    rfd = GUARD_FD;
                }
                if rfd == GUARD_FD {
                    libc::fcntl(rfd, libc::F_SETFD, 0);
                }
                if rfd > 0 {
                    libc::syscall(libc::SYS_close_range, 0u32, (rfd - 1) as u32, 0u32);
                }
                libc::syscall(libc::SYS_close_range, (rfd + 1) as u32, u32::MAX, 0u32);
                // Ignored signals stay ignored across exec. Stop signals are
                // for memleak: the guard must outlive it.
                for sig in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP, libc::SIGQUIT] {
                    libc::signal(sig, libc::SIG_IGN);
                }
                if reexec && rfd == GUARD_FD {
                    libc::execv(exe.as_ptr(), guard_ptrs.as_ptr());
                }
                // No exec: this copy does the job.
                libc::prctl(libc::PR_SET_NAME, name.as_ptr() as libc::c_ulong, 0, 0, 0);
                let mut b = 0u8;
                let n = loop {
                    let n = libc::read(rfd, (&mut b as *mut u8).cast(), 1);
                    if n >= 0 || *libc::__errno_location() != libc::EINTR {
                        break n;
                    }
                };
                if n == 1 {
                    libc::_exit(0);
                }
                if let (Some(k), Some(ev), Some(d)) = (&kill_path, &events_path, &dir_path) {
                    let fd = libc::open(k.as_ptr(), libc::O_WRONLY | libc::O_CLOEXEC);
                    if fd >= 0 {
                        libc::write(fd, b"1".as_ptr().cast(), 1);
                        libc::close(fd);
                    }
                    // rmdir fails while the cgroup is populated: wait for
                    // the kernel to finish the kill (bounded, 10 s).
                    for _ in 0..1000 {
                        if libc::rmdir(d.as_ptr()) == 0 || !guard_populated(ev) {
                            libc::rmdir(d.as_ptr());
                            break;
                        }
                        let ts = libc::timespec {
                            tv_sec: 0,
                            tv_nsec: 10_000_000,
                        };
                        libc::nanosleep(&ts, std::ptr::null_mut());
                    }
                } else if pgroup {
                    libc::kill(-(pid as i32), libc::SIGKILL);
                }
                libc::_exit(0);
            }
        }
        drop(r);
        self.guard_pipe = Some(w);
        self.guard_pid = Some(g as u32);
        Ok(())
    }

    /// After the command and its tree are gone: removes the cgroup and
    /// dismisses the guard.
    pub fn finish(&mut self) {
        if let Kind::Cgroup(dir) = &self.kind {
            remove_when_empty(dir, EMPTY_WAIT);
        }
        if let Some(w) = self.guard_pipe.take() {
            // SAFETY: one byte from a local buffer to our pipe.
            unsafe { libc::write(w.as_raw_fd(), b"x".as_ptr().cast(), 1) };
        }
        if let Some(g) = self.guard_pid.take() {
            let mut st = 0;
            // SAFETY: reaping our own child, which exits on the byte.
            unsafe { libc::waitpid(g as i32, &mut st, 0) };
        }
    }
}

impl Drop for Containment {
    fn drop(&mut self) {
        // An error return between spawn and the end of the recording: the
        // tree must not outlive it either.
        if self.guard_pipe.is_some() {
            self.kill_leftovers();
        }
        if self.pid.is_none() {
            if let Kind::Cgroup(dir) = &self.kind {
                let _ = std::fs::remove_dir(dir);
            }
        }
        self.finish();
    }
}

/// The re-executed guard: waits for memleak's "done" byte or its death on
/// fd 3, and in the second case kills the tree. Returns the exit code.
pub fn guard_main(args: &[std::ffi::OsString]) -> i32 {
    // SAFETY: naming ourselves; a NUL-terminated literal.
    unsafe {
        libc::prctl(
            libc::PR_SET_NAME,
            c"memleak-guard".as_ptr() as libc::c_ulong,
            0,
            0,
            0,
        )
    };
    let mut b = 0u8;
    let n = loop {
        // SAFETY: reading one byte into a local from our inherited fd.
        let n = unsafe { libc::read(GUARD_FD, (&mut b as *mut u8).cast(), 1) };
        if n >= 0 || io::Error::last_os_error().kind() != io::ErrorKind::Interrupted {
            break n;
        }
    };
    if n == 1 {
        return 0;
    }
    if n < 0 {
        // No pipe from memleak (fd 3 not open: not started by memleak):
        // nothing says a recorder died, so kill nothing.
        return 2;
    }
    match (args.first().and_then(|a| a.to_str()), args.get(1)) {
        (Some("cgroup"), Some(dir)) => {
            let dir = Path::new(dir);
            let _ = std::fs::write(dir.join("cgroup.kill"), "1");
            remove_when_empty(dir, EMPTY_WAIT);
        }
        (Some("pgroup"), Some(pgid)) => {
            if let Some(pgid) = pgid.to_str().and_then(|p| p.parse::<i32>().ok()) {
                // SAFETY: plain syscall on the command's process group.
                unsafe { libc::kill(-pgid, libc::SIGKILL) };
            }
        }
        _ => {}
    }
    0
}

fn cpath(p: &Path) -> io::Result<CString> {
    CString::new(p.as_os_str().as_bytes())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "NUL in a path"))
}

/// `populated 1` in cgroup.events, read without allocating (guard side).
unsafe fn guard_populated(events: &CString) -> bool {
    let fd = libc::open(events.as_ptr(), libc::O_RDONLY | libc::O_CLOEXEC);
    if fd < 0 {
        return false;
    }
    let mut buf = [0u8; 256];
    let n = libc::read(fd, buf.as_mut_ptr().cast(), buf.len());
    libc::close(fd);
    n > 0 && events_say_populated(&buf[..n as usize])
}

/// Whether cgroup.events text says `populated 1`.
fn events_say_populated(text: &[u8]) -> bool {
    text.split(|&b| b == b'\n').any(|l| l == b"populated 1")
}

/// Number of processes directly in `dir` (the command's cgroup; it may
/// hold sub-cgroups the command made, which `cgroup.kill` covers too).
fn procs_in(dir: &Path) -> usize {
    let direct = std::fs::read_to_string(dir.join("cgroup.procs"))
        .map(|t| t.lines().count())
        .unwrap_or(0);
    let populated = std::fs::read(dir.join("cgroup.events"))
        .map(|t| events_say_populated(&t))
        .unwrap_or(false);
    if direct == 0 && populated {
        1
    } else {
        direct
    }
}

/// Removes a cgroup once the kernel has emptied it (bounded wait).
fn remove_when_empty(dir: &Path, wait: Duration) {
    let deadline = Instant::now() + wait;
    loop {
        match std::fs::remove_dir(dir) {
            Ok(()) => return,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return,
            Err(e) if Instant::now() >= deadline => {
                tracing::warn!("cannot remove cgroup {}: {e}", dir.display());
                return;
            }
            Err(_) => std::thread::sleep(Duration::from_millis(10)),
        }
    }
}

/// Whether memleak reads a terminal on which its group is in the
/// foreground (where the command must stay in that group).
fn stdin_is_foreground_terminal() -> bool {
    // SAFETY: plain syscalls on fd 0.
    unsafe { libc::isatty(0) == 1 && libc::tcgetpgrp(0) == libc::getpgrp() }
}

/// Creates `memleak-<pid>-<n>` in memleak's own cgroup v2, after removing
/// empty ones whose memleak is gone. The error says why not.
fn make_cgroup() -> Result<PathBuf, String> {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let own = crate::sysinfo::cgroup_of(std::process::id())
        .ok_or_else(|| "memleak is in no cgroup v2 (cgroup v1 only?)".to_string())?;
    if !crate::sysinfo::is_cgroup2_dir(&own) {
        return Err(format!(
            "{} is not a cgroup v2 directory (cgroup v2 not mounted?)",
            own.display()
        ));
    }
    remove_stale(&own);
    let dir = own.join(format!(
        "{PREFIX}{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    ));
    std::fs::create_dir(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    if !dir.join("cgroup.kill").exists() {
        let _ = std::fs::remove_dir(&dir);
        return Err("this kernel has no cgroup.kill (Linux 5.14 or later)".to_string());
    }
    Ok(dir)
}

/// Removes the empty `memleak-<pid>-<n>` cgroups of memleaks that no longer
/// run (killed before they could clean up). One whose memleak still runs,
/// or that still holds processes, is left alone.
fn remove_stale(own: &Path) {
    let Ok(entries) = std::fs::read_dir(own) else {
        return;
    };
    for e in entries.flatten() {
        let name = e.file_name();
        let Some(owner) = name
            .to_str()
            .and_then(|n| n.strip_prefix(PREFIX))
            .and_then(|rest| rest.split('-').next())
            .and_then(|p| p.parse::<i32>().ok())
        else {
            continue;
        };
        // SAFETY: signal 0 only checks that the process exists.
        let alive = unsafe { libc::kill(owner, 0) } == 0
            || io::Error::last_os_error().raw_os_error() == Some(libc::EPERM);
        if owner as u32 != std::process::id() && !alive {
            match std::fs::remove_dir(e.path()) {
                Ok(()) => tracing::debug!("removed stale cgroup {}", e.path().display()),
                Err(err) => tracing::debug!("stale cgroup {} kept: {err}", e.path().display()),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cgroup_events_populated_is_read_from_its_line() {
        assert!(events_say_populated(b"populated 1\nfrozen 0\n"));
        assert!(!events_say_populated(b"populated 0\nfrozen 0\n"));
        assert!(!events_say_populated(b""));
    }
}
