//! `memleak-workload`: small, predictable memory workloads for the demo and the
//! end-to-end tests.
//!
//! Every byte this program allocates is made resident by writing one byte per
//! page, so RSS (not only the virtual size) follows the requested shape.
//! It prints nothing unless something goes wrong (and `daemonize`, which
//! prints the grandchild's pid).

use std::io::Write;
use std::process::exit;
use std::time::{Duration, Instant};

use clap::{Args, Parser, Subcommand};

const MIB: usize = 1024 * 1024;
const KIB: usize = 1024;
/// How often the growing workloads allocate the next step.
const STEP: Duration = Duration::from_millis(20);

fn fail(msg: &str) -> ! {
    eprintln!("memleak-workload: {msg}");
    exit(1);
}

fn page_size() -> usize {
    // SAFETY: sysconf has no preconditions.
    let p = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    if p > 0 {
        p as usize
    } else {
        4096
    }
}

fn mib_to_bytes(mib: f64) -> usize {
    (mib * MIB as f64).round() as usize
}

/// Writes one byte in every page of `[ptr, ptr + len)` so the kernel backs it.
///
/// # Safety
/// `ptr` must be valid for writes of `len` bytes.
unsafe fn touch(ptr: *mut u8, len: usize, value: u8) {
    let page = page_size();
    let mut off = 0;
    while off < len {
        std::ptr::write_volatile(ptr.add(off), value);
        off += page;
    }
    if len > 0 {
        std::ptr::write_volatile(ptr.add(len - 1), value);
    }
    std::hint::black_box(ptr);
}

/// A heap block from `malloc`, made resident. Freed on drop unless leaked.
struct Block {
    ptr: *mut u8,
    len: usize,
}

impl Block {
    fn new(len: usize) -> Block {
        let len = len.max(1);
        // SAFETY: plain malloc; the result is checked for NULL.
        let ptr = unsafe { libc::malloc(len) } as *mut u8;
        if ptr.is_null() {
            fail(&format!("malloc of {len} bytes failed"));
        }
        let block = Block { ptr, len };
        block.touch(1);
        block
    }

    fn touch(&self, value: u8) {
        // SAFETY: `ptr` is a live malloc block of `len` bytes.
        unsafe { touch(self.ptr, self.len, value) }
    }
}

impl Drop for Block {
    fn drop(&mut self) {
        // SAFETY: `ptr` came from malloc and is freed once.
        unsafe { libc::free(self.ptr.cast()) }
    }
}

/// Allocates exactly `total` bytes, spread evenly over `duration`, in blocks
/// of at most `chunk` bytes. The blocks are leaked: the memory stays until exit.
fn grow(total: usize, duration: Duration, chunk: Option<usize>) {
    let page = page_size();
    let secs = duration.as_secs_f64();
    let chunk = match chunk {
        Some(c) => c.max(1),
        // One STEP's worth, rounded up to whole pages.
        None if secs > 0.0 => {
            let per_step = total as f64 * STEP.as_secs_f64() / secs;
            ((per_step as usize).div_ceil(page) * page).max(page)
        }
        None => total.max(1),
    };
    let start = Instant::now();
    let mut done = 0usize;
    loop {
        let elapsed = start.elapsed().as_secs_f64();
        let due = if secs > 0.0 && elapsed < secs {
            (total as f64 * elapsed / secs) as usize
        } else {
            total
        };
        // Catch up with the schedule (at most one block ahead of it).
        while done < due.min(total) {
            let n = chunk.min(total - done);
            std::mem::forget(Block::new(n));
            done += n;
        }
        if done >= total {
            break;
        }
        let left = duration.saturating_sub(start.elapsed());
        std::thread::sleep(STEP.min(left).max(Duration::from_millis(1)));
    }
    // Keep to the requested duration even when the last block came early.
    if let Some(rest) = duration.checked_sub(start.elapsed()) {
        std::thread::sleep(rest);
    }
}

fn secs(x: f64) -> Duration {
    Duration::from_secs_f64(x)
}

fn cmd_leak(o: &LeakArgs) {
    let rate = o.rate_mib;
    let seconds = o.seconds;
    let chunk = o.chunk_kib.map(|k| (k * KIB as f64) as usize);
    grow(mib_to_bytes(rate * seconds), secs(seconds), chunk);
}

