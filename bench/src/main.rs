//! `memleak-bench`: the workloads `cargo xtask bench` measures memleak with.
//!
//! - `faults --mib N --rounds R`: mmap N MiB, touch every page, munmap, R
//!   times (about one `kmem/rss_stat` event per page);
//! - `malloc --ops N`: N malloc/free pairs of mixed sizes, each block touched;
//! - `pingpong --rounds N`: a parent and a forked child pass one byte back
//!   and forth over two pipes N times, so each round is two context
//!   switches of tracked processes (what the `switch` eBPF hook pays for),
//!   both pinned to CPU 0;
//! - `idle --count N`: N idle child processes (blocked in `pause()`);
//! - `busy --count N --period-ms P`: N children that each allocate, touch
//!   and free 64 KiB–1 MiB every P ms.
//!
//! `faults`, `malloc` and `pingpong` print one JSON line, `{"work_s": ...,
//! "cpu_s": ...}`: the wall time and the CPU time (user + system, the
//! pingpong child included) of the work loop alone (start-up excluded).
//! eBPF programs run in the monitored task's context, so their cost is in
//! its system time; CPU time moves less than wall time when other work
//! competes for the cores. `idle` and `busy` print
//! `ready N` once every child runs, then hold until stdin closes (or a
//! signal); the children die with the parent (`PR_SET_PDEATHSIG`).

use std::io::{Read, Write};
use std::time::Instant;

use clap::Parser;

/// The workloads `cargo xtask bench` measures memleak with.
#[derive(Parser)]
#[command(name = "memleak-bench")]
enum Cmd {
    /// mmap N MiB, touch every page, munmap, R times.
    Faults {
        #[arg(long, default_value_t = 64)]
        mib: u64,
        #[arg(long, default_value_t = 40)]
        rounds: u64,
    },
    /// N malloc/free pairs of mixed sizes, each block touched.
    Malloc {
        #[arg(long, default_value_t = 2_000_000)]
        ops: u64,
    },
    /// Parent and child pass one byte over two pipes N times (CPU 0).
    Pingpong {
        #[arg(long, default_value_t = 200_000)]
        rounds: u64,
    },
    /// N idle children; prints `ready N`, holds until stdin closes.
    Idle {
        #[arg(long, default_value_t = 100)]
        count: u64,
    },
    /// N children allocating, touching and freeing every P ms.
    Busy {
        #[arg(long, default_value_t = 100)]
        count: u64,
        #[arg(long, default_value_t = 50)]
        period_ms: u64,
    },
}

/// A small xorshift generator: deterministic, no dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

const PAGE: usize = 4096;

fn faults(mib: u64, rounds: u64) {
    let len = (mib as usize) << 20;
    let start = Start::now();
    for _ in 0..rounds {
        // SAFETY: anonymous private mapping we own, unmapped below.
        unsafe {
            let p = libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            );
            assert!(p != libc::MAP_FAILED, "mmap failed");
            let b = p.cast::<u8>();
            let mut off = 0;
            while off < len {
                std::ptr::write_volatile(b.add(off), 1);
                off += PAGE;
            }
            libc::munmap(p, len);
        }
    }
    report(start);
}

fn malloc_heavy(ops: u64) {
    const SLOTS: usize = 1024;
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let mut slots: Vec<(*mut u8, usize)> = vec![(std::ptr::null_mut(), 0); SLOTS];
    let start = Start::now();
    for _ in 0..ops {
        let i = rng.below(SLOTS as u64) as usize;
        // 80% small blocks (16 B–1 KiB), 20% large (4 KiB–256 KiB; glibc
        // serves the biggest with mmap, so the address space moves too).
        let size = if rng.below(5) < 4 {
            16 + rng.below(1008) as usize
        } else {
            4096 + rng.below(252 * 1024) as usize
        };
        // SAFETY: blocks come from malloc and go back to free exactly once.
        unsafe {
            libc::free(slots[i].0.cast());
            let p = libc::malloc(size).cast::<u8>();
            assert!(!p.is_null(), "malloc failed");
            let mut off = 0;
            while off < size {
                std::ptr::write_volatile(p.add(off), 1);
                off += PAGE;
            }
            std::ptr::write_volatile(p.add(size - 1), 1);
            slots[i] = (p, size);
        }
    }
    for (p, _) in slots {
        // SAFETY: as above.
        unsafe { libc::free(p.cast()) };
    }
    report(start);
}

