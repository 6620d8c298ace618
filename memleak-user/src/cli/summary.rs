//! Per-process summary table: memory at start, end and peak.

use anyhow::Result;

use crate::analyse::units::fmt_bytes;

fn bytes(b: u64) -> String {
    fmt_bytes(b as f64)
}
use crate::store::Recording;

pub fn print(rec: &Recording) -> Result<()> {
    println!(
        "{:>8} {:<16} {:>8} {:>11} {:>11} {:>11} {:>11} {:>11} {:>11}",
        "PID",
        "NAME",
        "LIFE s",
        "VM start",
        "VM end",
        "VM peak",
        "RSS start",
        "RSS end",
        "RSS peak"
    );
    rec.for_each_process(|streamed| {
        let p = &streamed.info;
        let s = rec.densify(p, &streamed.raw);
        let (Some(first), Some(last)) = (s.mem.first(), s.mem.last()) else {
            return Ok::<(), crate::store::StoreError>(());
        };
        let life = match (s.t.first(), s.t.last()) {
            (Some(a), Some(b)) => b - a,
            _ => 0.0,
        };
        let vm_peak = s.vm().max().unwrap_or(0);
        let rss_peak = s.rss().max().unwrap_or(0);
        println!(
            "{:>8} {:<16} {:>8.1} {:>11} {:>11} {:>11} {:>11} {:>11} {:>11}",
            p.id.pid,
            truncate(&crate::report::printable(&p.comm), 16),
            life,
            bytes(first.vm),
            bytes(last.vm),
            bytes(vm_peak),
            bytes(first.rss()),
            bytes(last.rss()),
            bytes(rss_peak)
        );
        Ok(())
    })?;
    Ok(())
}

fn truncate(s: &str, n: usize) -> String {
    s.chars().take(n).collect()
}
