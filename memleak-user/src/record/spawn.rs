//! Starting the monitored command so that it is tracked before it runs.
//!
//! `std::process::Command::spawn` returns only after exec, so a command
//! could fork and allocate before the sampler knew its PID. We fork by hand:
//! the child waits on a pipe until the sampler has registered its PID, then
//! execs. Exec failures come back through a close-on-exec pipe. The
//! command is killed (parent-death signal) if the recorder dies first.

use std::ffi::CString;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

/// Why the command could not be started; `exit_code` says how `run` exits.
#[derive(Debug, thiserror::Error)]
pub enum SpawnError {
    #[error("the command is empty")]
    Empty,
    #[error("the command contains a NUL byte")]
    Nul,
    #[error("cannot start `{cmd}`: {}", exec_reason(source))]
    Exec {
        cmd: String,
        #[source]
        source: io::Error,
    },
    #[error("fork failed: {0}")]
    Fork(#[source] io::Error),
}

/// Why exec failed, in the words a shell would use.
fn exec_reason(e: &io::Error) -> String {
    match e.raw_os_error() {
        Some(libc::ENOENT) => {
            "command not found (no such file, or not in any directory of PATH)".into()
        }
        Some(libc::EACCES) => "permission denied (is it an executable file?)".into(),
        Some(libc::ENOEXEC) => "not an executable format (a script needs a #! line)".into(),
        _ => e.to_string(),
    }
}

impl SpawnError {
    /// The exit code a shell gives for this failure: 127 when the command
    /// was not found, 126 when it was found but could not be executed.
    pub fn shell_code(&self) -> Option<i32> {
        match self {
            SpawnError::Exec { source, .. } => Some(match source.raw_os_error() {
                Some(libc::ENOENT) => 127,
                _ => 126,
            }),
            _ => None,
        }
    }
}

/// A forked child held before exec.
pub struct Gated {
    pub pid: u32,
    release: OwnedFd,
    exec_err: OwnedFd,
    program: String,
}

fn pipe_cloexec() -> io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0; 2];
    // SAFETY: pipe2 fills the two fds.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: fresh fds we own.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

/// Forks a child that will exec `argv`, with our environment plus `env`,
/// once [`Gated::release`] is called.
pub fn spawn_gated(argv: &[String], env: &[(String, String)]) -> Result<Gated, SpawnError> {
    if argv.is_empty() {
        return Err(SpawnError::Empty);
    }
    let cargs: Vec<CString> = argv
        .iter()
        .map(|a| CString::new(a.as_bytes()).map_err(|_| SpawnError::Nul))
        .collect::<Result<_, _>>()?;
    let mut ptrs: Vec<*const libc::c_char> = cargs.iter().map(|c| c.as_ptr()).collect();
    ptrs.push(std::ptr::null());
    // The environment is built before fork: no allocation after it.
    let mut vars: Vec<CString> = std::env::vars_os()
        .filter(|(k, _)| {
            !env.iter()
                .any(|(ek, _)| k.as_encoded_bytes() == ek.as_bytes())
        })
        .filter_map(|(k, v)| {
            let mut kv = k.into_encoded_bytes();
            kv.push(b'=');
            kv.extend_from_slice(v.as_encoded_bytes());
            CString::new(kv).ok()
        })
        .collect();
    for (k, v) in env {
        vars.push(CString::new(format!("{k}={v}")).map_err(|_| SpawnError::Nul)?);
    }
    let mut envp: Vec<*const libc::c_char> = vars.iter().map(|c| c.as_ptr()).collect();
    envp.push(std::ptr::null());
    let (gate_r, gate_w) = pipe_cloexec().map_err(SpawnError::Fork)?;
    let (err_r, err_w) = pipe_cloexec().map_err(SpawnError::Fork)?;

    // SAFETY: getpid has no preconditions.
    let parent = unsafe { libc::getpid() };
    // SAFETY: between fork and exec the child only calls async-signal-safe
    // functions (prctl, getppid, read, write, sigprocmask, execvpe, _exit)
    // on memory prepared before the fork.
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        return Err(SpawnError::Fork(io::Error::last_os_error()));
    }
    if pid == 0 {
        unsafe {
            // Signals we block or catch must not leak into the command.
            let mut set: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut set);
            libc::sigprocmask(libc::SIG_SETMASK, &set, std::ptr::null_mut());
            libc::signal(libc::SIGINT, libc::SIG_DFL);
            libc::signal(libc::SIGTERM, libc::SIG_DFL);
            libc::signal(libc::SIGHUP, libc::SIG_DFL);
            libc::signal(libc::SIGPIPE, libc::SIG_DFL);
            // A recorder killed with SIGKILL cannot stop the command, and an
            // orphan would run on unrecorded: the kernel kills it instead.
            // The signal follows the forking *thread*, so the recorder must
            // fork from a thread that lives as long as the recording (it
            // does: the recording loop's own). If the recorder died before
            // the prctl, nothing would ever signal us: check, and give up.
            libc::prctl(
                libc::PR_SET_PDEATHSIG,
                libc::SIGKILL as libc::c_ulong,
                0,
                0,
                0,
            );
            if libc::getppid() != parent {
                libc::_exit(127);
            }
            let mut b = 0u8;
            libc::read(gate_r.as_raw_fd(), (&mut b as *mut u8).cast(), 1);
            libc::execvpe(ptrs[0], ptrs.as_ptr(), envp.as_ptr());
            let errno = *libc::__errno_location();
            let bytes = errno.to_ne_bytes();
            libc::write(err_w.as_raw_fd(), bytes.as_ptr().cast(), bytes.len());
            libc::_exit(127);
        }
    }
    drop(gate_r);
    drop(err_w);
    Ok(Gated {
        pid: pid as u32,
        release: gate_w,
        exec_err: err_r,
        program: argv[0].clone(),
    })
}

