//! The real-runtime corpus: small Python, Node.js, Java and C programs
//! (`tests/corpus/real/`, one file per case, each saying at its top why it
//! is or is not a leak), labelled for `memleak eval`.
//!
//! The synthetic corpus (`cargo xtask corpus`) runs one Rust workload that
//! draws exact shapes; this one runs what memleak meets in practice:
//! interpreters with their own allocators, garbage-collected heaps that
//! saw-tooth and commit memory in steps, glibc arenas, page cache, a
//! worker process, limits that are not the machine's RAM (`ulimit -v`, a
//! cgroup), and a batch job that ends on its own.
//!
//! [`prepare`] copies the sources into an output directory, builds the C
//! and Java cases there, and (for the cgroup case) makes a child memory
//! cgroup; [`Prepared::driver_script`] is the shell script to record (all
//! cases at once, stopped by a signal after the run length) and
//! [`Prepared::labels_toml`] the labels. `cargo xtask corpus --set real`
//! and `tests/tests/corpus_real.rs` both use this, so they record the
//! same thing.
//!
//! Every Python case runs as `python3` (and the Node/Java ones as `node`
//! and `java`), so the labels tell cases apart by a substring of the
//! command line as well as the process name.

pub mod batch;

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Run length of the corpus (seconds): long enough for the analyser's
/// warm-up and a visible trend at these rates, short enough for CI.
pub const RUN_SECONDS: f64 = 60.0;

/// The whole corpus runs in one memory cgroup of this size, as a CI job
/// runs in a container: the limit that leaks without one of their own are
/// judged against (memleak discovers it per process). Anonymous memory of
/// all cases together stays well under it; page cache is reclaimed.
/// Without a memory cgroup the corpus runs without it (labels.toml says
/// so) and those leaks are projected against the machine's RAM.
pub const CONTAINER_LIMIT: u64 = 3 << 30;

/// Sampling interval the corpus is recorded at (milliseconds).
pub const INTERVAL_MS: u64 = 250;

/// Where the case programs live in the source tree.
pub fn source_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("real")
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Runtime {
    Python,
    Node,
    Java,
    C,
}

/// How the driver ends a case at the end of the run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stop {
    /// SIGINT: Python raises KeyboardInterrupt and finalises (frees its
    /// heap) before exiting, as after Ctrl-C.
    Int,
    /// SIGTERM: what a service manager sends.
    Term,
    /// Not signalled: the case exits on its own before the run ends.
    Exits,
}

/// A limit the case runs under, set for it alone.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Limit {
    None,
    /// `ulimit -v` (KiB) set in the case's own shell before exec.
    AddressSpaceKib(u64),
    /// A child memory cgroup with this limit (bytes).
    Cgroup(u64),
}

/// An argument that depends on the run.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Arg {
    /// This fraction of the run length, in seconds.
    Run(f64),
    /// A file of this name in the output directory.
    OutFile(&'static str),
}

/// One case: a program under `real/` and how to run it.
#[derive(Debug)]
pub struct Case {
    /// Case name, also the C binary's name (so at most 15 bytes: `comm`).
    pub name: &'static str,
    pub leak: bool,
    pub runtime: Runtime,
    /// Source file under `real/` (Java: `Class.java`).
    pub file: &'static str,
    /// Interpreter or JVM options before the program.
    pub flags: &'static [&'static str],
    pub args: &'static [Arg],
    pub limit: Limit,
    pub stop: Stop,
    /// The label's reason in one line (the file's top comment says more).
    pub why: &'static str,
}

const MIB: u64 = 1 << 20;

