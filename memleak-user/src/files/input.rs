//! Reading a user-named input file: a regular file, at most a given size.

use std::fs::OpenOptions;
use std::io::Read;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use super::{kind, FileError};

/// Reads `path` whole when it is a regular file of at most `limit` bytes.
pub fn read_bounded(path: &Path, limit: u64) -> Result<Vec<u8>, FileError> {
    let io = |action, error| FileError::Io {
        path: path.to_path_buf(),
        action,
        error,
    };
    // Non-blocking: opening a FIFO without a writer would wait forever.
    // Reads of a regular file ignore the flag.
    let file = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)
        .map_err(|e| io("open it", e))?;
    let meta = file.metadata().map_err(|e| io("read it", e))?;
    if !meta.is_file() {
        return Err(FileError::NotRegular {
            path: path.to_path_buf(),
            kind: kind(meta.file_type()),
        });
    }
    let too_large = |size| FileError::TooLarge {
        path: path.to_path_buf(),
        size,
        limit,
    };
    if meta.len() > limit {
        return Err(too_large(meta.len()));
    }
    let mut buf = Vec::with_capacity(meta.len() as usize);
    // One byte more than allowed tells a file that grew while read.
    file.take(limit + 1)
        .read_to_end(&mut buf)
        .map_err(|e| io("read it", e))?;
    if buf.len() as u64 > limit {
        return Err(too_large(buf.len() as u64));
    }
    Ok(buf)
}

/// [`read_bounded`] for UTF-8 text.
pub fn read_text(path: &Path, limit: u64) -> Result<String, FileError> {
    String::from_utf8(read_bounded(path, limit)?).map_err(|_| FileError::NotText {
        path: path.to_path_buf(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn regular_files_within_the_limit_are_read() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a.toml");
        std::fs::write(&p, "x = 1\n").unwrap();
        assert_eq!(read_text(&p, 6).unwrap(), "x = 1\n");
        assert!(matches!(
            read_text(&p, 5),
            Err(FileError::TooLarge { size: 6, .. })
        ));
        std::fs::write(&p, b"\xff\xfe").unwrap();
        assert!(matches!(read_text(&p, 10), Err(FileError::NotText { .. })));
    }

    #[test]
    fn devices_and_folders_are_refused() {
        let e = read_bounded(Path::new("/dev/zero"), 10).unwrap_err();
        assert!(e.to_string().contains("character device"), "{e}");
        let dir = tempfile::tempdir().unwrap();
        let e = read_bounded(dir.path(), 10).unwrap_err();
        assert!(e.to_string().contains("not a regular file"), "{e}");
    }
}
