//! The real eBPF program, loaded into this kernel, recording real processes.

use std::time::Duration;

use memleak::record::SamplerChoice;
use memleak::sample::ebpf::EbpfHook;
use memleak::sample::Mem;
use memleak_tests::{
    ebpf_scope_options, growth_after_exec, named, record_command, record_command_with,
    require_ebpf, wait_until_recording, workload, MIB,
};

fn within(actual: u64, expected: u64, tolerance: f64) -> bool {
    (actual as f64 - expected as f64).abs() <= expected as f64 * tolerance
}

#[test]
fn heap_growth_matches_what_the_child_allocated_switch_hook() {
    require_ebpf!();
    heap_growth_matches(EbpfHook::Switch);
}

#[test]
fn heap_growth_matches_what_the_child_allocated_snapshot_hook() {
    require_ebpf!();
    heap_growth_matches(EbpfHook::Snapshot);
}

#[test]
fn heap_growth_matches_what_the_child_allocated_faults_hook() {
    require_ebpf!();
    heap_growth_matches(EbpfHook::Faults);
}

fn heap_growth_matches(hook: EbpfHook) {
    let dir = tempfile::tempdir().unwrap();
    let wl = workload();
    let rec = record_command_with(
        dir.path(),
        SamplerChoice::Ebpf,
        hook,
        Duration::from_millis(100),
        &[&wl, "grow-exact", "--mib", "64", "--seconds", "2"],
    );
    let procs = named(&rec, "memleak-workloa");
    assert_eq!(
        procs.len(),
        1,
        "one workload process: {:?}",
        rec.processes().unwrap()
    );
    let p = procs[0].clone();
    let vm = growth_after_exec(&rec, &p, |m: &Mem| m.vm);
    let rss = growth_after_exec(&rec, &p, |m: &Mem| m.rss_anon);
    assert!(
        within(vm, 64 * MIB, 0.10),
        "vm grew {} MiB, expected 64",
        vm / MIB
    );
    assert!(
        within(rss, 64 * MIB, 0.10),
        "rss_anon grew {} MiB, expected 64",
        rss / MIB
    );
    // The growth is visible over time, not only at the end: a leak detector
    // needs the slope.
    let s = rec.series(&p).unwrap();
    assert!(
        s.t.len() >= 15,
        "expected ~20 points over 2 s at 100 ms, got {}",
        s.t.len()
    );
    assert_eq!(p.exit_code, Some(0));
}

#[test]
fn short_lived_process_is_recorded_with_its_final_sample() {
    require_ebpf!();
    let dir = tempfile::tempdir().unwrap();
    let wl = workload();
    // A 1 s interval: the 50 ms child lives and dies between two snapshots.
    let script = format!("sleep 0.3; {wl} short --ms 50 --mib 16; sleep 0.3");
    let rec = record_command(
        dir.path(),
        SamplerChoice::Ebpf,
        Duration::from_secs(1),
        &["sh", "-c", &script],
    );
    let procs = named(&rec, "memleak-workloa");
    assert_eq!(procs.len(), 1, "{:?}", rec.processes().unwrap());
    let p = procs[0].clone();
    let exit_ns = p.exit_ns.expect("exit recorded");
    let raw = rec.raw_samples(&p).unwrap();
    let (last_t, last) = raw.last().expect("a final sample");
    assert_eq!(*last_t, exit_ns, "the final sample is taken at exit");
    assert!(last.vm > 0);
    let life_ms = (exit_ns - p.id.start_ns) / 1_000_000;
    assert!(life_ms < 1000, "lived {life_ms} ms");
}