impl Gated {
    /// Lets the child exec; fails if the exec failed (e.g. command not found).
    pub fn release(self) -> Result<u32, SpawnError> {
        let b = [1u8];
        // SAFETY: writing one byte from a local buffer to our pipe.
        unsafe { libc::write(self.release.as_raw_fd(), b.as_ptr().cast(), 1) };
        drop(self.release);
        let mut buf = [0u8; 4];
        // SAFETY: reading into a local buffer; returns 0 (EOF) when exec
        // succeeded and closed the close-on-exec write end.
        let n = unsafe { libc::read(self.exec_err.as_raw_fd(), buf.as_mut_ptr().cast(), 4) };
        if n == 4 {
            let errno = i32::from_ne_bytes(buf);
            // Reap the child that _exit(127)ed.
            let mut status = 0;
            // SAFETY: waiting for our own child.
            unsafe { libc::waitpid(self.pid as i32, &mut status, 0) };
            return Err(SpawnError::Exec {
                cmd: self.program,
                source: io::Error::from_raw_os_error(errno),
            });
        }
        Ok(self.pid)
    }
}

/// Exit status of a waited-for child, shell style: the code, or 128 + signal.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Status(pub i32);

impl Status {
    /// The shell-style status of a raw `waitpid` status.
    pub fn from_wait(status: i32) -> Status {
        if libc::WIFEXITED(status) {
            Status(libc::WEXITSTATUS(status))
        } else if libc::WIFSIGNALED(status) {
            Status(128 + libc::WTERMSIG(status))
        } else {
            Status(status)
        }
    }
    /// Exit code 0.
    pub fn success(&self) -> bool {
        self.0 == 0
    }
}

/// Non-blocking wait: `Some(status)` once the child has exited.
pub fn try_wait(pid: u32) -> io::Result<Option<Status>> {
    let mut status = 0;
    // SAFETY: waiting for our own child without blocking.
    let r = unsafe { libc::waitpid(pid as i32, &mut status, libc::WNOHANG) };
    match r {
        0 => Ok(None),
        r if r < 0 => Err(io::Error::last_os_error()),
        _ => Ok(Some(Status::from_wait(status))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wait(pid: u32) -> Status {
        loop {
            if let Some(s) = try_wait(pid).unwrap() {
                return s;
            }
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
    }

    #[test]
    fn runs_command_with_extra_env_and_reports_exit_code() {
        let g = spawn_gated(
            &["sh".into(), "-c".into(), "exit $X".into()],
            &[("X".into(), "7".into())],
        )
        .unwrap();
        let pid = g.release().unwrap();
        assert_eq!(wait(pid), Status(7));
    }

    #[test]
    fn missing_program_is_a_clear_error() {
        let g = spawn_gated(&["/nonexistent/memleak-test".into()], &[]).unwrap();
        let err = g.release().unwrap_err();
        assert!(
            err.to_string()
                .contains("cannot start `/nonexistent/memleak-test`: command not found"),
            "{err}"
        );
        assert_eq!(err.shell_code(), Some(127));
    }

    #[test]
    fn signal_death_maps_to_128_plus_signal() {
        let g = spawn_gated(&["sh".into(), "-c".into(), "kill -9 $$".into()], &[]).unwrap();
        let pid = g.release().unwrap();
        assert_eq!(wait(pid), Status(128 + 9));
    }
}
