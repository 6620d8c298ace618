//! Reads a whole BPF hash map in a few syscalls (`BPF_MAP_LOOKUP_BATCH`,
//! Linux 5.6+), which aya 0.14 does not wrap.
//!
//! aya's iterator costs two syscalls per entry (next key, lookup): 20,000
//! at 10,000 processes. A batch returns up to [`CHUNK`] entries per call.

use std::io;
use std::os::fd::{AsFd, AsRawFd};

use aya::maps::{IterableMap, MapData};
use aya::Pod;

/// Entries asked for per call; the kernel may return fewer.
const CHUNK: usize = 1024;

/// The kernel's own "not supported" errno, which libc does not name.
const ENOTSUPP: i32 = 524;

/// `bpf_cmd::BPF_MAP_LOOKUP_BATCH`.
const BPF_MAP_LOOKUP_BATCH: libc::c_long = 24;

/// The `batch` member of the kernel's `union bpf_attr`.
#[repr(C)]
#[derive(Default)]
struct BatchAttr {
    in_batch: u64,
    out_batch: u64,
    keys: u64,
    values: u64,
    count: u32,
    map_fd: u32,
    elem_flags: u64,
    flags: u64,
}

/// Every (key, value) of `map`, in batches. `Unsupported` when the kernel
/// has no batch operations for this map (the caller then iterates).
pub fn lookup_all<K: Pod, V: Pod, M: IterableMap<K, V>>(map: &M) -> io::Result<Vec<(K, V)>> {
    lookup_all_data::<K, V>(map.map())
}

fn lookup_all_data<K: Pod, V: Pod>(map: &MapData) -> io::Result<Vec<(K, V)>> {
    let fd = map.fd().as_fd().as_raw_fd();
    let mut out = Vec::new();
    let mut chunk = CHUNK;
    // The hash map's batch token is a bucket index (u32); room for more.
    let mut token = [0u64; 2];
    let mut first = true;
    loop {
        // SAFETY: K and V are Pod, so zeroed values are valid.
        let mut keys: Vec<K> = vec![unsafe { std::mem::zeroed() }; chunk];
        let mut values: Vec<V> = vec![unsafe { std::mem::zeroed() }; chunk];
        let mut attr = BatchAttr {
            in_batch: if first { 0 } else { token.as_ptr() as u64 },
            out_batch: token.as_mut_ptr() as u64,
            keys: keys.as_mut_ptr() as u64,
            values: values.as_mut_ptr() as u64,
            count: chunk as u32,
            map_fd: fd as u32,
            ..BatchAttr::default()
        };
        // SAFETY: the buffers hold `count` keys and values of the map's
        // key and value types, and outlive the call.
        let rc = unsafe {
            libc::syscall(
                libc::SYS_bpf,
                BPF_MAP_LOOKUP_BATCH,
                &mut attr as *mut BatchAttr,
                std::mem::size_of::<BatchAttr>(),
            )
        };
        let err = (rc < 0).then(io::Error::last_os_error);
        let got = attr.count as usize;
        out.extend(keys.into_iter().zip(values).take(got));
        match err.as_ref().and_then(io::Error::raw_os_error) {
            None => {}
            // The last batch: what it returned is in `out` already.
            Some(libc::ENOENT) => return Ok(out),
            // One bucket holds more entries than the buffers: grow them
            // and ask for the same batch again.
            Some(libc::ENOSPC) if got == 0 => {
                chunk *= 2;
                continue;
            }
            Some(libc::EINVAL | ENOTSUPP | libc::EOPNOTSUPP) if first => {
                return Err(io::Error::from(io::ErrorKind::Unsupported));
            }
            Some(_) => return Err(err.unwrap_or_else(|| io::Error::other("bpf"))),
        }
        first = false;
    }
}