/// A process that touches 64 MiB and exits at once, without blocking in
/// between: the `switch` hook has had no switch to re-read it at, so its
/// final record must come from the exit itself.
fn final_sample_has_memory_touched_just_before_exit(hook: EbpfHook) {
    let dir = tempfile::tempdir().unwrap();
    let wl = workload();
    let script = format!("sleep 0.2; {wl} short --ms 0 --mib 64; sleep 0.2");
    let rec = record_command_with(
        dir.path(),
        SamplerChoice::Ebpf,
        hook,
        Duration::from_secs(1),
        &["sh", "-c", &script],
    );
    let procs = named(&rec, "memleak-workloa");
    assert_eq!(procs.len(), 1, "{:?}", rec.processes().unwrap());
    let raw = rec.raw_samples(&procs[0]).unwrap();
    let (_, last) = raw.last().expect("a final sample");
    assert!(
        last.rss_anon >= 60 * MIB,
        "{hook:?}: final rss_anon {} MiB, expected the 64 MiB touched before exit",
        last.rss_anon / MIB
    );
}

#[test]
fn final_sample_has_memory_touched_just_before_exit_switch_hook() {
    require_ebpf!();
    final_sample_has_memory_touched_just_before_exit(EbpfHook::Switch);
}

#[test]
fn final_sample_has_memory_touched_just_before_exit_snapshot_hook() {
    require_ebpf!();
    final_sample_has_memory_touched_just_before_exit(EbpfHook::Snapshot);
}

#[test]
fn final_sample_has_memory_touched_just_before_exit_faults_hook() {
    require_ebpf!();
    final_sample_has_memory_touched_just_before_exit(EbpfHook::Faults);
}

#[test]
fn reused_or_many_pids_never_merge_processes() {
    require_ebpf!();
    let dir = tempfile::tempdir().unwrap();
    let wl = workload();
    let rec = record_command(
        dir.path(),
        SamplerChoice::Ebpf,
        Duration::from_millis(200),
        &[&wl, "fork-many", "--count", "300", "--mib", "1"],
    );
    let parent = rec
        .processes()
        .unwrap()
        .into_iter()
        .find(|p| {
            p.comm == "memleak-workloa"
                && rec.processes().unwrap().iter().any(|c| c.ppid == p.id.pid)
        })
        .expect("the forking parent");
    let children: Vec<_> = rec
        .processes()
        .unwrap()
        .into_iter()
        .filter(|c| c.ppid == parent.id.pid)
        .collect();
    assert_eq!(children.len(), 300, "every fork is its own process");
    let mut ids: Vec<_> = rec.processes().unwrap().iter().map(|p| p.id).collect();
    ids.sort();
    ids.dedup();
    assert_eq!(
        ids.len(),
        rec.processes().unwrap().len(),
        "identities are unique"
    );
    assert!(
        children.iter().all(|c| c.exit_ns.is_some()),
        "every child's exit is recorded"
    );
}

#[test]
fn daemonised_grandchild_is_followed() {
    require_ebpf!();
    let dir = tempfile::tempdir().unwrap();
    let wl = workload();
    let script = format!("{wl} daemonize --mib-per-s 20 --seconds 1.5 >/dev/null; sleep 2.5");
    let rec = record_command(
        dir.path(),
        SamplerChoice::Ebpf,
        Duration::from_millis(100),
        &["sh", "-c", &script],
    );
    let leaker = rec
        .processes()
        .unwrap()
        .into_iter()
        .filter(|p| p.comm == "memleak-workloa")
        .max_by_key(|p| {
            rec.raw_samples(p)
                .unwrap()
                .iter()
                .map(|(_, m)| m.rss_anon)
                .max()
        })
        .expect("workload processes");
    let grew = growth_after_exec(&rec, &leaker, |m: &Mem| m.rss_anon);
    assert!(
        grew >= 20 * MIB,
        "the re-parented grandchild's leak was recorded ({} MiB)",
        grew / MIB
    );
}