/// The cases, leaks first.
pub const CASES: &[Case] = &[
    Case {
        name: "py-mp-worker-leak",
        leak: true,
        runtime: Runtime::Python,
        file: "py-mp-worker-leak.py",
        flags: &[],
        args: &[],
        limit: Limit::None,
        stop: Stop::Int,
        why: "a multiprocessing worker appends 1.5 MiB/s to a list it never trims; \
              the parent is flat",
    },
    Case {
        name: "py-cache-sigint-leak",
        leak: true,
        runtime: Runtime::Python,
        file: "py-cache-sigint-leak.py",
        flags: &[],
        args: &[],
        limit: Limit::AddressSpaceKib(1 << 20),
        stop: Stop::Int,
        why: "a dict cache gains 1 MiB/s and never evicts, under churn and a 1 GiB \
              ulimit -v; SIGINT finalisation frees it only at exit",
    },
    Case {
        name: "py-late-leak",
        leak: true,
        runtime: Runtime::Python,
        file: "py-late-leak.py",
        flags: &[],
        args: &[Arg::Run(0.4)],
        limit: Limit::None,
        stop: Stop::Int,
        why: "flat with churn for 40% of the run, then keeps 2 MiB/s in a list until \
              stopped",
    },
    Case {
        name: "node-array-leak",
        leak: true,
        runtime: Runtime::Node,
        file: "node-array-leak.js",
        flags: &["--max-old-space-size=256"],
        args: &[],
        limit: Limit::None,
        stop: Stop::Term,
        why: "a global array keeps 1 MiB/s of V8 heap objects under young-generation \
              churn; the 256 MiB old space runs out",
    },
    Case {
        name: "java-list-leak",
        leak: true,
        runtime: Runtime::Java,
        file: "JavaListLeak.java",
        flags: &["-Xmx256m"],
        args: &[],
        limit: Limit::None,
        stop: Stop::Term,
        why: "a static list keeps 1.5 MiB/s of byte[] under churn; the 256 MiB heap \
              runs out",
    },
    Case {
        name: "c-churn-leak",
        leak: true,
        runtime: Runtime::C,
        file: "c-churn-leak.c",
        flags: &[],
        args: &[],
        limit: Limit::None,
        stop: Stop::Term,
        why: "mallocs 64 KiB blocks, frees 3 in 4 and keeps the 4th: 2 MiB/s never \
              freed",
    },
    Case {
        name: "c-cgroup-leak",
        leak: true,
        runtime: Runtime::C,
        file: "c-cgroup-leak.c",
        flags: &[],
        args: &[],
        limit: Limit::Cgroup(512 * MIB),
        stop: Stop::Term,
        why: "keeps 1 MiB/s of malloc'd memory inside a child cgroup limited to \
              512 MiB",
    },
    Case {
        name: "c-vm-leak",
        leak: true,
        runtime: Runtime::C,
        file: "c-vm-leak.c",
        flags: &[],
        args: &[],
        limit: Limit::AddressSpaceKib(786_432),
        stop: Stop::Term,
        why: "maps 4 MiB every 3 s and never unmaps (one page touched): virtual size \
              reaches its 768 MiB ulimit -v in ~10 min, rss barely moves",
    },
    Case {
        name: "node-lru-steady",
        leak: false,
        runtime: Runtime::Node,
        file: "node-lru-steady.js",
        flags: &[],
        args: &[],
        limit: Limit::None,
        stop: Stop::Term,
        why: "an LRU cache capped at 300 entries of 100 KiB fills in ~20 s, then \
              evicts as it inserts; churn besides",
    },
    Case {
        name: "java-stable-heap",
        leak: false,
        runtime: Runtime::Java,
        file: "JavaStableHeap.java",
        flags: &["-Xmx1g"],
        args: &[],
        limit: Limit::None,
        stop: Stop::Term,
        why: "constant 32 MiB live set and steady garbage under -Xmx1g; the JVM may \
              commit more heap, which is not kept memory",
    },
    Case {
        name: "c-arena-plateau",
        leak: false,
        runtime: Runtime::C,
        file: "c-arena-plateau.c",
        flags: &[],
        args: &[],
        limit: Limit::None,
        stop: Stop::Term,
        why: "four threads malloc/free random blocks with a bounded live set: glibc \
              arenas grow, then rss plateaus",
    },
    Case {
        name: "c-mmap-scan",
        leak: false,
        runtime: Runtime::C,
        file: "c-mmap-scan.c",
        flags: &[],
        args: &[Arg::Run(1.0), Arg::OutFile("c-mmap-scan.data")],
        limit: Limit::None,
        stop: Stop::Term,
        why: "reads a 1.5 GiB mmapped file front to back: file-backed rss (clean \
              page cache) grows to the file's size, anonymous memory is flat",
    },
    Case {
        name: "c-batch-exit",
        leak: false,
        runtime: Runtime::C,
        file: "c-batch-exit.c",
        flags: &[],
        args: &[],
        limit: Limit::None,
        stop: Stop::Exits,
        why: "compiler-like: builds 500 MiB in five phases over 20 s, then exits 0 on \
              its own",
    },
    Case {
        name: "py-flat-churn",
        leak: false,
        runtime: Runtime::Python,
        file: "py-flat-churn.py",
        flags: &[],
        args: &[],
        limit: Limit::None,
        stop: Stop::Int,
        why: "constant 20 MiB working set; each tick allocates and drops garbage",
    },
];

