// Case node-array-leak — label: LEAK.
//
// Why: ten times a second the program pushes a fresh 100 KiB array of
// doubles (a V8 heap object, not an off-heap Buffer) onto a global array
// that is never trimmed: ~1 MiB/s stays reachable from a root, so V8's
// garbage collector must keep it all. Each tick also builds and drops about
// 1 MiB of short-lived objects, so the young generation fills and is
// collected all the time and rss saw-tooths around the rising line. Run
// with --max-old-space-size=256: the old generation runs out (V8 aborts
// with "heap out of memory") after roughly four minutes.
//
// Stopped by SIGTERM from the corpus driver.
"use strict";

const TICK_MS = 100;
const DOUBLES = (100 * 1024) / 8; // 100 KiB per kept array

const kept = [];
let n = 0;
setInterval(() => {
  kept.push(new Array(DOUBLES).fill(n + 0.5));
  n += 1;
  // Churn: ~1 MiB of garbage objects, dropped at the end of the tick.
  let garbage = [];
  for (let i = 0; i < 10000; i++) {
    garbage.push({ id: i, name: `req-${n}-${i}`, score: i * 0.25 });
  }
  garbage = null;
}, TICK_MS);
