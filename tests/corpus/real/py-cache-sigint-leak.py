# Case py-cache-sigint-leak — label: LEAK.
#
# Why: a module-level dict used as a cache gains a new key (with a fresh
# ~100 KiB value) ten times a second and never evicts: ~1 MiB/s of live
# objects that nothing will ever look up again, yet they stay reachable, so
# no garbage collection can free them. Alongside, each tick allocates and
# drops short-lived garbage (lists of strings, a random-size buffer), so rss
# jitters around the rising line. Run under `ulimit -v` 1 GiB: the address
# space runs out after about 15 minutes at this rate.
#
# The driver stops it with SIGINT: KeyboardInterrupt unwinds, and CPython's
# finalisation clears the module and frees the cache, so rss drops just
# before exit. The drop does not make it less of a leak: the memory was
# only given back because the process ended.
import random
import signal
import time

signal.signal(signal.SIGINT, signal.default_int_handler)

TICK = 0.1
VALUE = 100 * 1024  # ~1 MiB/s at 10 ticks/s

cache = {}
rng = random.Random(2)
n = 0
try:
    while True:
        cache[f"request-{n}"] = bytes([n & 0xFF]) * VALUE
        n += 1
        # Churn: garbage that is dropped at the end of the tick.
        scratch = [f"row {i} {n}" for i in range(2000)]
        buf = bytearray(rng.randrange(1, 4 << 20))
        del scratch, buf
        time.sleep(TICK)
except KeyboardInterrupt:
    pass
