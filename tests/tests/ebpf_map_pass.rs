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

/// A dirty queue far smaller than the changing processes: the marks that
/// find it full are counted (`dirty_map_full`) and the full pass they
/// trigger still reports every process's growth.
///
/// The kernel's rss counters are per-CPU counters whose shared value (what
/// the eBPF side reads) lags by up to the counter batch (32 pages here) per
/// CPU, so a child grows far more than that: 16 pages every 50 ms, 4 MiB in
/// all, and at least a quarter of it must be seen.
#[test]
fn full_dirty_queue_falls_back_to_the_full_pass() {
    require_ebpf!();
    const KIDS: usize = 64;
    const STEPS: usize = 64;
    const STEP_PAGES: usize = 16;
    const PAGES: usize = STEPS * STEP_PAGES;
    let mut kids = Vec::new();
    // The children grow once the sampler is loaded: each reads one byte
    // from this pipe, written then. Not end-of-file: the other test of this
    // file forks children meanwhile, which inherit the write end and hold
    // it open until that test ends.
    let mut go = [0i32; 2];
    // SAFETY: a two-int array for pipe(2).
    assert_eq!(unsafe { libc::pipe(go.as_mut_ptr()) }, 0);
    for _ in 0..KIDS {
        // SAFETY: the child only makes system calls and touches its own
        // mapping (no allocation after fork).
        let pid = unsafe { libc::fork() };
        if pid == 0 {
            unsafe {
                libc::close(go[1]);
                let mut b = 0u8;
                libc::read(go[0], (&mut b as *mut u8).cast(), 1);
                let len = PAGES * 4096;
                let p = libc::mmap(
                    std::ptr::null_mut(),
                    len,
                    libc::PROT_READ | libc::PROT_WRITE,
                    libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                    -1,
                    0,
                ) as *mut u8;
                let nap = libc::timespec {
                    tv_sec: 0,
                    tv_nsec: 50_000_000,
                };
                for i in 0..PAGES {
                    if i % STEP_PAGES == 0 {
                        libc::nanosleep(&nap, std::ptr::null_mut());
                    }
                    if !p.is_null() && p as isize != -1 {
                        p.add(i * 4096).write_volatile(1);
                    }
                }
                loop {
                    libc::pause();
                }
            }
        }
        assert!(pid > 0, "fork: {}", std::io::Error::last_os_error());
        kids.push(pid as u32);
    }
    let loaded = EbpfSampler::with_dirty_queue(
        Scope::Tree(kids.clone()),
        std::process::id(),
        8192,
        EbpfHook::default(),
        4,
    );
    // One byte per child (64 fit in the pipe's buffer): their reads return.
    let bytes = [1u8; KIDS];
    // SAFETY: our end of the pipe and a buffer of KIDS bytes.
    let wrote = unsafe { libc::write(go[1], bytes.as_ptr().cast(), KIDS) };
    assert_eq!(wrote, KIDS as isize, "{}", std::io::Error::last_os_error());
    // SAFETY: our end of the pipe.
    unsafe { libc::close(go[1]) };
    let result = loaded.map(|mut s| {
        // Per child: anon RSS at its first and last observation.
        let mut seen: std::collections::HashMap<u32, (u64, u64)> = Default::default();
        let until = std::time::Instant::now() + std::time::Duration::from_millis(5500);
        while std::time::Instant::now() < until {
            for o in s.snapshot().expect("snapshot") {
                let e = seen
                    .entry(o.id.pid)
                    .or_insert((o.mem.rss_anon, o.mem.rss_anon));
                e.1 = o.mem.rss_anon;
            }
            std::thread::sleep(std::time::Duration::from_millis(250));
        }
        let full = s
            .counters()
            .iter()
            .find(|(n, _)| *n == "dirty_map_full")
            .map_or(0, |(_, v)| *v);
        (seen, full)
    });
    for &k in &kids {
        // SAFETY: our own children.
        unsafe { libc::kill(k as i32, libc::SIGKILL) };
    }
    for &k in &kids {
        // SAFETY: our own children.
        unsafe { libc::waitpid(k as i32, std::ptr::null_mut(), 0) };
    }
    let (seen, full) = result.expect("load");
    assert!(full > 0, "a 4-entry queue overflowed: counted");
    for &k in &kids {
        let (first, last) = seen.get(&k).copied().unwrap_or_default();
        // Each child touched PAGES pages over 3.2 s, all before the end;
        // the first sight of it comes at the first full pass, a second in.
        assert!(
            last >= first + (PAGES as u64 / 4) * 4096,
            "child {k}: anon RSS {first} -> {last}: growth reported despite the full queue"
        );
    }
}
