//! What a sampled address means, captured while its process lives.
//!
//! A process's addresses mean something only through its mappings, and
//! /proc/PID/maps is gone the moment it exits: a short test process (or
//! the last test of a session) may exit before its stacks are named. So
//! each sampled process's maps are read once when its first sample is
//! seen (again when a later stack holds an address they do not cover, a
//! library loaded since), and each frame is kept as *file + offset in
//! that file*, which can be named at any later time from the file alone.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

/// A mapped file, as the kernel identified it when it was sampled.
#[derive(Debug)]
pub struct MappedFile {
    pub path: PathBuf,
    /// Device and inode from the maps line.
    pub dev: u64,
    pub ino: u64,
    /// Read from the mapped file itself (`/proc/PID/map_files`) when
    /// first seen: a file replaced at the same path since (a rebuild, an
    /// upgrade) has another, and its names would be wrong.
    pub build_id: Option<Vec<u8>>,
    /// The mapped file itself, opened through `/proc/PID/map_files`, for
    /// when its path does not lead to it by the time it is named: deleted
    /// or replaced since, or the path of another mount namespace (a
    /// container).
    pub held: Option<std::fs::File>,
}

/// One file per device and inode.
impl PartialEq for MappedFile {
    fn eq(&self, other: &Self) -> bool {
        (self.dev, self.ino) == (other.dev, other.ino)
    }
}

impl Eq for MappedFile {}

impl MappedFile {
    /// Where to read it from now: its path while that is still the file
    /// (separate debug info is found next to it), else the file held, else
    /// nowhere.
    pub fn source(&self) -> Option<PathBuf> {
        if unchanged(self) {
            return Some(self.path.clone());
        }
        use std::os::fd::AsRawFd;
        let f = self.held.as_ref()?;
        Some(PathBuf::from(format!("/proc/self/fd/{}", f.as_raw_fd())))
    }
}

/// Files held open at most (see [`MappedFile::held`]), so that a machine
/// of containers cannot exhaust the descriptors.
const HELD_MAX: usize = 256;

/// Where one sampled address was.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Place {
    /// In a mapped file, at this offset into it.
    File { file: Arc<MappedFile>, offset: u64 },
    /// Anonymous memory (JIT code: named from `/tmp/perf-PID.map`), the
    /// vDSO, or not mapped when its process was read.
    Other,
}

#[derive(Clone, Debug, PartialEq, Eq)]
struct Mapping {
    start: u64,
    end: u64,
    offset: u64,
    /// None: anonymous, or a pseudo-file (`[vdso]`, `[heap]`).
    file: Option<Arc<MappedFile>>,
}

/// One process's executable mappings, sorted by address.
#[derive(Debug, Default)]
pub struct Snapshot {
    maps: Vec<Mapping>,
}

impl Snapshot {
    /// The place of `addr`, or None when no mapping covers it.
    pub fn place(&self, addr: u64) -> Option<Place> {
        let i = self
            .maps
            .partition_point(|m| m.start <= addr)
            .checked_sub(1)?;
        let m = &self.maps[i];
        if addr >= m.end {
            return None;
        }
        Some(match &m.file {
            Some(file) => Place::File {
                file: Arc::clone(file),
                offset: addr - m.start + m.offset,
            },
            None => Place::Other,
        })
    }
}

/// The maps of every process seen, and the files they map (one
/// [`MappedFile`] per device and inode, its build ID read once).
#[derive(Default)]
pub struct Maps {
    files: HashMap<(u64, u64), Arc<MappedFile>>,
    held: usize,
}

impl Maps {
    /// Reads the executable mappings of `pid` now; None when it is gone.
    pub fn snapshot(&mut self, pid: u32) -> Option<Snapshot> {
        let text = std::fs::read_to_string(format!("/proc/{pid}/maps")).ok()?;
        let mut maps: Vec<Mapping> = text
            .lines()
            .filter_map(parse_line)
            .filter(|l| l.exec)
            .map(|l| {
                let file = l.path.map(|path| {
                    let (files, held) = (&mut self.files, &mut self.held);
                    Arc::clone(files.entry((l.dev, l.ino)).or_insert_with(|| {
                        let exact = format!("/proc/{pid}/map_files/{:x}-{:x}", l.start, l.end);
                        let build_id =
                            build_id(&exact).or_else(|| (!l.deleted).then(|| build_id(path))?);
                        let kept = match *held >= HELD_MAX {
                            true => None,
                            false => std::fs::File::open(&exact).ok(),
                        };
                        *held += usize::from(kept.is_some());
                        Arc::new(MappedFile {
                            path: path.into(),
                            dev: l.dev,
                            ino: l.ino,
                            build_id,
                            held: kept,
                        })
                    }))
                });
                Mapping {
                    start: l.start,
                    end: l.end,
                    offset: l.offset,
                    file,
                }
            })
            .collect();
        maps.sort_by_key(|m| m.start);
        Some(Snapshot { maps })
    }
}

fn build_id(path: &str) -> Option<Vec<u8>> {
    blazesym::helper::read_elf_build_id(path)
        .ok()
        .flatten()
        .map(|b| b.to_vec())
}

