//! The sampler's whole-map reads (batched, several calls for a large map)
//! see every entry.

use memleak::sample::ebpf::{EbpfHook, EbpfSampler};
use memleak::sample::{Sampler, Scope};
use memleak_tests::require_ebpf;

/// More than one batch (1,024 entries per call).
const CHILDREN: usize = 2500;

#[test]
fn process_map_entries_count_every_tracked_process() {
    require_ebpf!();
    let mut kids = Vec::new();
    for _ in 0..CHILDREN {
        // SAFETY: the child only calls async-signal-safe functions.
        let pid = unsafe { libc::fork() };
        if pid == 0 {
            loop {
                unsafe { libc::pause() };
            }
        }
        assert!(pid > 0, "fork: {}", std::io::Error::last_os_error());
        kids.push(pid as u32);
    }
    let loaded = EbpfSampler::with_hook(
        Scope::Tree(kids.clone()),
        std::process::id(),
        8192,
        EbpfHook::default(),
    );
    let entries = loaded.map(|mut s| {
        s.counters()
            .iter()
            .find(|(n, _)| *n == "procs_map_entries")
            .map(|(_, v)| *v)
    });
    for &k in &kids {
        // SAFETY: our own children.
        unsafe { libc::kill(k as i32, libc::SIGKILL) };
    }
    for &k in &kids {
        // SAFETY: our own children.
        unsafe { libc::waitpid(k as i32, std::ptr::null_mut(), 0) };
    }
    assert_eq!(
        entries.expect("load"),
        Some(CHILDREN as u64),
        "every tracked child is in the map count"
    );
}
