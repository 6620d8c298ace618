//! rss_stat events whose mm is not the current task's (the classic
//! tracepoint's curr = 0) are attributed to the mm's owner, not dropped.
//!
//! Provoked with process_vm_writev: this test process writes into pages of a
//! child that never touches them, so the faults happen in the child's mm
//! while the current task is the test process.

use memleak::sample::ebpf::EbpfSampler;
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

#[test]
fn memory_changed_by_another_process_is_attributed_to_its_owner() {
    require_ebpf!();
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
        EbpfSampler::new(Scope::Tree(vec![child]), std::process::id(), 1024).expect("load");
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
    let grew = after.saturating_sub(before);
    assert!(
        grew >= SIZE as u64 * 9 / 10,
        "the child's rss_anon grew by {} MiB, expected ~32",
        grew / MIB
    );
    assert!(foreign > 0, "the events were seen as foreign-mm changes");
}
