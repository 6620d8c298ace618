//! Files memleak reads or writes because a user named them: reports,
//! baselines, config and label files.
//!
//! memleak often runs as root, and users point it at shared folders (/tmp,
//! CI workspaces). So an output never goes through a symbolic link planted
//! where the report goes ([`output`]), and an input must be a regular file
//! of bounded size ([`input`]): a FIFO or /dev/zero would otherwise hang
//! memleak or eat the machine's memory.

pub mod input;
pub mod output;

use std::fs::FileType;
use std::os::unix::fs::FileTypeExt;
use std::path::PathBuf;

pub use input::{read_bounded, read_text};
pub use output::{create_output_dir, write_output, Audience};

/// Why an input or output file was refused; says what to do.
#[derive(Debug, thiserror::Error)]
pub enum FileError {
    #[error("{path} is a symbolic link; memleak does not write through links (one planted in a shared folder would redirect the write): remove the link or choose another path")]
    Symlink { path: PathBuf },
    #[error("{path} is not a regular file (it is a {kind}); give the path of a file")]
    NotRegular { path: PathBuf, kind: &'static str },
    #[error("{path} is not a directory; give the path of a directory (created when missing)")]
    NotDirectory { path: PathBuf },
    #[error("{path} is too large ({size} bytes; at most {limit} are read): check that it is the right file")]
    TooLarge {
        path: PathBuf,
        size: u64,
        limit: u64,
    },
    #[error("{path} is not a text file (it is not UTF-8); check that it is the right file")]
    NotText { path: PathBuf },
    #[error("{path}: cannot {action}: {}", explain(error))]
    Io {
        path: PathBuf,
        action: &'static str,
        /// Not a `#[source]`: [`explain`] already
        /// says what it means, the OS wording would repeat it.
        error: std::io::Error,
    },
}

/// What an I/O error means for a user, and what to do about it.
pub fn explain(e: &std::io::Error) -> String {
    use std::io::ErrorKind as K;
    match e.kind() {
        K::NotFound => "no such file or directory; check the path".into(),
        K::PermissionDenied => {
            "permission denied; run memleak as a user who may access it, or fix its permissions"
                .into()
        }
        K::AlreadyExists => "it already exists; remove it or choose another path".into(),
        K::IsADirectory => "it is a directory; give the path of a file".into(),
        K::NotADirectory => "a part of the path is not a directory; check the path".into(),
        K::StorageFull => "no space left on the device; free some space".into(),
        K::ReadOnlyFilesystem => "the file system is read-only; choose another folder".into(),
        _ if e.raw_os_error() == Some(libc::ELOOP) => {
            "too many levels of symbolic links (a link loop?); fix or remove the links".into()
        }
        _ => e.to_string(),
    }
}

/// "FIFO (named pipe)", "directory", ...: what a non-regular file is.
pub fn kind(t: FileType) -> &'static str {
    if t.is_dir() {
        "directory"
    } else if t.is_fifo() {
        "FIFO (named pipe)"
    } else if t.is_char_device() {
        "character device"
    } else if t.is_block_device() {
        "block device"
    } else if t.is_socket() {
        "socket"
    } else if t.is_symlink() {
        "symbolic link"
    } else {
        "regular file"
    }
}
