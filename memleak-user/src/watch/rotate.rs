//! `memleak watch`'s directory of rotated recordings: creating it private,
//! and pruning old recordings.
//!
//! Watch often runs as root and deletes files there, so the directory must
//! be one only its user can write to, and pruning looks only at files watch
//! wrote: owned by this user and with a recording's header. Another user's
//! file named like a recording is neither counted nor deleted.

use std::os::unix::fs::{DirBuilderExt, MetadataExt};
use std::path::{Path, PathBuf};

/// Why `watch`'s directory cannot be used or listed.
#[derive(Debug, thiserror::Error)]
pub enum RotateError {
    #[error(
        "{path}: cannot create the directory: {}",
        crate::files::explain(error)
    )]
    Create {
        path: PathBuf,
        /// Not a `#[source]`: [`explain`](crate::files::explain) already
        /// says what it means, the OS wording would repeat it.
        error: std::io::Error,
    },
    #[error("{path} is not a directory; give --dir a directory (created when missing)")]
    NotDirectory { path: PathBuf },
    #[error("{path} is writable by other users (mode {mode:o}), who could plant or swap recordings there: use a private directory (chmod 700 {path}) or another --dir")]
    Shared { path: PathBuf, mode: u32 },
    #[error("{path} belongs to another user (uid {owner}), who could plant or swap recordings there: use a directory of your own or another --dir")]
    Foreign { path: PathBuf, owner: u32 },
    #[error("{path}: cannot list the recordings: {}", crate::files::explain(error))]
    List {
        path: PathBuf,
        /// Not a `#[source]`: [`explain`](crate::files::explain) already
        /// says what it means, the OS wording would repeat it.
        error: std::io::Error,
    },
}

fn euid() -> u32 {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() }
}

/// Creates `dir` (mode 0700, whatever the umask) when missing; refuses an
/// existing one that another user owns or may write to.
pub fn prepare_dir(dir: &Path) -> Result<(), RotateError> {
    let path = || dir.to_path_buf();
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|error| RotateError::Create {
            path: path(),
            error,
        })?;
    let meta = std::fs::metadata(dir).map_err(|error| RotateError::Create {
        path: path(),
        error,
    })?;
    if !meta.is_dir() {
        return Err(RotateError::NotDirectory { path: path() });
    }
    if meta.uid() != euid() {
        return Err(RotateError::Foreign {
            path: path(),
            owner: meta.uid(),
        });
    }
    let mode = meta.mode() & 0o7777;
    if mode & 0o022 != 0 {
        return Err(RotateError::Shared { path: path(), mode });
    }
    Ok(())
}

/// The recordings of `dir` that watch wrote (regular files owned by this
/// user, with a recording's header), oldest first by name (names start
/// with the UTC start time).
pub fn own_recordings(dir: &Path) -> Result<Vec<PathBuf>, RotateError> {
    let me = euid();
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|error| RotateError::List {
            path: dir.to_path_buf(),
            error,
        })?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "memleak"))
        .filter(|p| {
            // symlink_metadata: a link is never one of ours.
            std::fs::symlink_metadata(p).is_ok_and(|m| m.is_file() && m.uid() == me)
        })
        .filter(|p| crate::store::is_recording(p))
        .collect();
    files.sort();
    Ok(files)
}

/// Deletes all but the newest `keep` of watch's own recordings in `dir`
/// (with their WAL and shared-memory files). Returns what was deleted.
pub fn prune(dir: &Path, keep: usize) -> Result<Vec<PathBuf>, RotateError> {
    let files = own_recordings(dir)?;
    let old = files.len().saturating_sub(keep);
    let mut gone = Vec::new();
    for f in &files[..old] {
        for suffix in ["", "-wal", "-shm"] {
            let mut p = f.clone().into_os_string();
            p.push(suffix);
            let _ = std::fs::remove_file(PathBuf::from(p));
        }
        gone.push(f.clone());
    }
    Ok(gone)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    /// A minimal file with a recording's header (SQLite magic and
    /// memleak's application id), one page long.
    fn fake_recording(path: &Path) {
        let mut h = vec![0u8; 512];
        h[..16].copy_from_slice(b"SQLite format 3\0");
        h[16..18].copy_from_slice(&512u16.to_be_bytes());
        h[68..72].copy_from_slice(&0x4D4C_524Bu32.to_be_bytes());
        std::fs::write(path, h).unwrap();
    }

    #[test]
    fn prune_keeps_the_newest_of_its_own() {
        let dir = tempfile::tempdir().unwrap();
        let name = |d: u32| format!("memleak-1970010{d}-000000.memleak");
        for d in 1..=4 {
            fake_recording(&dir.path().join(name(d)));
        }
        std::fs::write(dir.path().join(format!("{}-wal", name(1))), b"x").unwrap();
        std::fs::write(dir.path().join("notes.txt"), b"x").unwrap();
        // Named like the newest recording, but not one.
        std::fs::write(dir.path().join("memleak-29990101-000000.memleak"), b"x").unwrap();
        let gone = prune(dir.path(), 2).unwrap();
        assert_eq!(gone.len(), 2);
        let left: Vec<_> = own_recordings(dir.path())
            .unwrap()
            .iter()
            .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        assert_eq!(left, [name(3), name(4)]);
        assert!(!dir.path().join(format!("{}-wal", name(1))).exists());
        assert!(dir.path().join("notes.txt").exists());
        assert!(dir.path().join("memleak-29990101-000000.memleak").exists());
    }

    #[test]
    fn the_directory_is_private() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().join("a/b");
        prepare_dir(&d).unwrap();
        assert_eq!(std::fs::metadata(&d).unwrap().mode() & 0o777, 0o700);
        std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o770)).unwrap();
        let e = prepare_dir(&d).unwrap_err();
        assert!(matches!(e, RotateError::Shared { mode: 0o770, .. }), "{e}");
    }
}
