#!/usr/bin/env python3
"""A psutil poller like the tool memleak replaces: every INTERVAL seconds it
reads memory_info() of every process and keeps (time, pid, vms, rss) in a list
in memory. Prints "ready" after its first pass; on SIGTERM/SIGINT prints one
JSON line with its pass count, mean pass time and own CPU time, then exits.

usage: psutil_poller.py INTERVAL_SECONDS
"""
import json
import signal
import sys
import time

import psutil

interval = float(sys.argv[1]) if len(sys.argv) > 1 else 0.005
stop = False


def on_signal(_sig, _frame):
    global stop
    stop = True


signal.signal(signal.SIGTERM, on_signal)
signal.signal(signal.SIGINT, on_signal)

data = []
passes = 0
pass_time = 0.0
ready = False
next_t = time.monotonic()
while not stop:
    t0 = time.monotonic()
    for p in psutil.process_iter():
        try:
            m = p.memory_info()
            data.append((t0, p.pid, m.vms, m.rss))
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            pass
    passes += 1
    pass_time += time.monotonic() - t0
    if not ready:
        ready = True
        print("ready", flush=True)
    next_t += interval
    delay = next_t - time.monotonic()
    if delay > 0:
        time.sleep(delay)
    else:
        next_t = time.monotonic()

cpu = psutil.Process().cpu_times()
print(
    json.dumps(
        {
            "passes": passes,
            "mean_pass_ms": 1000.0 * pass_time / max(passes, 1),
            "cpu_s": cpu.user + cpu.system,
            "rows": len(data),
        }
    ),
    flush=True,
)
