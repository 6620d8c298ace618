# Case py-mp-worker-leak — label: LEAK.
#
# Why: the parent starts one multiprocessing worker and only waits for it;
# the worker appends ~1.5 MiB/s of fresh bytes objects to a list it never
# trims and never reads again. Every object stays reachable from that list,
# so neither the garbage collector nor the allocator can give the memory
# back: the worker's anonymous rss grows without bound until the machine's
# RAM (or a limit) runs out. The parent's memory is flat — only one process
# of the case leaks, which is what a per-process alert must find.
#
# Stopped by SIGINT from the corpus driver; the worker is a daemon, so the
# parent's exit handler terminates it.
import multiprocessing
import signal
import time

RATE = 1.5 * 1024 * 1024  # bytes kept per second
TICK = 0.1  # seconds between appends


def worker():
    # Ignore SIGINT here: only the parent is signalled, and the worker should
    # keep its memory until the parent ends it.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    kept = []
    n = 0
    while True:
        # bytes([x]) * n writes every byte, so the pages are really resident
        # (bytes(n) would be calloc'd and untouched).
        kept.append(bytes([n & 0xFF]) * int(RATE * TICK))
        n += 1
        # A little short-lived garbage, as any real worker makes.
        _ = [str(i) for i in range(500)]
        time.sleep(TICK)


if __name__ == "__main__":
    # A shell starts background jobs with SIGINT ignored, and CPython then
    # never installs its KeyboardInterrupt handler: restore it.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    p = multiprocessing.Process(target=worker, daemon=True)
    p.start()
    try:
        p.join()
    except KeyboardInterrupt:
        pass
