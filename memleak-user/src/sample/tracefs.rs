//! Tracepoint record layouts from tracefs `format` files.
//!
//! Classic tracepoint records change between kernel versions (fields are
//! added, e.g. `sched_process_exit.group_dead` in 6.16), so field offsets are
//! read from `events/<category>/<name>/format` rather than assumed.

use std::path::{Path, PathBuf};

use super::SampleError;

/// Offset of `field` in a tracepoint `format` file's text.
pub fn field_offset(format: &str, field: &str) -> Option<u64> {
    format.lines().find_map(|line| {
        let line = line.trim();
        let decl = line.strip_prefix("field:")?;
        let (decl, rest) = decl.split_once(';')?;
        // The declaration ends with the field name, possibly followed by an
        // array length: `char comm[16]`, `pid_t pid`.
        let name = decl.rsplit([' ', '*']).next()?;
        let name = name.split('[').next()?;
        if name != field {
            return None;
        }
        let off = rest
            .split(';')
            .find_map(|kv| kv.trim().strip_prefix("offset:"))?;
        off.trim().parse().ok()
    })
}

/// The tracefs mount point of current kernels, and of older set-ups
/// (inside debugfs).
const TRACEFS_DIRS: [&str; 2] = ["/sys/kernel/tracing", "/sys/kernel/debug/tracing"];

/// The tracefs directory in use: the first with an `events/` directory.
fn tracefs_dir() -> Option<PathBuf> {
    TRACEFS_DIRS
        .into_iter()
        .map(PathBuf::from)
        .find(|d| d.join("events").is_dir())
}

/// The tracefs mount to use. Loading the eBPF sampler needs it, so this
/// mounts it on /sys/kernel/tracing when it is missing and we are root:
/// the only place memleak changes the system's mounts, and only to start
/// the sampler the user asked for.
pub fn tracefs_root() -> Result<PathBuf, SampleError> {
    if let Some(d) = tracefs_dir() {
        return Ok(d);
    }
    // tracefs is mode 0700: mounted but unreadable is a missing privilege,
    // not a missing mount, and mounting again would not help.
    for dir in TRACEFS_DIRS {
        if let Err(e) = std::fs::read_dir(dir) {
            if e.kind() == std::io::ErrorKind::PermissionDenied {
                return Err(SampleError::Permission(format!(
                    "{dir} (tracefs, mode 0700) is unreadable: this process lacks CAP_DAC_READ_SEARCH"
                )));
            }
        }
    }
    let how = "mount it with `mount -t tracefs nodev /sys/kernel/tracing`";
    if !crate::sysinfo::is_root() {
        return Err(SampleError::Unsupported(format!(
            "tracefs is not mounted and mounting it needs root; {how}"
        )));
    }
    mount_tracefs().map_err(|e| {
        SampleError::Unsupported(format!(
            "tracefs is not mounted and mounting it failed ({e}); {how}"
        ))
    })?;
    tracefs_dir().ok_or_else(|| {
        SampleError::Unsupported(format!(
            "tracefs was mounted but has no events/ directory; {how}"
        ))
    })
}

fn mount_tracefs() -> std::io::Result<()> {
    const SRC: &std::ffi::CStr = c"nodev";
    const TARGET: &std::ffi::CStr = c"/sys/kernel/tracing";
    const FSTYPE: &std::ffi::CStr = c"tracefs";
    // SAFETY: all strings are NUL-terminated constants; data may be NULL.
    let rc = unsafe {
        libc::mount(
            SRC.as_ptr(),
            TARGET.as_ptr(),
            FSTYPE.as_ptr(),
            0,
            std::ptr::null(),
        )
    };
    if rc != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

/// Whether a tracepoint exists on this kernel.
pub fn has_tracepoint(root: &Path, category: &str, name: &str) -> bool {
    root.join("events").join(category).join(name).is_dir()
}

/// Reads one tracepoint's format file.
pub fn read_format(root: &Path, category: &str, name: &str) -> Result<String, SampleError> {
    let path = root.join("events").join(category).join(name).join("format");
    std::fs::read_to_string(&path).map_err(|source| SampleError::Io {
        path: path.display().to_string(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXIT: &str = "name: sched_process_exit
ID: 369
format:
\tfield:unsigned short common_type;\toffset:0;\tsize:2;\tsigned:0;
\tfield:int common_pid;\toffset:4;\tsize:4;\tsigned:1;

\tfield:char comm[16];\toffset:8;\tsize:16;\tsigned:0;
\tfield:pid_t pid;\toffset:24;\tsize:4;\tsigned:1;
\tfield:int prio;\toffset:28;\tsize:4;\tsigned:1;
\tfield:bool group_dead;\toffset:32;\tsize:1;\tsigned:0;
";

    #[test]
    fn finds_fields_by_name() {
        assert_eq!(field_offset(EXIT, "group_dead"), Some(32));
        assert_eq!(field_offset(EXIT, "pid"), Some(24));
        assert_eq!(field_offset(EXIT, "comm"), Some(8));
        assert_eq!(field_offset(EXIT, "common_pid"), Some(4));
    }

    #[test]
    fn absent_field_is_none() {
        assert_eq!(field_offset(EXIT, "old_pid"), None);
        assert_eq!(field_offset("", "pid"), None);
    }
}
