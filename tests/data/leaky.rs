//! The Rust twin of leaky.c: three allocation sites in three named
//! functions, only `leak_site` keeps its memory. Built by
//! tests/tests/locate.rs with `rustc -C force-frame-pointers=yes -g`: the
//! test crate's own binaries cannot be (cargo builds them with the
//! workspace's flags), and the standard library as shipped has no frame
//! pointers, so the writes happen in these functions, not in std.
//!
//! Same layout as leaky.c, for the same reasons: leaked blocks above the
//! mmap threshold (fresh mappings), churning blocks from a heap that is
//! never trimmed (their pages are reused and fault once).

use std::time::Duration;

const LEAK_BLOCK: usize = 256 * 1024;
const CHURN_BLOCK: usize = 64 * 1024;

extern "C" {
    fn mallopt(param: i32, value: i32) -> i32;
}
const M_TRIM_THRESHOLD: i32 = -1;
const M_MMAP_THRESHOLD: i32 = -3;

#[inline(never)]
fn leak_site(kept: &mut Vec<Vec<u8>>) {
    // Zeroed by calloc from a fresh mapping: untouched until written here.
    let mut v = vec![0u8; LEAK_BLOCK];
    let mut i = 0;
    while i < LEAK_BLOCK {
        v[i] = i as u8;
        i += 64;
    }
    kept.push(v);
}

#[inline(never)]
fn churn_site() -> u8 {
    let mut v = vec![0u8; CHURN_BLOCK];
    let mut i = 0;
    while i < CHURN_BLOCK {
        v[i] = 1;
        i += 64;
    }
    v[CHURN_BLOCK / 2]
}

#[inline(never)]
fn scratch_site() -> u8 {
    let mut v = vec![0u8; CHURN_BLOCK / 2];
    let mut i = 0;
    while i < CHURN_BLOCK / 2 {
        v[i] = 2;
        i += 64;
    }
    v[0]
}

fn main() {
    let seconds: u64 = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(3);
    // SAFETY: glibc's mallopt, called before any other thread exists.
    unsafe {
        mallopt(M_TRIM_THRESHOLD, 1 << 30);
        mallopt(M_MMAP_THRESHOLD, 128 * 1024);
    }
    let mut kept = Vec::new();
    let mut sum = 0u8;
    for _ in 0..seconds * 100 {
        leak_site(&mut kept);
        for _ in 0..20 {
            sum = sum.wrapping_add(churn_site()).wrapping_add(scratch_site());
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    std::process::exit(i32::from(sum == 255 && kept.is_empty()));
}
