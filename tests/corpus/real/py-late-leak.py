# Case py-late-leak — label: LEAK.
#
# Why: for the first part of the run (argv[1] seconds, 40% of the run) the
# program only churns: it allocates and drops garbage with a constant live
# set, so its memory is flat. Then a code path that keeps every result in a
# list starts (think: a feature flag turned on, a new kind of request):
# ~2 MiB/s stays reachable and is never freed, until the machine runs out.
# A detector that judges the whole run as one line sees a flat start; the
# leak is the recent part.
#
# Stopped by SIGINT from the corpus driver.
import signal
import sys
import time

signal.signal(signal.SIGINT, signal.default_int_handler)

leak_after = float(sys.argv[1]) if len(sys.argv) > 1 else 24.0
TICK = 0.1
KEEP = 200 * 1024  # 2 MiB/s at 10 ticks/s once the leak starts

start = time.monotonic()
history = []
n = 0
try:
    while True:
        scratch = [f"item {i} {n}" for i in range(3000)]
        blob = bytes([n & 0xFF]) * KEEP
        if time.monotonic() - start >= leak_after:
            history.append(blob)
        del scratch, blob
        n += 1
        time.sleep(TICK)
except KeyboardInterrupt:
    pass