#[test]
fn cgroup_scope_records_the_cgroups_processes_only() {
    require_ebpf!();
    let root = memleak::sysinfo::cgroup2_mount();
    let cg = root.join(format!("memleak-test-{}", std::process::id()));
    if let Err(e) = std::fs::create_dir(&cg) {
        eprintln!(
            "SKIPPED: cannot create a cgroup under {}: {e}",
            root.display()
        );
        return;
    }
    let wl = workload();
    let dir = tempfile::tempdir().unwrap();
    let output = dir.path().join("cg.memleak");
    let opts = ebpf_scope_options(
        output.clone(),
        memleak::sample::Scope::Cgroup(cg.clone()),
        Duration::from_millis(100),
        Duration::from_secs(3),
    );
    let recorder = std::thread::spawn(move || memleak::record::record(&opts));
    wait_until_recording(&output);
    // The leaker joins the cgroup before exec; a sibling outside it must
    // not be recorded.
    let script = format!(
        "echo $$ > {}/cgroup.procs && exec {wl} leak --rate-mib 10 --seconds 2",
        cg.display()
    );
    let mut inside = std::process::Command::new("sh")
        .args(["-c", &script])
        .spawn()
        .unwrap();
    let mut outside = std::process::Command::new(&wl)
        .args(["leak", "--rate-mib", "10", "--seconds", "2"])
        .spawn()
        .unwrap();
    let result = recorder.join().unwrap();
    inside.wait().unwrap();
    outside.wait().unwrap();
    let _ = std::fs::remove_dir(&cg);
    result.expect("recording");
    let rec = memleak::store::Recording::open(&output).unwrap();
    let pids: Vec<u32> = rec.processes().unwrap().iter().map(|p| p.id.pid).collect();
    assert!(
        pids.contains(&inside.id()),
        "the cgroup's process is recorded: {pids:?}"
    );
    assert!(
        !pids.contains(&outside.id()),
        "a process outside the cgroup is not: {pids:?}"
    );
    let p = rec
        .processes()
        .unwrap()
        .into_iter()
        .find(|p| p.id.pid == inside.id())
        .unwrap();
    let grew = growth_after_exec(&rec, &p, |m: &Mem| m.rss_anon);
    assert!(
        grew >= 10 * MIB,
        "its growth is recorded ({} MiB)",
        grew / MIB
    );
}

