//! rss_stat events whose mm is not the current task's (the classic
//! tracepoint's curr = 0) are attributed to the mm's owner, not dropped.
//!
//! Provoked with process_vm_writev: this test process writes into pages of a
//! child that never touches them, so the faults happen in the child's mm
//! while the current task is the test process. The child sleeps in pause()
//! throughout, so it is also the case of a process that never runs between
//! two snapshots.

use memleak::sample::ebpf::{EbpfHook, EbpfSampler};
use memleak::sample::{Sampler, Scope};
use memleak_tests::{require_ebpf, MIB};

const SIZE: usize = 32 * MIB as usize;

fn child_rss_anon(s: &mut EbpfSampler, pid: u32, last: &mut u64) -> u64 {
    for o in s.snapshot().unwrap() {
        if o.id.pid == pid {
            *last = o.mem.rss_anon;
        }
    }
    *last
}

/// Writes 32 MiB into a sleeping child's untouched pages from this
/// process, snapshotting before and after with `hook`: (how much the
/// child's rss_anon grew between the two snapshots, foreign-mm events).
fn write_into_sleeping_child(hook: EbpfHook) -> (u64, u64) {
    // SAFETY: a private anonymous mapping, untouched: after fork the child
    // has the same range with no pages present.
    let addr = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            SIZE,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
            -1,
            0,
        )
    };
    assert_ne!(addr, libc::MAP_FAILED);
    // SAFETY: the child only calls async-signal-safe functions.
    let child = unsafe { libc::fork() };
    if child == 0 {
        loop {
            unsafe { libc::pause() };
        }
    }
    let child = child as u32;
    let mut sampler =
        EbpfSampler::with_hook(Scope::Tree(vec![child]), std::process::id(), 1024, hook)
            .expect("load");
    let mut rss = 0;
    let before = child_rss_anon(&mut sampler, child, &mut rss);

    let page = vec![0x5au8; 4096];
    let mut written = 0usize;
    while written < SIZE {
        let local = libc::iovec {
            iov_base: page.as_ptr() as *mut libc::c_void,
            iov_len: page.len(),
        };
        let remote = libc::iovec {
            iov_base: (addr as usize + written) as *mut libc::c_void,
            iov_len: page.len(),
        };
        // SAFETY: writing our buffer into the child's mapping of the same range.
        let n = unsafe { libc::process_vm_writev(child as i32, &local, 1, &remote, 1, 0) };
        assert_eq!(
            n,
            4096,
            "process_vm_writev: {}",
            std::io::Error::last_os_error()
        );
        written += 4096;
    }
    let after = child_rss_anon(&mut sampler, child, &mut rss);
    let foreign = sampler
        .counters()
        .iter()
        .find(|(n, _)| *n == "foreign_mm_rss_events")
        .map(|(_, v)| *v)
        .unwrap_or(0);
    // SAFETY: our own child.
    unsafe {
        libc::kill(child as i32, libc::SIGKILL);
        libc::waitpid(child as i32, std::ptr::null_mut(), 0);
    }
    (after.saturating_sub(before), foreign)
}

#[test]
fn memory_changed_by_another_process_is_attributed_to_its_owner() {
    require_ebpf!();
    let (grew, foreign) = write_into_sleeping_child(EbpfHook::Faults);
    assert!(
        grew >= SIZE as u64 * 9 / 10,
        "the child's rss_anon grew by {} MiB, expected ~32",
        grew / MIB
    );
    assert!(foreign > 0, "the events were seen as foreign-mm changes");
}

/// The `snapshot` hook re-reads every tracked process at each snapshot,
/// so a process that never ran since the change (no switch, no timer tick
/// in it) still shows its current figures at the very next snapshot.
#[test]
fn sleeping_process_changed_by_another_is_current_at_the_next_snapshot() {
    require_ebpf!();
    let (grew, _) = write_into_sleeping_child(EbpfHook::Snapshot);
    assert!(
        grew >= SIZE as u64 * 9 / 10,
        "the sleeping child's rss_anon grew by {} MiB at the next snapshot, expected ~32",
        grew / MIB
    );
}
