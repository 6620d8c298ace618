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