fn cmd_grow_exact(o: &GrowExactArgs) {
    let mib = o.mib;
    let seconds = o.seconds;
    grow(mib_to_bytes(mib), secs(seconds), None);
    std::thread::sleep(Duration::from_millis(500));
}

fn cmd_stable(o: &StableArgs) {
    let bytes = mib_to_bytes(o.mib);
    let duration = secs(o.seconds);
    let block = Block::new(bytes);
    let start = Instant::now();
    let mut value = 2u8;
    while start.elapsed() < duration {
        block.touch(value);
        value = value.wrapping_add(1);
        std::thread::sleep(Duration::from_millis(10));
    }
    // Held until exit, so the recorded shape stays flat to the end.
    std::mem::forget(block);
}

fn cmd_short(o: &ShortArgs) {
    let ms = o.ms;
    let block = Block::new(mib_to_bytes(o.mib));
    std::thread::sleep(Duration::from_millis(ms));
    std::mem::forget(block);
}

fn cmd_fork_many(o: &ForkManyArgs) {
    let count = o.count;
    let bytes = mib_to_bytes(o.mib);
    for i in 0..count {
        // SAFETY: this process is single-threaded; the child only allocates
        // and calls _exit.
        match unsafe { libc::fork() } {
            -1 => fail(&format!(
                "fork #{i} failed: {}",
                std::io::Error::last_os_error()
            )),
            0 => {
                std::mem::forget(Block::new(bytes));
                // SAFETY: leave without running the parent's atexit handlers.
                unsafe { libc::_exit(0) }
            }
            child => wait_ok(child, &format!("child #{i}")),
        }
    }
}

/// Waits for `pid`, failing unless it exited with status 0.
fn wait_ok(pid: libc::pid_t, what: &str) {
    let mut status = 0;
    loop {
        // SAFETY: `status` is a valid out-pointer.
        let r = unsafe { libc::waitpid(pid, &mut status, 0) };
        if r == pid {
            break;
        }
        let err = std::io::Error::last_os_error();
        if err.kind() != std::io::ErrorKind::Interrupted {
            fail(&format!("waitpid for {what} ({pid}) failed: {err}"));
        }
    }
    if !(libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0) {
        fail(&format!("{what} ({pid}) failed, wait status {status:#x}"));
    }
}

fn cmd_daemonize(o: &DaemonizeArgs) {
    let rate = o.mib_per_s;
    let seconds = o.seconds;
    let mut fds = [0 as libc::c_int; 2];
    // SAFETY: `fds` has room for two descriptors.
    if unsafe { libc::pipe(fds.as_mut_ptr()) } != 0 {
        fail(&format!("pipe: {}", std::io::Error::last_os_error()));
    }
    let (rd, wr) = (fds[0], fds[1]);
    // SAFETY: single-threaded; the children only use async-signal-safe calls
    // until the grandchild owns the whole process.
    match unsafe { libc::fork() } {
        -1 => fail(&format!("fork: {}", std::io::Error::last_os_error())),
        0 => unsafe {
            // Intermediate child: new session, fork the grandchild, report its
            // pid through the pipe, exit so the grandchild is re-parented.
            libc::close(rd);
            libc::setsid();
            let grandchild = libc::fork();
            if grandchild == 0 {
                libc::close(wr);
                detach_stdio();
                grow(mib_to_bytes(rate * seconds), secs(seconds), None);
                libc::_exit(0);
            }
            let code = if grandchild > 0 {
                let bytes = grandchild.to_ne_bytes();
                let n = libc::write(wr, bytes.as_ptr().cast(), bytes.len());
                if n == bytes.len() as isize {
                    0
                } else {
                    1
                }
            } else {
                1
            };
            libc::_exit(code);
        },
        child => {
            // SAFETY: closing our copy of the write end.
            unsafe { libc::close(wr) };
            let mut bytes = [0u8; std::mem::size_of::<libc::pid_t>()];
            // SAFETY: reading into a buffer of the right size.
            let n = unsafe { libc::read(rd, bytes.as_mut_ptr().cast(), bytes.len()) };
            wait_ok(child, "intermediate child");
            if n != bytes.len() as isize {
                fail("could not fork the grandchild");
            }
            let grandchild = libc::pid_t::from_ne_bytes(bytes);
            let mut out = std::io::stdout().lock();
            if writeln!(out, "{grandchild}")
                .and_then(|_| out.flush())
                .is_err()
            {
                fail("cannot write the grandchild pid to stdout");
            }
        }
    }
}

