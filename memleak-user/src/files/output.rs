//! Writing a user-named output file (report, baseline, man page) safely.
//!
//! A report is written to a new temporary file next to its path (created
//! exclusively, never through a link) and renamed over the path. Chosen
//! over "must not exist" (what `record -o` does for recordings) because
//! reports are meant to be rewritten by every CI run, and over opening with
//! O_NOFOLLOW + O_TRUNC because a rename is atomic (a reader never sees half
//! a report) and replaces whatever sits at the path, a planted link
//! included, instead of writing into it. A link at the path is still
//! refused with an error, so the user learns about it. Paths that are
//! devices or FIFOs (`-o /dev/null`) are written in place: renaming over
//! them would replace the device node.

use std::fs::OpenOptions;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use super::FileError;

/// Who may read an output file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Audience {
    /// Documentation (man pages): everyone, as with `>` (0644).
    Everyone,
    /// Reports and baselines: the owner only (0600), as recordings are.
    /// They hold command lines, which carry tokens and paths as often as
    /// not; the owner can share a report, a reader cannot unread it.
    Owner,
}

impl Audience {
    fn mode(self) -> u32 {
        match self {
            Audience::Everyone => 0o644,
            Audience::Owner => 0o600,
        }
    }
}

/// Writes `data` to `path`, replacing a regular file there, refusing a
/// symbolic link; a new file gets the mode `audience` allows.
pub fn write_output(path: &Path, data: &[u8], audience: Audience) -> Result<(), FileError> {
    let io = |action, error| FileError::Io {
        path: path.to_path_buf(),
        action,
        error,
    };
    match std::fs::symlink_metadata(path) {
        Ok(m) if m.file_type().is_symlink() => {
            return Err(FileError::Symlink {
                path: path.to_path_buf(),
            })
        }
        Ok(m) if m.is_dir() => {
            return Err(FileError::NotRegular {
                path: path.to_path_buf(),
                kind: "directory",
            })
        }
        Ok(m) if !m.is_file() => return write_in_place(path, data),
        _ => {}
    }
    let (tmp, mut file) = create_temp(path, audience.mode()).map_err(|e| io("create it", e))?;
    let written = file
        .write_all(data)
        .and_then(|_| file.sync_all())
        .and_then(|_| std::fs::rename(&tmp, path));
    if let Err(e) = written {
        let _ = std::fs::remove_file(&tmp);
        return Err(io("write it", e));
    }
    Ok(())
}

/// A FIFO or device the user named: opened without following links and
/// without creating anything.
fn write_in_place(path: &Path, data: &[u8]) -> Result<(), FileError> {
    OpenOptions::new()
        .write(true)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)
        .and_then(|mut f| f.write_all(data))
        .map_err(|error| FileError::Io {
            path: path.to_path_buf(),
            action: "write it",
            error,
        })
}

/// `.NAME.PID-N.tmp` beside `path`, created exclusively (never an existing
/// file or link).
fn create_temp(path: &Path, mode: u32) -> std::io::Result<(PathBuf, std::fs::File)> {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let mut n = 0u32;
    loop {
        let tmp = dir.join(format!(".{name}.{}-{n}.tmp", std::process::id()));
        match OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
            .open(&tmp)
        {
            Ok(f) => return Ok((tmp, f)),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists && n < 100 => n += 1,
            Err(e) => return Err(e),
        }
    }
}

/// Makes sure `dir` is a directory memleak may write outputs into: created
/// when missing, refused when it is a symbolic link or not a directory.
/// Files inside are then written with [`write_output`].
pub fn create_output_dir(dir: &Path) -> Result<(), FileError> {
    match std::fs::symlink_metadata(dir) {
        Ok(m) if m.file_type().is_symlink() => Err(FileError::Symlink {
            path: dir.to_path_buf(),
        }),
        Ok(m) if m.is_dir() => Ok(()),
        Ok(_) => Err(FileError::NotDirectory {
            path: dir.to_path_buf(),
        }),
        Err(_) => std::fs::create_dir_all(dir).map_err(|error| FileError::Io {
            path: dir.to_path_buf(),
            action: "create the directory",
            error,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replaces_regular_files_and_refuses_links() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("r.json");
        write_output(&p, b"one", Audience::Owner).unwrap();
        write_output(&p, b"two", Audience::Owner).unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"two");
        let victim = dir.path().join("victim");
        std::fs::write(&victim, b"keep").unwrap();
        let link = dir.path().join("link.json");
        std::os::unix::fs::symlink(&victim, &link).unwrap();
        let e = write_output(&link, b"x", Audience::Owner).unwrap_err();
        assert!(matches!(e, FileError::Symlink { .. }), "{e}");
        assert_eq!(std::fs::read(&victim).unwrap(), b"keep");
        assert_eq!(
            std::fs::read_dir(dir.path()).unwrap().count(),
            3,
            "no temp file left"
        );
    }

    #[test]
    fn reports_are_private_and_man_pages_public() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        let report = dir.path().join("r.json");
        // Replacing a world-readable file makes it private too.
        std::fs::write(&report, b"old").unwrap();
        std::fs::set_permissions(&report, std::fs::Permissions::from_mode(0o644)).unwrap();
        write_output(&report, b"{}", Audience::Owner).unwrap();
        assert_eq!(mode(&report), 0o600);
        let man = dir.path().join("memleak.1");
        write_output(&man, b".TH", Audience::Everyone).unwrap();
        // What the umask leaves of 0644 (read without changing it: tests
        // run in parallel threads).
        let umask = std::fs::read_to_string("/proc/self/status")
            .ok()
            .and_then(|s| {
                let v = s.lines().find_map(|l| l.strip_prefix("Umask:"))?;
                u32::from_str_radix(v.trim(), 8).ok()
            })
            .unwrap_or(0o022);
        assert_eq!(mode(&man), 0o644 & !umask);
    }

    #[test]
    fn devices_are_written_in_place() {
        write_output(Path::new("/dev/null"), b"x", Audience::Owner).unwrap();
        let m = std::fs::symlink_metadata("/dev/null").unwrap();
        assert!(std::os::unix::fs::FileTypeExt::is_char_device(
            &m.file_type()
        ));
    }

    #[test]
    fn output_dirs_are_created_and_links_refused() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().join("a/b");
        create_output_dir(&d).unwrap();
        assert!(d.is_dir());
        let link = dir.path().join("l");
        std::os::unix::fs::symlink(&d, &link).unwrap();
        assert!(matches!(
            create_output_dir(&link),
            Err(FileError::Symlink { .. })
        ));
    }
}
