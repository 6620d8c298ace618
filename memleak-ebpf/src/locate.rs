//! `memleak locate`: where a suspect process first touches new memory.
//!
//! A perf-event program on the software `page-faults` event, opened by
//! userspace for the target process's threads only (never system-wide), so
//! no other process pays anything. The event fires once every N faults
//! (the sample period, chosen by userspace); each run records the user
//! stack of the faulting thread in `LOCATE_STACKS` and counts it in
//! `LOCATE_COUNTS`. A sampled anonymous fault stands for about N pages of
//! newly touched memory, so counts become estimated bytes in userspace.
//!
//! Kept apart from the counter programs in main.rs: its own maps, no
//! globals, nothing shared but the object file.

use aya_ebpf::{
    bindings::BPF_F_USER_STACK,
    helpers::bpf_get_current_pid_tgid,
    macros::{map, perf_event},
    maps::{HashMap, PerCpuArray, StackTrace},
    programs::{tracing::StackIdContext, PerfEventContext},
};

/// User stacks by id. Declared with one entry: the counter sampler loads
/// this same object and must not pay for a stack table it never uses
/// (stack maps preallocate ~1 KiB per entry); `memleak locate` sizes it
/// at load time.
#[map]
static LOCATE_STACKS: StackTrace = StackTrace::with_max_entries(1, 0);

/// Where a stack goes when its bucket in `LOCATE_STACKS` holds another
/// (`bpf_get_stackid` never overwrites, and every later sample of the
/// stack would be lost: a dominant leak path lost whole). Only such
/// stacks come here, so a second collision is rare. Sized at load time.
#[map]
static LOCATE_STACKS_SPILL: StackTrace = StackTrace::with_max_entries(1, 0);

/// Marks a stack id of `LOCATE_STACKS_SPILL` in the count key (ids are
/// below the table sizes, far under this bit).
const SPILLED: u64 = 1 << 31;

/// `bpf_get_stackid`'s error when the stack's bucket holds another stack.
const EEXIST: i32 = -17;

/// Samples per (tgid << 32 | stack id): the tgid separates processes when
/// the event is inherited by a command's children (`run --locate`).
#[map]
static LOCATE_COUNTS: HashMap<u64, u64> = HashMap::with_max_entries(1, 0);

/// Samples lost, by cause: see `LOST_*` (read by userspace as a per-CPU
/// array of the same indices).
#[map]
static LOCATE_LOST: PerCpuArray<u64> = PerCpuArray::with_max_entries(LOST_COUNT, 0);

/// No user stack could be taken (a kernel worker thread, no memory).
const LOST_NO_STACK: u32 = 0;
/// The count map is full.
const LOST_MAP_FULL: u32 = 1;
/// The stack's bucket holds another stack in both stack tables.
const LOST_COLLISION: u32 = 2;
const LOST_COUNT: u32 = 3;

#[inline(always)]
fn lost(why: u32) {
    if let Some(p) = LOCATE_LOST.get_ptr_mut(why) {
        // SAFETY: per-CPU slot, no concurrent writer on this CPU.
        unsafe { *p += 1 };
    }
}

/// Runs once every `period` page faults of the target's threads.
#[perf_event]
pub fn locate_fault(ctx: PerfEventContext) -> u32 {
    let tgid = bpf_get_current_pid_tgid() >> 32;
    let flags = u64::from(BPF_F_USER_STACK);
    let stack = match ctx.get_stackid(&LOCATE_STACKS, flags) {
        Ok(id) => id as u64 & (SPILLED - 1),
        Err(EEXIST) => match ctx.get_stackid(&LOCATE_STACKS_SPILL, flags) {
            Ok(id) => (id as u64 & (SPILLED - 1)) | SPILLED,
            Err(e) => {
                lost(if e == EEXIST {
                    LOST_COLLISION
                } else {
                    LOST_NO_STACK
                });
                return 0;
            }
        },
        Err(_) => {
            lost(LOST_NO_STACK);
            return 0;
        }
    };
    let key = (tgid << 32) | stack;
    if let Some(n) = LOCATE_COUNTS.get_ptr_mut(key) {
        // SAFETY: pointer into our own map's value; a lost increment under
        // a race between two CPUs is one sample, not worth an atomic.
        unsafe { *n += 1 };
    } else if LOCATE_COUNTS.insert(key, 1u64, 0).is_err() {
        lost(LOST_MAP_FULL);
    }
    0
}
