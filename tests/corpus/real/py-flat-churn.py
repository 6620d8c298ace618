# Case py-flat-churn — label: NOT A LEAK.
#
# Why: the program holds a fixed working set (~20 MiB built at start) and
# each tick allocates garbage — lists of strings, buffers of random size up
# to 8 MiB — that it drops before the next tick. The live set never grows,
# so nothing can run out: rss moves up and down with the churn (and with
# what the allocator keeps cached) but has no trend.
#
# Stopped by SIGINT from the corpus driver; finalisation frees the working
# set at exit.
import random
import signal
import time

signal.signal(signal.SIGINT, signal.default_int_handler)

TICK = 0.1
rng = random.Random(14)
working_set = [bytes([i & 0xFF]) * (64 * 1024) for i in range(320)]
n = 0
try:
    while True:
        scratch = [f"row {i} {n}" for i in range(rng.randrange(500, 5000))]
        buf = bytes([n & 0xFF]) * rng.randrange(1, 8 << 20)
        # Touch the working set so it is used, not just parked.
        _ = working_set[n % len(working_set)][0]
        del scratch, buf
        n += 1
        time.sleep(TICK)
except KeyboardInterrupt:
    pass
