//! The baseline figures of a stored recording (`memleak baseline`,
//! `compare`, `diff`): each process's rss series, read in one pass.

use std::collections::BTreeMap;

use crate::analyse::baseline::{figures_of, merge_figures, Figures};
use crate::store::{Recording, StoreError};

/// Figures of every process name in a recording (rss).
pub fn figures(rec: &Recording) -> Result<BTreeMap<String, Figures>, StoreError> {
    let mut out: BTreeMap<String, Figures> = BTreeMap::new();
    rec.for_each_process(|streamed| {
        let s = rec.densify(&streamed.info, &streamed.raw);
        let rss: Vec<f64> = s.rss().map(|v| v as f64).collect();
        if let Some(f) = figures_of(&s.t, &rss) {
            merge_figures(&mut out, &streamed.info.comm, f);
        }
        Ok::<(), StoreError>(())
    })?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analyse::baseline::{compare, Baseline};
    use crate::report::baseline::render;
    use crate::sample::{Mem, Observation, ProcId, ProcMeta};
    use crate::store::Writer;

    const MIB: f64 = 1024.0 * 1024.0;

    /// A 60 s recording at 1 s: `stable` holds 50 MiB (+ `wiggle` pages),
    /// `app` starts at 100 MiB and grows `rate` bytes/s.
    pub(crate) fn run(dir: &std::path::Path, file: &str, rate: u64, wiggle: u64) -> String {
        let path = dir.join(file);
        let mut w = Writer::create(&path).unwrap();
        let start = 1_000_000_000_000u64;
        w.set_meta("interval_ns", "1000000000").unwrap();
        w.set_meta("start_ns", &start.to_string()).unwrap();
        let obs = |pid: u32, at: u64, anon: u64, comm: &str| Observation {
            id: ProcId {
                pid,
                start_ns: start - 1000 + pid as u64,
            },
            at_ns: at,
            mem: Mem {
                vm: 500 << 20,
                rss_anon: anon,
                rss_file: 0,
                rss_shmem: 0,
                swap: 0,
            },
            meta: ProcMeta {
                ppid: 1,
                comm: comm.to_string(),
                cmdline: None,
            },
            exit: None,
        };
        for i in 0..=60u64 {
            let at = start + i * 1_000_000_000;
            w.write_snapshot(
                at,
                &[
                    obs(10, at, (50 << 20) + wiggle * 4096 * (i % 2), "stable"),
                    obs(20, at, (100 << 20) + i * rate, "app"),
                ],
            )
            .unwrap();
        }
        w.finish(start + 60 * 1_000_000_000).unwrap();
        path.display().to_string()
    }

    fn figs(path: &str) -> BTreeMap<String, Figures> {
        let rec = crate::store::Recording::open(std::path::Path::new(path)).unwrap();
        figures(&rec).unwrap()
    }

    #[test]
    fn figures_per_name() {
        let dir = tempfile::tempdir().unwrap();
        let f = figs(&run(dir.path(), "a.memleak", 1 << 20, 0));
        assert_eq!(f["app"].slope, MIB);
        assert_eq!(f["app"].peak, 160.0 * MIB);
        assert_eq!(f["app"].final_, 160.0 * MIB);
        assert_eq!(f["stable"].slope, 0.0);
        assert_eq!(f["stable"].peak, 50.0 * MIB);
    }

    #[test]
    fn unchanged_within_spread_changed_beyond() {
        let dir = tempfile::tempdir().unwrap();
        // Three baseline runs: app grows ~10 KiB/s, stable wiggles a page.
        let runs: Vec<_> = [(10_000, 0), (11_000, 1), (9_000, 2)]
            .iter()
            .enumerate()
            .map(|(k, &(rate, wig))| figs(&run(dir.path(), &format!("b{k}.memleak"), rate, wig)))
            .collect();
        let base = Baseline::from_runs(vec!["b0".into(), "b1".into(), "b2".into()], &runs);
        assert_eq!(base.processes["app"].runs, 3);
        assert!((base.processes["app"].slope.mean - 10_000.0).abs() < 1.0);
        // Round trip through JSON.
        let text = serde_json::to_string(&base).unwrap();
        let back: Baseline = serde_json::from_str(&text).unwrap();
        assert_eq!(back, base);

        // Same behaviour: nothing changed, said explicitly.
        let same = compare(&base, &figs(&run(dir.path(), "s.memleak", 10_500, 1)));
        assert!(same.iter().all(|c| !c.changed()), "{same:?}");
        let text = render(&same, "the baseline");
        assert!(text.contains("stable: slope"), "{text}");
        assert!(text.contains("— unchanged"), "{text}");
        assert!(text.contains("0 of 2 process names changed"), "{text}");

        // app now leaks 1 MiB/s: slope, peak and final move.
        let leak = compare(&base, &figs(&run(dir.path(), "l.memleak", 1 << 20, 0)));
        assert!(leak[0].changed());
        let text = render(&leak, "the baseline");
        assert!(text.starts_with("app: slope 1.0 MiB/s"), "{text}");
        assert!(text.contains("(HIGHER)"), "{text}");
        assert!(text.contains("— CHANGED"), "{text}");
        assert!(
            text.contains("stable: ") && text.contains("1 of 2"),
            "{text}"
        );
    }

    #[test]
    fn new_and_gone_names_are_listed() {
        let mut a = BTreeMap::new();
        let f = Figures {
            slope: 0.0,
            peak: MIB,
            final_: MIB,
        };
        a.insert("old".to_string(), f);
        let base = Baseline::from_runs(vec!["a".into()], &[a]);
        let mut b = BTreeMap::new();
        b.insert("fresh".to_string(), f);
        let c = compare(&base, &b);
        let text = render(&c, "a.memleak");
        assert!(text.contains("fresh: new (not in a.memleak)"), "{text}");
        assert!(
            text.contains("old: in a.memleak but not in this run"),
            "{text}"
        );
        assert!(c.iter().all(|c| !c.changed()));
    }
}
