//! The first 100 bytes of a recording (SQLite's database header), read
//! before SQLite opens the file so a damaged or foreign file gets a precise
//! diagnosis: SQLite alone reports a truncated file as "not a database".

use std::io::Read;
use std::path::Path;

use super::schema::APPLICATION_ID;

const MAGIC: &[u8; 16] = b"SQLite format 3\0";
const HEADER_LEN: usize = 100;

/// What the header says about a file (or its WAL: see [`classify`]).
#[derive(Debug, PartialEq, Eq)]
pub enum Header {
    /// A memleak recording whose size matches its header, or a file with
    /// a WAL, which only SQLite can judge.
    Memleak,
    /// A memleak recording (or the start of one) cut short.
    Truncated { len: u64, expected: u64 },
    /// A WAL-mode database whose file holds no schema yet and has no WAL
    /// beside it: a recording killed before its first checkpoint, copied
    /// without its WAL (where all its data is).
    MissingWal,
    /// An SQLite database of another program.
    OtherSqlite,
    /// Not an SQLite database at all.
    NotSqlite,
}

/// Reads the header of the regular file at `path` (`len` bytes long).
pub fn read(path: &Path, len: u64) -> std::io::Result<Header> {
    let mut head = Vec::with_capacity(HEADER_LEN);
    std::fs::File::open(path)?
        .take(HEADER_LEN as u64)
        .read_to_end(&mut head)?;
    Ok(classify(&head, len, has_wal(path)))
}

/// Whether `path` is a memleak recording by its header (`watch` prunes
/// only those).
pub fn is_recording(path: &Path) -> bool {
    std::fs::metadata(path)
        .and_then(|m| read(path, m.len()))
        .is_ok_and(|h| h == Header::Memleak)
}

fn has_wal(path: &Path) -> bool {
    let mut wal = path.as_os_str().to_owned();
    wal.push("-wal");
    std::fs::metadata(wal).is_ok_and(|m| m.len() > 0)
}

fn be32(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

fn classify(head: &[u8], len: u64, wal: bool) -> Header {
    let n = head.len().min(MAGIC.len());
    if head[..n] != MAGIC[..n] {
        return Header::NotSqlite;
    }
    if head.len() < HEADER_LEN {
        return Header::Truncated {
            len,
            expected: HEADER_LEN as u64,
        };
    }
    // With a WAL (a recorder is running or was killed) the file's header
    // may lag behind the WAL, even lack the application id written at
    // creation: SQLite reads the WAL, and the reader checks then.
    if wal {
        return Header::Memleak;
    }
    let wal_mode = head[18] == 2;
    let no_schema = be32(head, 40) == 0;
    if i64::from(be32(head, 68)) != APPLICATION_ID {
        return if wal_mode && no_schema {
            Header::MissingWal
        } else {
            Header::OtherSqlite
        };
    }
    // Page size (1 stands for 65536) times the page count, which is valid
    // when the "version valid for" field matches the change counter.
    let page_size = match u16::from_be_bytes([head[16], head[17]]) {
        1 => 65_536,
        p => u64::from(p),
    };
    let pages = u64::from(be32(head, 28));
    let expected = page_size * pages;
    if be32(head, 92) == be32(head, 24) && len < expected {
        return Header::Truncated { len, expected };
    }
    Header::Memleak
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(app: u32, page: u16, pages: u32) -> Vec<u8> {
        let mut h = vec![0u8; HEADER_LEN];
        h[..16].copy_from_slice(MAGIC);
        h[16..18].copy_from_slice(&page.to_be_bytes());
        h[28..32].copy_from_slice(&pages.to_be_bytes());
        h[68..72].copy_from_slice(&app.to_be_bytes());
        h
    }

    #[test]
    fn headers_are_classified() {
        let ours = header(APPLICATION_ID as u32, 4096, 3);
        assert_eq!(classify(&ours, 3 * 4096, false), Header::Memleak);
        assert_eq!(
            classify(&ours, 4096, false),
            Header::Truncated {
                len: 4096,
                expected: 3 * 4096
            }
        );
        assert_eq!(classify(&ours, 4096, true), Header::Memleak);
        assert!(matches!(
            classify(&ours[..40], 40, false),
            Header::Truncated { .. }
        ));
        assert!(matches!(
            classify(&ours[..5], 5, false),
            Header::Truncated { .. }
        ));
        assert_eq!(
            classify(&header(7, 4096, 1), 4096, false),
            Header::OtherSqlite
        );
        assert_eq!(classify(b"hello", 5, false), Header::NotSqlite);
        let mut bare = header(0, 4096, 1);
        bare[18] = 2;
        assert_eq!(classify(&bare, 4096, false), Header::MissingWal);
        assert_eq!(classify(&bare, 4096, true), Header::Memleak);
    }
}