#[derive(Debug, thiserror::Error)]
pub enum CorpusError {
    /// A runtime or compiler is not installed: callers may skip.
    #[error(
        "`{tool}` is not on PATH (needed by the {runtime} cases); `cargo xtask setup` installs it"
    )]
    Missing {
        tool: &'static str,
        runtime: &'static str,
    },
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{what} failed ({status}):\n{stderr}")]
    Build {
        what: String,
        status: std::process::ExitStatus,
        stderr: String,
    },
}

fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> CorpusError {
    let what = what.into();
    move |source| CorpusError::Io { what, source }
}

/// A case ready to run.
#[derive(Debug)]
pub struct Planned {
    pub case: &'static Case,
    /// The program and its arguments.
    pub argv: Vec<String>,
    /// Process name the case's processes get.
    pub comm: String,
    /// A substring of their command line no other case's has.
    pub cmdline: String,
    /// The child cgroup for [`Limit::Cgroup`].
    cgroup: Option<PathBuf>,
}

/// The corpus prepared in an output directory.
#[derive(Debug)]
pub struct Prepared {
    pub dir: PathBuf,
    pub run_seconds: f64,
    pub cases: Vec<Planned>,
    /// Cases left out here, with the reason (e.g. no memory cgroup).
    pub skipped: Vec<(&'static str, String)>,
    /// Cgroups to remove afterwards.
    cgroups: Vec<PathBuf>,
    /// The container cgroup the driver moves itself into, or why there is
    /// none.
    container: Result<PathBuf, String>,
}

/// `dir/name` as a string (the driver is text).
fn path_str(dir: &Path, name: &str) -> String {
    dir.join(name).display().to_string()
}

/// The executable `name` resolves to on PATH.
fn on_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

fn require(tool: &'static str, runtime: &'static str) -> Result<PathBuf, CorpusError> {
    on_path(tool).ok_or(CorpusError::Missing { tool, runtime })
}

/// Runs a build step, failing with its stderr.
fn build(what: String, cmd: &mut Command) -> Result<(), CorpusError> {
    let out = cmd.output().map_err(io(format!("starting {what}")))?;
    if !out.status.success() {
        return Err(CorpusError::Build {
            what,
            status: out.status,
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        });
    }
    Ok(())
}

/// The interpreter behind `python3`: with pyenv, `python3` is a shell shim
/// that starts dozens of short processes before the interpreter; running
/// the interpreter itself keeps them out of the recording.
fn python_interpreter() -> Result<PathBuf, CorpusError> {
    let shim = require("python3", "Python")?;
    let out = Command::new(&shim)
        .args(["-c", "import sys; print(sys.executable)"])
        .output()
        .map_err(io("running python3"))?;
    let exe = String::from_utf8_lossy(&out.stdout).trim().to_string();
    Ok(if out.status.success() && Path::new(&exe).is_file() {
        PathBuf::from(exe)
    } else {
        shim
    })
}

/// What the kernel names a process exec'd from `path`: the file name,
/// cut to 15 bytes.
fn comm_of(path: &Path) -> String {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let mut end = name.len().min(15);
    while !name.is_char_boundary(end) {
        end -= 1;
    }
    name[..end].to_string()
}

/// A child memory cgroup limited to `limit` bytes, or why there is none.
///
/// cgroup v2 (the memory controller in `/sys/fs/cgroup/cgroup.controllers`):
/// a child of the root, as a process cannot sit in a v2 cgroup whose
/// children have controllers (only the root is exempt); the memory
/// controller is enabled in the root's subtree_control if needed. cgroup
/// v1 (a `memory` hierarchy): a child of our own memory cgroup, so the
/// limits of whoever runs us still apply.
fn make_cgroup(tag: &str, limit: u64) -> Result<PathBuf, String> {
    let v2 = Path::new("/sys/fs/cgroup");
    let controllers = std::fs::read_to_string(v2.join("cgroup.controllers")).unwrap_or_default();
    let (dir, limit_file) = if controllers.split_whitespace().any(|c| c == "memory") {
        let control = v2.join("cgroup.subtree_control");
        let enabled = std::fs::read_to_string(&control).unwrap_or_default();
        if !enabled.split_whitespace().any(|c| c == "memory") {
            std::fs::write(&control, "+memory").map_err(|e| {
                format!(
                    "the memory controller is not enabled in {} and enabling it failed: {e}",
                    control.display()
                )
            })?;
        }
        (v2.join(tag), "memory.max")
    } else {
        let v1 = Path::new("/sys/fs/cgroup/memory");
        let own = std::fs::read_to_string("/proc/self/cgroup")
            .unwrap_or_default()
            .lines()
            .find_map(|l| {
                let mut parts = l.splitn(3, ':');
                let (_, ctrl, path) = (parts.next()?, parts.next()?, parts.next()?);
                ctrl.split(',')
                    .any(|c| c == "memory")
                    .then(|| path.trim_start_matches('/').to_string())
            });
        match own {
            Some(own) if v1.join(&own).join("cgroup.procs").is_file() => {
                (v1.join(own).join(tag), "memory.limit_in_bytes")
            }
            _ => {
                return Err("no memory cgroup controller: not in cgroup v2's \
                            /sys/fs/cgroup/cgroup.controllers, and no cgroup v1 memory \
                            hierarchy holding this process"
                    .into())
            }
        }
    };
    std::fs::create_dir(&dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
    if let Err(e) = std::fs::write(dir.join(limit_file), limit.to_string()) {
        let _ = std::fs::remove_dir(&dir);
        return Err(format!("setting {}/{limit_file}: {e}", dir.display()));
    }
    Ok(dir)
}

/// Copies the sources into `dir/real`, builds the C (gcc, into `dir/bin`)
/// and Java (javac, into `dir/classes`) cases and makes the cgroup.
/// Fails with [`CorpusError::Missing`] when a runtime or compiler is not
/// installed. Cases that cannot run here (no memory cgroup) are listed in
/// `skipped` rather than failing.
pub fn prepare(dir: &Path, run_seconds: f64) -> Result<Prepared, CorpusError> {
    let python = python_interpreter()?;
    let node = require("node", "Node.js")?;
    let java = require("java", "Java")?;
    let javac = require("javac", "Java")?;
    let gcc = require("gcc", "C")?;

    let src = dir.join("real");
    let bin = dir.join("bin");
    let classes = dir.join("classes");
    for d in [&src, &bin, &classes] {
        std::fs::create_dir_all(d).map_err(io(format!("creating {}", d.display())))?;
    }
    for c in CASES {
        let to = src.join(c.file);
        std::fs::copy(source_dir().join(c.file), &to).map_err(io(format!("copying {}", c.file)))?;
    }
    // One javac for every Java case: the JVM starts once.
    let java_sources: Vec<PathBuf> = CASES
        .iter()
        .filter(|c| c.runtime == Runtime::Java)
        .map(|c| src.join(c.file))
        .collect();
    build(
        "javac".into(),
        Command::new(&javac)
            .arg("-d")
            .arg(&classes)
            .args(&java_sources),
    )?;

    let mut prepared = Prepared {
        dir: dir.to_path_buf(),
        run_seconds,
        cases: Vec::new(),
        skipped: Vec::new(),
        cgroups: Vec::new(),
        container: Err(String::new()),
    };
    prepared.container = make_cgroup(
        &format!("memleak-corpus-{}-container", std::process::id()),
        CONTAINER_LIMIT,
    );
    if let Ok(cg) = &prepared.container {
        prepared.cgroups.push(cg.clone());
    }
    for c in CASES {
        let mut cgroup = None;
        if let Limit::Cgroup(limit) = c.limit {
            let tag = format!("memleak-corpus-{}", std::process::id());
            match make_cgroup(&tag, limit) {
                Ok(cg) => {
                    prepared.cgroups.push(cg.clone());
                    cgroup = Some(cg);
                }
                Err(why) => {
                    prepared.skipped.push((c.name, why));
                    continue;
                }
            }
        }
        let (program, mut argv, cmdline) = match c.runtime {
            Runtime::Python => (
                python.clone(),
                vec![path_str(&src, c.file)],
                format!("/{}", c.file),
            ),
            Runtime::Node => (
                node.clone(),
                vec![path_str(&src, c.file)],
                format!("/{}", c.file),
            ),
            Runtime::Java => {
                let class = c.file.trim_end_matches(".java");
                (
                    java.clone(),
                    vec!["-cp".into(), classes.display().to_string(), class.into()],
                    format!(" {class}"),
                )
            }
            Runtime::C => {
                let exe = bin.join(c.name);
                build(
                    format!("gcc {}", c.file),
                    Command::new(&gcc)
                        .args(["-O2", "-Wall", "-pthread", "-o"])
                        .arg(&exe)
                        .arg(src.join(c.file)),
                )?;
                (exe, Vec::new(), format!("/bin/{}", c.name))
            }
        };
        // Interpreter options go before the program.
        argv.splice(0..0, c.flags.iter().map(|f| f.to_string()));
        argv.extend(c.args.iter().map(|a| match *a {
            Arg::Run(f) => format!("{}", f * run_seconds),
            Arg::OutFile(name) => path_str(dir, name),
        }));
        argv.insert(0, program.display().to_string());
        prepared.cases.push(Planned {
            case: c,
            comm: comm_of(&program),
            argv,
            cmdline,
            cgroup,
        });
    }
    Ok(prepared)
}

/// Single-quoted for sh.
pub fn sh_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// A TOML basic string.
fn toml_str(s: &str) -> String {
    let mut out = String::from("\"");
    for ch in s.chars() {
        match ch {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            c if c.is_control() => {
                let _ = write!(out, "\\u{:04X}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

impl Planned {
    /// The shell command that starts the case (in the background).
    pub fn shell_command(&self) -> String {
        let argv: Vec<String> = self.argv.iter().map(|a| sh_quote(a)).collect();
        let argv = argv.join(" ");
        // The limit is set in the case's own shell, which then execs the
        // program: the pid the driver signals is the program's.
        match (self.case.limit, &self.cgroup) {
            (Limit::AddressSpaceKib(kib), _) => format!(
                "sh -c {} sh {argv}",
                sh_quote(&format!("ulimit -v {kib} && exec \"$@\""))
            ),
            (Limit::Cgroup(_), Some(cg)) => format!(
                "sh -c {} sh {argv}",
                sh_quote(&format!(
                    "echo $$ > {} && exec \"$@\"",
                    sh_quote(&path_str(cg, "cgroup.procs"))
                ))
            ),
            _ => argv,
        }
    }
}

impl Prepared {
    /// The driver: every case in the background at once, sleep the run
    /// length, then stop what still runs — SIGINT for Python, so it
    /// finalises as after Ctrl-C; SIGTERM for the rest — and wait.
    pub fn driver_script(&self) -> String {
        let mut s = String::from(
            "# memleak real-runtime corpus driver (generated; see tests/corpus/src/lib.rs).\n\
             int=\nterm=\n",
        );
        match &self.container {
            Ok(cg) => {
                let _ = writeln!(
                    s,
                    "# Every case runs in a {} MiB memory cgroup, like a CI container.\n\
                     echo $$ > {}",
                    CONTAINER_LIMIT >> 20,
                    sh_quote(&path_str(cg, "cgroup.procs"))
                );
            }
            Err(why) => {
                let _ = writeln!(s, "# No container cgroup: {why}");
            }
        }
        for p in &self.cases {
            let _ = writeln!(
                s,
                "\n# {} ({})\n{} &",
                p.case.name,
                if p.case.leak { "leak" } else { "no leak" },
                p.shell_command()
            );
            match p.case.stop {
                Stop::Int => s.push_str("int=\"$int $!\"\n"),
                Stop::Term => s.push_str("term=\"$term $!\"\n"),
                Stop::Exits => {}
            }
        }
        let _ = write!(
            s,
            "\nsleep {}\n\
             kill -INT $int 2>/dev/null\n\
             kill -TERM $term 2>/dev/null\n\
             wait\n\
             exit 0\n",
            self.run_seconds
        );
        s
    }

    /// labels.toml for `memleak eval`: each case's processes are those
    /// named `comm` whose command line holds `cmdline`.
    pub fn labels_toml(&self, recording: &str) -> String {
        let mut out = format!(
            "# Labels of the real-runtime memleak corpus (cargo xtask corpus --set real).\n\
             # A case's processes: name `comm` and a command line holding `cmdline`;\n\
             # the case is flagged when any of them gets a leak verdict.\n\
             scale = \"real-{}s\"\nrecording = {}\n",
            self.run_seconds,
            toml_str(recording)
        );
        for (name, why) in &self.skipped {
            let _ = writeln!(out, "# skipped here: {name}: {why}");
        }
        match &self.container {
            Ok(_) => {
                let _ = writeln!(
                    out,
                    "# every case ran in a {} MiB memory cgroup (a CI container)",
                    CONTAINER_LIMIT >> 20
                );
            }
            Err(why) => {
                let _ = writeln!(out, "# no container cgroup ({why}): leaks without a limit of their own are judged against RAM");
            }
        }
        for p in &self.cases {
            let _ = write!(
                out,
                "\n[cases.{}]\nleak = {}\ncomm = {}\ncmdline = {}\ncommand = {}\nwhy = {}\n",
                p.case.name,
                p.case.leak,
                toml_str(&p.comm),
                toml_str(&p.cmdline),
                toml_str(&p.shell_command()),
                toml_str(p.case.why),
            );
        }
        out
    }

    /// Removes the cgroups made for the run (they must be empty: call it
    /// after the recording ended). Returns what could not be removed.
    pub fn cleanup(&mut self) -> Vec<String> {
        let mut failed = Vec::new();
        for cg in self.cgroups.drain(..) {
            if let Err(e) = std::fs::remove_dir(&cg) {
                failed.push(format!("{}: {e}", cg.display()));
            }
        }
        failed
    }
}

impl Drop for Prepared {
    fn drop(&mut self) {
        // Best effort when the caller bailed out early.
        let _ = self.cleanup();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_case_has_its_file_and_says_why() {
        for c in CASES {
            let text = std::fs::read_to_string(source_dir().join(c.file))
                .unwrap_or_else(|e| panic!("{}: {e}", c.file));
            let head: String = text.lines().take(3).collect::<Vec<_>>().join("\n");
            let label = if c.leak { "LEAK" } else { "NOT A LEAK" };
            assert!(
                head.contains(c.name) && head.contains(&format!("label: {label}.")),
                "{}: the top comment must name the case and its label:\n{head}",
                c.file
            );
            assert!(c.name.len() <= 15 || c.runtime != Runtime::C, "{}", c.name);
        }
        let leaks = CASES.iter().filter(|c| c.leak).count();
        assert_eq!((leaks, CASES.len() - leaks), (8, 6));
    }

    #[test]
    fn cmdline_substrings_pick_one_case_each() {
        let dir = Path::new("/out");
        for c in CASES {
            let mine = match c.runtime {
                Runtime::C => format!("/bin/{}", c.name),
                Runtime::Java => format!(" {}", c.file.trim_end_matches(".java")),
                _ => format!("/{}", c.file),
            };
            for other in CASES.iter().filter(|o| o.name != c.name) {
                let their = format!("x {} {}", path_str(dir, other.file), other.name);
                assert!(!their.contains(&mine), "{mine} is in {their}");
            }
        }
    }

    #[test]
    fn shell_command_sets_limits_in_the_case_shell() {
        let case = CASES.iter().find(|c| c.name == "c-vm-leak").unwrap();
        let p = Planned {
            case,
            argv: vec!["/o/bin/c-vm-leak".into()],
            comm: "c-vm-leak".into(),
            cmdline: "/bin/c-vm-leak".into(),
            cgroup: None,
        };
        assert_eq!(
            p.shell_command(),
            "sh -c 'ulimit -v 786432 && exec \"$@\"' sh '/o/bin/c-vm-leak'"
        );
        let case = CASES.iter().find(|c| c.name == "c-cgroup-leak").unwrap();
        let p = Planned {
            case,
            argv: vec!["/o/bin/c-cgroup-leak".into()],
            comm: "c-cgroup-leak".into(),
            cmdline: "/bin/c-cgroup-leak".into(),
            cgroup: Some("/sys/fs/cgroup/x".into()),
        };
        // Run the wrapper with a fake cgroup.procs: it writes its own pid
        // there and execs the program.
        let dir = tempfile::tempdir().unwrap();
        let p = Planned {
            cgroup: Some(dir.path().to_path_buf()),
            argv: vec!["echo".into(), "it's ran".into()],
            ..p
        };
        let out = Command::new("sh")
            .arg("-c")
            .arg(p.shell_command())
            .output()
            .unwrap();
        assert_eq!(String::from_utf8_lossy(&out.stdout), "it's ran\n");
        let pid = std::fs::read_to_string(dir.path().join("cgroup.procs")).unwrap();
        assert!(pid.trim().parse::<u32>().is_ok(), "{pid}");
    }

    #[test]
    fn toml_strings_are_escaped() {
        assert_eq!(toml_str("a\"b\\c\n\u{1}"), "\"a\\\"b\\\\c\\n\\u0001\"");
    }

    #[test]
    fn comm_is_the_file_name_cut_to_15_bytes() {
        assert_eq!(
            comm_of(Path::new("/usr/bin/python3")),
            "python3".to_string()
        );
        assert_eq!(
            comm_of(Path::new("/o/bin/c-arena-plateau-long")),
            "c-arena-plateau"
        );
    }
}