/// Points stdin/stdout/stderr at /dev/null so a daemon does not hold the
/// caller's pipes open.
fn detach_stdio() {
    // SAFETY: plain open/dup2/close on descriptors we own.
    unsafe {
        let fd = libc::open(c"/dev/null".as_ptr(), libc::O_RDWR);
        if fd >= 0 {
            for target in 0..3 {
                libc::dup2(fd, target);
            }
            if fd > 2 {
                libc::close(fd);
            }
        }
    }
}

fn cmd_mmap_touch(o: &MmapTouchArgs) {
    let len = mib_to_bytes(o.mib).max(1);
    let hold = Duration::from_millis(o.hold_ms);
    // SAFETY: anonymous private mapping; the result is checked.
    let ptr = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            len,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
            -1,
            0,
        )
    };
    if ptr == libc::MAP_FAILED {
        fail(&format!(
            "mmap of {len} bytes failed: {}",
            std::io::Error::last_os_error()
        ));
    }
    // SAFETY: the mapping is `len` bytes, readable and writable.
    unsafe { touch(ptr.cast(), len, 1) };
    std::thread::sleep(hold);
    // SAFETY: unmapping exactly what was mapped.
    if unsafe { libc::munmap(ptr, len) } != 0 {
        fail(&format!("munmap: {}", std::io::Error::last_os_error()));
    }
}

/// Anonymous private mapping, touched; unmapped on drop unless leaked.
struct Region {
    ptr: *mut libc::c_void,
    len: usize,
}

impl Region {
    fn new(len: usize) -> Region {
        let len = len.max(1);
        // SAFETY: anonymous private mapping; the result is checked.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        if ptr == libc::MAP_FAILED {
            fail(&format!(
                "mmap of {len} bytes failed: {}",
                std::io::Error::last_os_error()
            ));
        }
        // SAFETY: the mapping is `len` bytes, readable and writable.
        unsafe { touch(ptr.cast(), len, 1) };
        Region { ptr, len }
    }
}

impl Drop for Region {
    fn drop(&mut self) {
        // SAFETY: unmapping exactly what was mapped, once.
        unsafe { libc::munmap(self.ptr, self.len) };
    }
}

// SAFETY: a Region is plain memory owned by one thread at a time.
unsafe impl Send for Region {}

/// splitmix64, for reproducible noise.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    /// Uniform in [0, 1).
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// Leaks `rate` bytes/s in mmap'ed steps while `until` has not passed,
/// calling `each` every step.
fn leak_regions(rate: f64, until: Instant, mut each: impl FnMut()) {
    let start = Instant::now();
    let mut done = 0usize;
    while Instant::now() < until {
        let due = (rate * start.elapsed().as_secs_f64()) as usize;
        if due > done {
            std::mem::forget(Region::new(due - done));
            done = due;
        }
        each();
        std::thread::sleep(STEP);
    }
}

fn cmd_noisy_leak(o: &NoisyLeakArgs) {
    let rate = mib_to_bytes(o.rate_mib) as f64;
    let noise = o.noise_mib;
    let end = Instant::now() + secs(o.seconds);
    let mut rng = Rng(o.seed);
    let mut working: Option<Region> = None;
    let mut last = Instant::now() - Duration::from_secs(1);
    leak_regions(rate, end, || {
        if last.elapsed() >= Duration::from_millis(100) {
            last = Instant::now();
            working = None;
            let len = mib_to_bytes(noise * rng.unit());
            if len > 0 {
                working = Some(Region::new(len));
            }
        }
    });
}

fn cmd_thread_leak(o: &ThreadLeakArgs) {
    let rate = mib_to_bytes(o.rate_mib) as f64;
    let seconds = o.seconds;
    let end = Instant::now() + secs(seconds);
    // Never joined: the process exits while the thread still runs.
    std::thread::spawn(move || leak_regions(rate, end + secs(3600.0), || {}));
    std::thread::sleep(secs(seconds));
    exit(0);
}

