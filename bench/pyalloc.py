"""Python workload for `cargo xtask bench overhead`: builds and drops
containers of small objects (what a Python test suite's allocator does all
day) and prints one JSON line, {"work_s": ..., "cpu_s": ...}: the wall and
CPU time of the work loop alone, interpreter start-up excluded.

usage: python3 pyalloc.py [ROUNDS]
"""

import json
import sys
import time


def main() -> None:
    rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 40
    start = time.perf_counter()
    cpu_start = time.process_time()
    kept = 0
    for r in range(rounds):
        # ~20 MiB of dicts, strings and lists per round, freed at its end.
        items = [{"id": i, "name": f"item-{r}-{i}", "tags": [i, i + 1]} for i in range(50_000)]
        kept += sum(len(d["name"]) for d in items)
        del items
    work_s = time.perf_counter() - start
    cpu_s = time.process_time() - cpu_start
    print(json.dumps({"work_s": work_s, "cpu_s": cpu_s, "checksum": kept}))


if __name__ == "__main__":
    main()
