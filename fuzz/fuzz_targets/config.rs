//! Arbitrary text as `memleak.toml`: parsing, applying and validating the
//! `[analysis]` table never panic; errors are `ConfigError`s naming the file.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use memleak::analyse::{config, Settings};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let path = Path::new("fuzz.toml");
    match config::parse(text, path) {
        Ok(c) => {
            let mut s = Settings::default();
            match c.apply(&mut s, path) {
                Ok(()) => {
                    let _ = s.validate();
                }
                Err(e) => assert!(e.to_string().starts_with("fuzz.toml: ")),
            }
        }
        Err(e) => assert!(e.to_string().starts_with("fuzz.toml: ")),
    }
});