fn cmd_sawtooth(o: &SawtoothArgs) {
    let rise = mib_to_bytes(o.rise_mib);
    let keep = mib_to_bytes(o.keep_mib).min(rise);
    let period = o.period_s.max(0.1);
    let end = Instant::now() + secs(o.seconds);
    let steps = ((period / STEP.as_secs_f64()) as usize).max(1);
    let piece = (rise / steps).max(page_size());
    let mut kept: Vec<Region> = Vec::new();
    while Instant::now() < end {
        let cycle = Instant::now();
        let mut young: Vec<Region> = Vec::new();
        for k in 0..steps {
            young.push(Region::new(piece));
            let due = cycle + STEP * (k as u32 + 1);
            if let Some(d) = due.checked_duration_since(Instant::now()) {
                std::thread::sleep(d);
            }
            if Instant::now() >= end {
                return;
            }
        }
        // Collection: everything goes but `keep` bytes (a cyclic leak).
        let mut survivors = 0;
        young.retain(|r| {
            let stay = survivors < keep;
            if stay {
                survivors += r.len;
            }
            stay
        });
        kept.append(&mut young);
    }
}

fn cmd_warmup(o: &WarmupArgs) {
    let grow_s = o.grow_s;
    let seconds = o.seconds;
    grow(mib_to_bytes(o.mib), secs(grow_s), None);
    std::thread::sleep(secs((seconds - grow_s).max(0.0)));
}

