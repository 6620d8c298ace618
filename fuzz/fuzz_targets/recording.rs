//! Arbitrary bytes as a recording file: `Recording::open`, every series,
//! the analysis and the text reports must never panic; failures must be
//! `StoreError`s with a one-line message.
#![no_main]

use std::path::PathBuf;
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use memleak::analyse::Settings;
use memleak::report::{self, Format};
use memleak::store::{Recording, StoreError};

fn scratch() -> &'static PathBuf {
    static P: OnceLock<PathBuf> = OnceLock::new();
    P.get_or_init(|| {
        let base = if std::path::Path::new("/dev/shm").is_dir() {
            PathBuf::from("/dev/shm")
        } else {
            std::env::temp_dir()
        };
        base.join(format!("memleak-fuzz-{}.memleak", std::process::id()))
    })
}

fn read_everything(path: &std::path::Path) -> Result<(), StoreError> {
    let rec = Recording::open(path)?;
    rec.sample_count()?;
    rec.markers()?;
    for p in &rec.processes()? {
        rec.series(p)?;
        rec.names(p)?;
    }
    match memleak::load::analyse_recording(&rec, &Settings::default()) {
        Ok(a) => {
            for f in [Format::Table, Format::Json, Format::Junit, Format::Github] {
                let _ = report::render(&a, f);
            }
            Ok(())
        }
        Err(memleak::load::LoadError::Store(e)) => Err(e),
        Err(e) => panic!("default settings are valid, got {e}"),
    }
}

fuzz_target!(|data: &[u8]| {
    let p = scratch();
    for ext in ["-wal", "-shm", "-journal"] {
        let _ = std::fs::remove_file(format!("{}{ext}", p.display()));
    }
    std::fs::write(p, data).expect("write the scratch file");
    if let Err(e) = read_everything(p) {
        let msg = e.to_string();
        assert!(!msg.contains('\n'), "error on one line: {msg:?}");
    }
});