/// Whether `file` at its path is still the file that was mapped (a
/// program rebuilt or a library upgraded since would be named wrongly).
pub fn unchanged(file: &MappedFile) -> bool {
    match &file.build_id {
        Some(id) => build_id(&file.path.to_string_lossy()).as_ref() == Some(id),
        None => same_file(&file.path.to_string_lossy(), file.dev, file.ino),
    }
}

/// Whether `path` is the file maps listed as device `dev`, inode `ino`.
fn same_file(path: &str, dev: u64, ino: u64) -> bool {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(path).is_ok_and(|m| m.ino() == ino && dev_of(m.dev()) == dev)
}

/// `st_dev` as maps writes it: `major:minor` packed as `major << 20 | minor`.
fn dev_of(st_dev: u64) -> u64 {
    (u64::from(libc::major(st_dev)) << 20) | u64::from(libc::minor(st_dev))
}

struct Line<'a> {
    start: u64,
    end: u64,
    exec: bool,
    offset: u64,
    dev: u64,
    ino: u64,
    path: Option<&'a str>,
    /// The file was deleted since it was mapped.
    deleted: bool,
}

/// `start-end perms offset major:minor inode [path]`.
fn parse_line(line: &str) -> Option<Line<'_>> {
    let mut f = line.splitn(6, ' ');
    let (start, end) = f.next()?.split_once('-')?;
    let perms = f.next()?;
    let offset = u64::from_str_radix(f.next()?, 16).ok()?;
    let (major, minor) = f.next()?.split_once(':')?;
    let ino: u64 = f.next()?.parse().ok()?;
    let path = f.next().map(str::trim_start).filter(|p| p.starts_with('/'));
    let (path, deleted) = match path.and_then(|p| p.strip_suffix(" (deleted)")) {
        Some(p) => (Some(p), true),
        None => (path, false),
    };
    Some(Line {
        start: u64::from_str_radix(start, 16).ok()?,
        end: u64::from_str_radix(end, 16).ok()?,
        exec: perms.as_bytes().get(2) == Some(&b'x'),
        offset,
        dev: (u64::from_str_radix(major, 16).ok()? << 20) | u64::from_str_radix(minor, 16).ok()?,
        ino,
        path: path.filter(|_| ino != 0),
        deleted,
    })
}

/// A `/tmp/perf-PID.map` (JIT runtimes: `START SIZE name`, hex), which
/// stays after the process is gone.
pub struct PerfMap {
    /// (start, end, name), in file order.
    entries: Vec<(u64, u64, String)>,
}

impl PerfMap {
    pub fn read(pid: u32) -> Option<PerfMap> {
        let text = std::fs::read_to_string(format!("/tmp/perf-{pid}.map")).ok()?;
        let entries = text
            .lines()
            .filter_map(|l| {
                let mut f = l.splitn(3, ' ');
                let start = u64::from_str_radix(f.next()?.trim_start_matches("0x"), 16).ok()?;
                let size = u64::from_str_radix(f.next()?.trim_start_matches("0x"), 16).ok()?;
                Some((start, start.saturating_add(size), f.next()?.to_string()))
            })
            .collect();
        Some(PerfMap { entries })
    }

    pub fn name(&self, addr: u64) -> Option<&str> {
        // Later lines win: a runtime may reuse code memory.
        self.entries
            .iter()
            .rev()
            .find(|(start, end, _)| (*start..*end).contains(&addr))
            .map(|(_, _, name)| name.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_maps_line_gives_the_file_and_its_offset() {
        let l = parse_line(
            "7f0a1c028000-7f0a1c1bd000 r-xp 00028000 fe:01 1837341                    /usr/lib/x86_64-linux-gnu/libc.so.6",
        )
        .unwrap();
        assert_eq!(
            (l.start, l.end, l.offset),
            (0x7f0a1c028000, 0x7f0a1c1bd000, 0x28000)
        );
        assert!(l.exec);
        assert_eq!((l.dev, l.ino), ((0xfe << 20) | 1, 1837341));
        assert_eq!(l.path, Some("/usr/lib/x86_64-linux-gnu/libc.so.6"));
        let anon = parse_line("7ffd5a5f0000-7ffd5a5f2000 r-xp 00000000 00:00 0  [vdso]").unwrap();
        assert_eq!(anon.path, None);
        let gone = parse_line("5600-5700 r-xp 00001000 fe:01 42 /tmp/a.out (deleted)").unwrap();
        assert_eq!((gone.path, gone.deleted), (Some("/tmp/a.out"), true));
    }

    /// This process's own code: the place of a function's address is in
    /// the test binary, and the snapshot outlives nothing it needs.
    #[test]
    fn an_address_of_this_process_is_placed_in_its_file() {
        let mut maps = Maps::default();
        let snap = maps.snapshot(std::process::id()).unwrap();
        let addr = an_address_of_this_process_is_placed_in_its_file as *const () as usize as u64;
        match snap.place(addr) {
            Some(Place::File { file, .. }) => {
                assert_eq!(file.path, std::env::current_exe().unwrap());
                assert!(unchanged(&file));
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(snap.place(8), None);
    }
}
