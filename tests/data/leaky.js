// JavaScript for `memleak locate` through a perf map: run with
// `node --perf-basic-prof`, which writes /tmp/perf-PID.map naming JIT code.
// leakSite keeps 256 KiB Buffers (outside V8's heap, fresh mappings);
// churnSite makes short-lived arrays. Runs for argv[2] seconds.
const kept = [];
function leakSite() {
  const b = Buffer.alloc(256 * 1024);
  for (let i = 0; i < b.length; i += 64) b[i] = i & 255;
  kept.push(b);
}
function churnSite() {
  return new Array(1000).fill(1).length;
}
setInterval(() => {
  leakSite();
  for (let i = 0; i < 20; i++) churnSite();
}, 10);
setTimeout(() => process.exit(0), 1000 * Number(process.argv[2] || 3));
