// Case node-lru-steady — label: NOT A LEAK.
//
// Why: a server-like loop answers twenty "requests" a second for random
// keys; a miss builds a 100 KiB value and stores it in an LRU cache (a Map
// in recency order) capped at 300 entries, evicting the least recently
// used entry beyond that. The cache fills in the first ~20 s (rss rises),
// then every insertion evicts one entry of the same size, so the live set
// is bounded at ~30 MiB and nothing can run out. Each request also makes
// short-lived garbage, which V8's young generation collects.
//
// Stopped by SIGTERM from the corpus driver.
"use strict";

const TICK_MS = 50;
const CAPACITY = 300;
const KEYS = 3000;
const DOUBLES = (100 * 1024) / 8;

// A seeded generator, so every run draws the same requests.
let seed = 9;
function rand() {
  seed = (seed * 1103515245 + 12345) % 2147483648;
  return seed / 2147483648;
}

const cache = new Map();
let n = 0;
setInterval(() => {
  const key = Math.floor(rand() * KEYS);
  let value = cache.get(key);
  if (value === undefined) {
    value = new Array(DOUBLES).fill(key + 0.5);
    if (cache.size >= CAPACITY) {
      // Map iterates in insertion order: the first key is the oldest.
      cache.delete(cache.keys().next().value);
    }
  } else {
    cache.delete(key); // re-inserted below as the most recent
  }
  cache.set(key, value);
  n += 1;
  let garbage = [];
  for (let i = 0; i < 5000; i++) {
    garbage.push({ id: i, body: `resp-${n}-${i}` });
  }
  garbage = null;
}, TICK_MS);