fn pingpong(rounds: u64) {
    let mut to_child = [0; 2];
    let mut to_parent = [0; 2];
    // SAFETY: arrays of two fds, as pipe(2) wants.
    unsafe {
        assert_eq!(libc::pipe(to_child.as_mut_ptr()), 0, "pipe failed");
        assert_eq!(libc::pipe(to_parent.as_mut_ptr()), 0, "pipe failed");
    }
    // Both ends on one CPU: every round trip is then two real context
    // switches, and the figure does not swing 10x with where the scheduler
    // happens to place the pair (cross-CPU wake-ups go through idle).
    // SAFETY: a zeroed cpu_set_t with one bit set, for this process; the
    // child inherits it.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(0, &mut set);
        libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set);
    }
    let mut byte = [0u8; 1];
    // SAFETY: single-threaded; the child only reads, writes and exits.
    match unsafe { libc::fork() } {
        -1 => panic!("fork failed"),
        0 => unsafe {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
            // Without closing the inherited write end, read never sees EOF.
            libc::close(to_child[1]);
            libc::close(to_parent[0]);
            while libc::read(to_child[0], byte.as_mut_ptr().cast(), 1) == 1 {
                if libc::write(to_parent[1], byte.as_ptr().cast(), 1) != 1 {
                    break;
                }
            }
            libc::_exit(0);
        },
        child => {
            // SAFETY: the child's ends, unused here.
            unsafe {
                libc::close(to_child[0]);
                libc::close(to_parent[1]);
            }
            let start = Start::now();
            for _ in 0..rounds {
                // SAFETY: our own pipe fds and a one-byte buffer.
                unsafe {
                    assert_eq!(libc::write(to_child[1], byte.as_ptr().cast(), 1), 1);
                    assert_eq!(libc::read(to_parent[0], byte.as_mut_ptr().cast(), 1), 1);
                }
            }
            let wall = start.wall.elapsed();
            // SAFETY: closing our write end ends the child's loop.
            unsafe {
                libc::close(to_child[1]);
                libc::waitpid(child, std::ptr::null_mut(), 0);
            }
            // The child did the other half of the work: count its CPU.
            println!(
                "{{\"work_s\": {:.6}, \"cpu_s\": {:.6}}}",
                wall.as_secs_f64(),
                start.cpu_since() + cpu_s(libc::RUSAGE_CHILDREN)
            );
        }
    }
}

/// When the work loop started: wall clock and this process's CPU time.
struct Start {
    wall: Instant,
    cpu: f64,
}

impl Start {
    fn now() -> Self {
        Start {
            wall: Instant::now(),
            cpu: cpu_s(libc::RUSAGE_SELF),
        }
    }

    fn cpu_since(&self) -> f64 {
        cpu_s(libc::RUSAGE_SELF) - self.cpu
    }
}

/// User + system CPU seconds of `who` (RUSAGE_SELF or RUSAGE_CHILDREN).
fn cpu_s(who: libc::c_int) -> f64 {
    // SAFETY: an all-zero rusage is valid; getrusage fills it.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: a valid `who` and our own struct.
    unsafe { libc::getrusage(who, &mut ru) };
    let s = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    s(ru.ru_utime) + s(ru.ru_stime)
}

fn report(start: Start) {
    println!(
        "{{\"work_s\": {:.6}, \"cpu_s\": {:.6}}}",
        start.wall.elapsed().as_secs_f64(),
        start.cpu_since()
    );
}

/// Forks `count` children running `body`; they die with this process.
fn fleet(count: u64, body: impl Fn(u64)) {
    // SAFETY: getpid has no preconditions.
    let parent = unsafe { libc::getpid() };
    for i in 0..count {
        // SAFETY: single-threaded parent; the child only calls
        // async-signal-safe functions and plain computation before `body`.
        match unsafe { libc::fork() } {
            -1 => {
                eprintln!(
                    "memleak-bench: fork failed after {i} children: {}",
                    std::io::Error::last_os_error()
                );
                std::process::exit(1);
            }
            0 => unsafe {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                if libc::getppid() != parent {
                    libc::_exit(0);
                }
                body(i);
                libc::_exit(0)
            },
            _ => {}
        }
    }
    println!("ready {count}");
    let _ = std::io::stdout().flush();
    // Hold until stdin closes (the bench harness keeps a pipe open).
    let mut sink = [0u8; 64];
    let mut stdin = std::io::stdin();
    while matches!(stdin.read(&mut sink), Ok(n) if n > 0) {}
}

fn idle_child(_: u64) -> ! {
    loop {
        // SAFETY: no preconditions.
        unsafe { libc::pause() };
    }
}

fn busy_child(i: u64, period_ms: u64) -> ! {
    let mut rng = Rng(0x2545_F491_4F6C_DD1D ^ (i + 1).wrapping_mul(0x9E37_79B9));
    let mut ring: [(*mut u8, usize); 4] = [(std::ptr::null_mut(), 0); 4];
    let mut k = 0usize;
    // Spread the children's phases over the period.
    let pause = |ms: u64| {
        let ts = libc::timespec {
            tv_sec: (ms / 1000) as libc::time_t,
            tv_nsec: ((ms % 1000) * 1_000_000) as libc::c_long,
        };
        // SAFETY: valid timespec.
        unsafe { libc::nanosleep(&ts, std::ptr::null_mut()) };
    };
    pause(rng.below(period_ms.max(1)));
    loop {
        let size = 64 * 1024 + rng.below(960 * 1024) as usize;
        // SAFETY: blocks come from malloc and go back to free exactly once.
        unsafe {
            libc::free(ring[k].0.cast());
            let p = libc::malloc(size).cast::<u8>();
            if !p.is_null() {
                let mut off = 0;
                while off < size {
                    std::ptr::write_volatile(p.add(off), 1);
                    off += PAGE;
                }
            }
            ring[k] = (p, size);
        }
        k = (k + 1) % ring.len();
        pause(period_ms);
    }
}

fn main() {
    match Cmd::parse() {
        Cmd::Faults { mib, rounds } => faults(mib, rounds),
        Cmd::Malloc { ops } => malloc_heavy(ops),
        Cmd::Pingpong { rounds } => pingpong(rounds),
        Cmd::Idle { count } => fleet(count, |i| idle_child(i)),
        Cmd::Busy { count, period_ms } => fleet(count, move |i| busy_child(i, period_ms)),
    }
}