fn cmd_cache(o: &CacheArgs) {
    let cap = mib_to_bytes(o.cap_mib);
    let fill = o.fill_mib_per_s;
    let end = Instant::now() + secs(o.seconds);
    let mut rng = Rng(o.seed);
    let mut entries: std::collections::VecDeque<Region> = Default::default();
    let mut held = 0usize;
    while Instant::now() < end {
        // A burst every 100 ms on average 30% of the time, sized so the
        // mean fill rate is `fill`.
        if rng.unit() < 0.3 {
            let len = mib_to_bytes(fill * 0.1 / 0.3 * 2.0 * rng.unit()).max(page_size());
            while held + len > cap {
                match entries.pop_front() {
                    Some(r) => held -= r.len,
                    None => break,
                }
            }
            if held + len <= cap {
                held += len;
                entries.push_back(Region::new(len));
            }
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn cmd_mmap_churn(o: &MmapChurnArgs) {
    let max = mib_to_bytes(o.mib);
    let end = Instant::now() + secs(o.seconds);
    let mut rng = Rng(o.seed);
    let mut regions: Vec<Region> = Vec::new();
    let mut held = 0usize;
    while Instant::now() < end {
        let len = mib_to_bytes(1.0 + 3.0 * rng.unit());
        // Map when below half the maximum (or by chance), else unmap one.
        let map = held + len <= max && (held < max / 2 || rng.unit() < 0.5);
        if map {
            held += len;
            regions.push(Region::new(len));
        } else if !regions.is_empty() {
            let i = (rng.next() % regions.len() as u64) as usize;
            held -= regions.swap_remove(i).len;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn cmd_step(o: &StepArgs) {
    let at = o.at_s;
    let seconds = o.seconds;
    std::thread::sleep(secs(at));
    std::mem::forget(Region::new(mib_to_bytes(o.mib)));
    std::thread::sleep(secs((seconds - at).max(0.0)));
}

fn cmd_children(o: &ChildrenArgs) {
    let count = o.count.max(1);
    let bytes = mib_to_bytes(o.mib);
    let hold = Duration::from_millis(o.ms);
    let every = secs(o.seconds / count as f64);
    for i in 0..count {
        let next = Instant::now() + every;
        // SAFETY: single-threaded; the child allocates, sleeps and _exits.
        match unsafe { libc::fork() } {
            -1 => fail(&format!("fork #{i}: {}", std::io::Error::last_os_error())),
            0 => {
                std::mem::forget(Region::new(bytes));
                std::thread::sleep(hold);
                // SAFETY: leave without the parent's atexit handlers.
                unsafe { libc::_exit(0) }
            }
            child => wait_ok(child, &format!("child #{i}")),
        }
        if let Some(d) = next.checked_duration_since(Instant::now()) {
            std::thread::sleep(d);
        }
    }
}

fn cmd_gchild_leak(o: &GchildLeakArgs) {
    let rate = mib_to_bytes(o.rate_mib) as f64;
    let seconds = o.seconds;
    // SAFETY: single-threaded; children only allocate, sleep, wait, _exit.
    match unsafe { libc::fork() } {
        -1 => fail(&format!("fork: {}", std::io::Error::last_os_error())),
        0 => {
            match unsafe { libc::fork() } {
                -1 => unsafe { libc::_exit(1) },
                0 => {
                    leak_regions(rate, Instant::now() + secs(seconds), || {});
                    unsafe { libc::_exit(0) }
                }
                grandchild => wait_ok(grandchild, "grandchild"),
            }
            unsafe { libc::_exit(0) }
        }
        child => wait_ok(child, "child"),
    }
}

/// Small, predictable memory workloads for the demo and the end-to-end
/// tests. Every byte is made resident (one write per page).
#[derive(Parser)]
#[command(name = "memleak-workload")]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

/// A non-negative, finite number (MiB, seconds, rates).
fn amount(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(x) if x.is_finite() && x >= 0.0 => Ok(x),
        _ => Err(format!("wants a non-negative number, got `{s}`")),
    }
}

/// A number above zero.
fn positive(s: &str) -> Result<f64, String> {
    match amount(s)? {
        x if x * KIB as f64 >= 1.0 => Ok(x),
        _ => Err("must be > 0".into()),
    }
}

#[derive(Subcommand)]
enum Cmd {
    /// Grow at R MiB/s for S seconds (never freed), then exit.
    Leak(LeakArgs),
    /// Allocate M MiB once, then keep touching it for S seconds.
    Stable(StableArgs),
    /// Grow by exactly N MiB over S seconds, hold 0.5 s, exit.
    GrowExact(GrowExactArgs),
    /// Allocate N MiB, sleep M ms, exit.
    Short(ShortArgs),
    /// Fork C children one after another; each touches N MiB and exits.
    ForkMany(ForkManyArgs),
    /// Double-fork; the re-parented grandchild leaks R MiB/s for S seconds; prints the grandchild's pid and exits at once.
    Daemonize(DaemonizeArgs),
    /// Mmap N MiB anonymous memory, touch it, hold M ms, munmap, exit.
    MmapTouch(MmapTouchArgs),
    /// Leak R MiB/s under a working set redrawn in [0, A] MiB every 100 ms.
    NoisyLeak(NoisyLeakArgs),
    /// A spawned thread leaks R MiB/s and is never joined; exit after S.
    ThreadLeak(ThreadLeakArgs),
    /// Every P s: grow U MiB, then free all of it but K MiB (K = 0: a garbage collector's sawtooth; K > 0: the minima rise, a cyclic leak).
    Sawtooth(SawtoothArgs),
    /// Grow M MiB over G s, then hold it until S.
    Warmup(WarmupArgs),
    /// Fill in random bursts at about F MiB/s up to C MiB, then evict and refill at random, staying at the cap.
    Cache(CacheArgs),
    /// Map and unmap 1..4 MiB regions at random, total held near M/2 (<= M).
    MmapChurn(MmapChurnArgs),
    /// Allocate M MiB at once at A s, hold until S.
    Step(StepArgs),
    /// Fork C children spread over S s; each touches N MiB for M ms.
    Children(ChildrenArgs),
    /// A child forks a grandchild that leaks R MiB/s for S s; all wait.
    GchildLeak(GchildLeakArgs),
}

#[derive(Args)]
struct LeakArgs {
    #[arg(long, value_parser = amount)]
    rate_mib: f64,
    #[arg(long, value_parser = amount)]
    seconds: f64,
    /// Allocation size of each step (default: what the rate needs per 20 ms).
    #[arg(long, value_parser = positive)]
    chunk_kib: Option<f64>,
}

#[derive(Args)]
struct StableArgs {
    #[arg(long, value_parser = amount)]
    mib: f64,
    #[arg(long, value_parser = amount)]
    seconds: f64,
}

#[derive(Args)]
struct GrowExactArgs {
    #[arg(long, value_parser = amount)]
    mib: f64,
    #[arg(long, value_parser = amount)]
    seconds: f64,
}

#[derive(Args)]
struct ShortArgs {
    #[arg(long)]
    ms: u64,
    #[arg(long, value_parser = amount)]
    mib: f64,
}

#[derive(Args)]
struct ForkManyArgs {
    #[arg(long)]
    count: u64,
    #[arg(long, value_parser = amount)]
    mib: f64,
}

#[derive(Args)]
struct DaemonizeArgs {
    #[arg(long, value_parser = amount)]
    mib_per_s: f64,
    #[arg(long, value_parser = amount)]
    seconds: f64,
}

#[derive(Args)]
struct MmapTouchArgs {
    #[arg(long, value_parser = amount)]
    mib: f64,
    #[arg(long)]
    hold_ms: u64,
}

#[derive(Args)]
struct NoisyLeakArgs {
    #[arg(long, value_parser = amount)]
    rate_mib: f64,
    #[arg(long, value_parser = amount)]
    noise_mib: f64,
    #[arg(long, value_parser = amount)]
    seconds: f64,
    /// Seed of the noise (the same seed, the same run).
    #[arg(long, default_value_t = 1)]
    seed: u64,
}

#[derive(Args)]
struct ThreadLeakArgs {
    #[arg(long, value_parser = amount)]
    rate_mib: f64,
    #[arg(long, value_parser = amount)]
    seconds: f64,
}

#[derive(Args)]
struct SawtoothArgs {
    #[arg(long, value_parser = amount)]
    rise_mib: f64,
    #[arg(long, value_parser = amount)]
    keep_mib: f64,
    #[arg(long, value_parser = amount)]
    period_s: f64,
    #[arg(long, value_parser = amount)]
    seconds: f64,
}

#[derive(Args)]
struct WarmupArgs {
    #[arg(long, value_parser = amount)]
    mib: f64,
    #[arg(long, value_parser = amount)]
    grow_s: f64,
    #[arg(long, value_parser = amount)]
    seconds: f64,
}

#[derive(Args)]
struct CacheArgs {
    #[arg(long, value_parser = amount)]
    cap_mib: f64,
    #[arg(long, value_parser = amount)]
    fill_mib_per_s: f64,
    #[arg(long, value_parser = amount)]
    seconds: f64,
    /// Seed of the noise (the same seed, the same run).
    #[arg(long, default_value_t = 1)]
    seed: u64,
}

#[derive(Args)]
struct MmapChurnArgs {
    #[arg(long, value_parser = amount)]
    mib: f64,
    #[arg(long, value_parser = amount)]
    seconds: f64,
    /// Seed of the noise (the same seed, the same run).
    #[arg(long, default_value_t = 1)]
    seed: u64,
}

#[derive(Args)]
struct StepArgs {
    #[arg(long, value_parser = amount)]
    mib: f64,
    #[arg(long, value_parser = amount)]
    at_s: f64,
    #[arg(long, value_parser = amount)]
    seconds: f64,
}

#[derive(Args)]
struct ChildrenArgs {
    #[arg(long)]
    count: u64,
    #[arg(long, value_parser = amount)]
    mib: f64,
    #[arg(long)]
    ms: u64,
    #[arg(long, value_parser = amount)]
    seconds: f64,
}

#[derive(Args)]
struct GchildLeakArgs {
    #[arg(long, value_parser = amount)]
    rate_mib: f64,
    #[arg(long, value_parser = amount)]
    seconds: f64,
}

fn main() {
    match Cli::parse().cmd {
        Cmd::Leak(o) => cmd_leak(&o),
        Cmd::Stable(o) => cmd_stable(&o),
        Cmd::GrowExact(o) => cmd_grow_exact(&o),
        Cmd::Short(o) => cmd_short(&o),
        Cmd::ForkMany(o) => cmd_fork_many(&o),
        Cmd::Daemonize(o) => cmd_daemonize(&o),
        Cmd::MmapTouch(o) => cmd_mmap_touch(&o),
        Cmd::NoisyLeak(o) => cmd_noisy_leak(&o),
        Cmd::ThreadLeak(o) => cmd_thread_leak(&o),
        Cmd::Sawtooth(o) => cmd_sawtooth(&o),
        Cmd::Warmup(o) => cmd_warmup(&o),
        Cmd::Cache(o) => cmd_cache(&o),
        Cmd::MmapChurn(o) => cmd_mmap_churn(&o),
        Cmd::Step(o) => cmd_step(&o),
        Cmd::Children(o) => cmd_children(&o),
        Cmd::GchildLeak(o) => cmd_gchild_leak(&o),
    }
}
