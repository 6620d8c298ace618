//! Builds the eBPF object (`memleak-ebpf`) and embeds it in the binary.
//!
//! The eBPF build needs the nightly toolchain with rust-src and bpf-linker.
//! When those are missing, `cargo build` must still work: we embed an empty
//! object and the binary explains that the eBPF sampler is not built in and
//! how to get it (`cargo xtask setup`), using the procfs sampler meanwhile.

use std::{env, fs, path::PathBuf, process::Command};

fn main() {
    println!("cargo:rerun-if-env-changed=MEMLEAK_NO_EBPF");
    println!("cargo:rerun-if-changed=../memleak-common/src");
    let out_dir = PathBuf::from(env::var_os("OUT_DIR").expect("OUT_DIR"));
    let object = out_dir.join("memleak");

    let (missing, watch) = missing_prerequisites();
    if env::var_os("MEMLEAK_NO_EBPF").is_none() {
        // Without these, cargo would keep the eBPF-less build after
        // `cargo xtask setup` installed what was missing: a path that does
        // not exist yet counts as changed, so this script reruns until the
        // prerequisites are there and the next build embeds the program.
        for path in &watch {
            println!("cargo:rerun-if-changed={}", path.display());
        }
    }
    if env::var_os("MEMLEAK_NO_EBPF").is_some() || !missing.is_empty() {
        let why = if missing.is_empty() {
            "MEMLEAK_NO_EBPF is set".to_string()
        } else {
            format!("missing {}", missing.join(", "))
        };
        println!(
            "cargo:warning=building memleak without the eBPF sampler ({why}); run `cargo xtask setup` and rebuild to get it"
        );
        println!("cargo:rustc-env=MEMLEAK_EBPF_MISSING={why}");
        fs::write(&object, []).expect("write placeholder eBPF object");
        return;
    }
    let ebpf = aya_build::Package {
        name: "memleak-ebpf",
        root_dir: "../memleak-ebpf",
        ..Default::default()
    };
    if let Err(e) = aya_build::build_ebpf([ebpf], aya_build::Toolchain::Nightly) {
        panic!(
            "building the eBPF program failed: {e:#}\n(set MEMLEAK_NO_EBPF=1 to build without it)"
        );
    }
}

/// What the eBPF build needs and this machine lacks, and the paths whose
/// appearance means it may be there now.
fn missing_prerequisites() -> (Vec<&'static str>, Vec<PathBuf>) {
    let mut missing = Vec::new();
    let mut watch = Vec::new();
    let cargo_bin = env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| env::var_os("HOME").map(|h| PathBuf::from(h).join(".cargo")))
        .map(|h| h.join("bin").join("bpf-linker"));
    if which::which("bpf-linker").is_err() && !cargo_bin.as_ref().is_some_and(|p| p.exists()) {
        missing.push("bpf-linker");
        watch.extend(cargo_bin);
    }
    let src = Command::new("rustup")
        .args(["component", "list", "--toolchain", "nightly", "--installed"])
        .output();
    match src {
        Ok(out) if out.status.success() => {
            if !String::from_utf8_lossy(&out.stdout).contains("rust-src") {
                missing.push("the nightly toolchain's rust-src component");
                watch.extend(nightly_sysroot().map(|s| s.join("lib/rustlib/src/rust/library")));
            }
        }
        _ => {
            missing.push("the nightly toolchain");
            // No sysroot to ask for yet: watch where rustup will put it.
            let host = env::var("HOST").unwrap_or_default();
            watch.extend(
                rustup_home().map(|h| h.join("toolchains").join(format!("nightly-{host}"))),
            );
        }
    }
    (missing, watch)
}

fn nightly_sysroot() -> Option<PathBuf> {
    let out = Command::new("rustup")
        .args(["run", "nightly", "rustc", "--print", "sysroot"])
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| PathBuf::from(String::from_utf8_lossy(&out.stdout).trim()))
}

fn rustup_home() -> Option<PathBuf> {
    env::var_os("RUSTUP_HOME")
        .map(PathBuf::from)
        .or_else(|| env::var_os("HOME").map(|h| PathBuf::from(h).join(".rustup")))
}
