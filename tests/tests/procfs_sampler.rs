//! The procfs fallback records the same workload as the eBPF sampler.

use std::time::Duration;

use memleak::record::SamplerChoice;
use memleak::sample::Mem;
use memleak_tests::{growth_after_exec, named, record_command, require_ebpf, workload, MIB};

fn growth(sampler: SamplerChoice, dir: &std::path::Path) -> (u64, u64) {
    let wl = workload();
    let rec = record_command(
        dir,
        sampler,
        Duration::from_millis(100),
        &[&wl, "grow-exact", "--mib", "48", "--seconds", "1.5"],
    );
    let procs = named(&rec, "memleak-workloa");
    assert_eq!(procs.len(), 1, "{:?}", rec.processes().unwrap());
    let p = procs[0].clone();
    // procfs has no exec time: its first sample is already the new image,
    // so both start from their first post-exec sample.
    (
        growth_after_exec(&rec, &p, |m: &Mem| m.vm),
        growth_after_exec(&rec, &p, |m: &Mem| m.rss_anon),
    )
}

#[test]
fn procfs_sampler_records_the_workload_without_privileges_needed() {
    let dir = tempfile::tempdir().unwrap();
    let (vm, rss) = growth(SamplerChoice::Procfs, dir.path());
    let expected = 48 * MIB;
    assert!(
        vm.abs_diff(expected) <= expected / 10,
        "procfs vm grew {} MiB",
        vm / MIB
    );
    assert!(
        rss.abs_diff(expected) <= expected / 10,
        "procfs rss grew {} MiB",
        rss / MIB
    );
}

#[test]
fn procfs_and_ebpf_agree_within_ten_percent() {
    require_ebpf!();
    let dir = tempfile::tempdir().unwrap();
    let (pvm, prss) = growth(SamplerChoice::Procfs, dir.path());
    let (evm, erss) = growth(SamplerChoice::Ebpf, dir.path());
    assert!(
        pvm.abs_diff(evm) <= evm / 10,
        "vm: procfs {pvm} vs ebpf {evm}"
    );
    assert!(
        prss.abs_diff(erss) <= erss / 10,
        "rss: procfs {prss} vs ebpf {erss}"
    );
}

/// A program that execs another program of the same name (a pyenv shim
/// execs the real `python`): the recorded command line is the new
/// program's, not the shim's.
fn cmdline_follows_exec_with_the_same_name(sampler: SamplerChoice) {
    let dir = tempfile::tempdir().unwrap();
    let sh = std::fs::canonicalize("/bin/sh").unwrap();
    let (shim, real) = (dir.path().join("shim"), dir.path().join("real"));
    for d in [&shim, &real] {
        std::fs::create_dir(d).unwrap();
        std::fs::copy(&sh, d.join("prog")).unwrap();
    }
    let (shim, real) = (shim.join("prog"), real.join("prog"));
    let script = format!(
        "sleep 0.5; exec {} -c 'sleep 1.5; :' the-real-program",
        real.display()
    );
    let rec = record_command(
        dir.path(),
        sampler,
        Duration::from_millis(100),
        &[shim.to_str().unwrap(), "-c", &script],
    );
    let procs = named(&rec, "prog");
    assert_eq!(procs.len(), 1, "{:?}", rec.processes().unwrap());
    let cmdline = procs[0].cmdline.clone().unwrap_or_default();
    assert!(
        cmdline.starts_with(&real.display().to_string()) && cmdline.contains("the-real-program"),
        "{sampler:?}: the command line after exec: {cmdline}"
    );
}

#[test]
fn cmdline_follows_exec_with_the_same_name_procfs() {
    cmdline_follows_exec_with_the_same_name(SamplerChoice::Procfs);
}

#[test]
fn cmdline_follows_exec_with_the_same_name_ebpf() {
    require_ebpf!();
    cmdline_follows_exec_with_the_same_name(SamplerChoice::Ebpf);
}