/// A process moved into the cgroup while the recording runs, with no fork
/// or exec inside it, is adopted (the default `snapshot` hook at the next
/// snapshot, as it walks every task; there are no syscall tracepoints to
/// find it by) and its growth from then on is recorded.
#[test]
fn process_moved_into_the_cgroup_mid_recording_is_adopted() {
    require_ebpf!();
    let root = memleak::sysinfo::cgroup2_mount();
    let cg = root.join(format!("memleak-test-move-{}", std::process::id()));
    if let Err(e) = std::fs::create_dir(&cg) {
        eprintln!(
            "SKIPPED: cannot create a cgroup under {}: {e}",
            root.display()
        );
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let output = dir.path().join("cg-move.memleak");
    let opts = ebpf_scope_options(
        output.clone(),
        memleak::sample::Scope::Cgroup(cg.clone()),
        Duration::from_millis(100),
        Duration::from_secs(3),
    );
    let recorder = std::thread::spawn(move || memleak::record::record(&opts));
    // Started outside the cgroup after the recorder's seeding pass.
    wait_until_recording(&output);
    let mut mover = std::process::Command::new(workload())
        .args(["leak", "--rate-mib", "10", "--seconds", "2"])
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let moved = std::fs::write(cg.join("cgroup.procs"), mover.id().to_string());
    mover.wait().unwrap();
    let result = recorder.join().unwrap();
    // Empty again once the mover exited, so the cgroup can go.
    let _ = std::fs::remove_dir(&cg);
    moved.expect("move the workload into the cgroup");
    result.expect("recording");
    let rec = memleak::store::Recording::open(&output).unwrap();
    let p = rec
        .processes()
        .unwrap()
        .into_iter()
        .find(|p| p.id.pid == mover.id())
        .unwrap_or_else(|| {
            panic!(
                "the moved process is recorded: {:?}",
                rec.processes().unwrap()
            )
        });
    let raw = rec.raw_samples(&p).unwrap();
    let first = raw.first().expect("samples").1.rss_anon;
    let last = raw.last().unwrap().1.rss_anon;
    assert!(
        last >= first + 8 * MIB,
        "its growth after the move is recorded: {} -> {} MiB",
        first / MIB,
        last / MIB
    );
    assert!(p.exit_ns.is_some(), "and its exit");
}

/// `--all`: a process that was running before the recording and never
/// changes its memory is still recorded, even when the kernel side adopts
/// it at a context switch before userspace's seeding pass gets to it.
#[test]
fn whole_system_records_a_flat_process_that_was_already_running() {
    require_ebpf!();
    // Wakes every 10 ms, so it switches during the recorder's start-up.
    let mut flat = std::process::Command::new(workload())
        .args(["stable", "--mib", "16", "--seconds", "4"])
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let dir = tempfile::tempdir().unwrap();
    let output = dir.path().join("all.memleak");
    let opts = ebpf_scope_options(
        output.clone(),
        memleak::sample::Scope::All,
        Duration::from_millis(200),
        Duration::from_secs(1),
    );
    let result = memleak::record::record(&opts);
    let _ = flat.kill();
    let _ = flat.wait();
    result.expect("recording");
    let rec = memleak::store::Recording::open(&output).unwrap();
    let p = rec
        .processes()
        .unwrap()
        .into_iter()
        .find(|p| p.id.pid == flat.id())
        .unwrap_or_else(|| panic!("the flat process {} is recorded", flat.id()));
    let raw = rec.raw_samples(&p).unwrap();
    let (_, first) = raw.first().expect("with its memory");
    assert!(
        first.rss_anon >= 15 * MIB,
        "rss_anon {} MiB",
        first.rss_anon / MIB
    );
}

/// `--all`: kernel threads created while recording (mounting an ext4 image
/// starts jbd2 and workqueue rescuer threads) are not processes with
/// memory of their own and must not be recorded: they fork from kthreadd,
/// and the fork hook used to take every child in whole-system scope.
#[test]
fn whole_system_never_records_kernel_threads_started_during_the_run() {
    require_ebpf!();
    let dir = tempfile::tempdir().unwrap();
    let img = dir.path().join("fs.img");
    let mnt = dir.path().join("mnt");
    std::fs::create_dir(&mnt).unwrap();
    std::fs::write(&img, []).unwrap();
    let sh = |cmd: &str, args: &[&std::path::Path]| {
        std::process::Command::new(cmd)
            .args(args)
            .output()
            .map(|o| o.status.success())
            .unwrap_or(false)
    };
    let sized = std::fs::File::options()
        .write(true)
        .open(&img)
        .and_then(|f| f.set_len(8 << 20))
        .is_ok();
    if !sized || !sh("mkfs.ext4", &[std::path::Path::new("-qF"), &img]) {
        eprintln!("SKIPPED: mkfs.ext4 unavailable");
        return;
    }
    let output = dir.path().join("all-kthreads.memleak");
    let opts = ebpf_scope_options(
        output.clone(),
        memleak::sample::Scope::All,
        Duration::from_millis(100),
        Duration::from_secs(3),
    );
    let recorder = std::thread::spawn(move || memleak::record::record(&opts));
    std::thread::sleep(Duration::from_millis(1500));
    let mounted = sh("mount", &[std::path::Path::new("-oloop"), &img, &mnt]);
    let result = recorder.join().unwrap();
    if mounted {
        sh("umount", &[&mnt]);
    }
    result.expect("recording");
    if !mounted {
        eprintln!("SKIPPED: cannot loop-mount an ext4 image here");
        return;
    }
    let rec = memleak::store::Recording::open(&output).unwrap();
    let kthreads: Vec<_> = rec
        .processes()
        .unwrap()
        .into_iter()
        .filter(|p| p.ppid == 2 || p.id.pid == 2)
        .collect();
    assert!(
        kthreads.is_empty(),
        "kernel threads were recorded: {kthreads:?}"
    );
}
