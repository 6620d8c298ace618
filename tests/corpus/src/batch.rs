//! The third-party batch corpus: ordinary programs from the distribution
//! (compressors, `sort`, compilers, `git`, interpreters building a hash or
//! parsing JSON, `javac`, `sqlite3`, ...) doing normal, memory-hungry but
//! correct work on generated input, then exiting by themselves. None of
//! them leaks: their memory grows with the input until they exit, which is
//! what issue 26 saw `memleak run --fail-on-leak` call a leak.
//!
//! Each [`Case`] names the tools it needs (binary and Debian package), a
//! shell `setup` that generates its input deterministically in the case's
//! own directory, and the shell `command` memleak runs (`sh -c`, so a
//! single program is `exec`'d and a pipeline stays one job). `$PYTHON` is
//! the Python interpreter itself (not pyenv's shim chain).
//!
//! `cargo xtask corpus --set batch` runs them all and prints a table;
//! `tests/tests/batch_corpus.rs` runs the [`Case::quick`] ones.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::CorpusError;

/// One batch program and its input.
#[derive(Debug)]
pub struct Case {
    /// Case name (the directory and recording are named after it).
    pub name: &'static str,
    /// What it does and why it is here, in one line.
    pub what: &'static str,
    /// `(binary, Debian package)` it needs on PATH.
    pub tools: &'static [(&'static str, &'static str)],
    /// In the quick subset (end-to-end test): tools found on a fresh
    /// machine of this kind, a few seconds each.
    pub quick: bool,
    /// Generates the input in the case's directory (not recorded).
    pub setup: &'static str,
    /// The recorded command (`sh -c`).
    pub command: &'static str,
}

/// 2 M lines `k<random> <n>` (~37 MB), for sort and the hash builders.
const LINES: &str = "awk 'BEGIN{srand(1);for(i=0;i<2000000;i++)printf \"k%d %d\\n\", int(rand()*1e9), i}' > lines.txt";

/// 3 M such lines (~56 MB): sort and perl/python finish in under 3 s
/// with 2 M on a quiet machine, too short to judge.
const LINES_3M: &str = "awk 'BEGIN{srand(1);for(i=0;i<3000000;i++)printf \"k%d %d\\n\", int(rand()*1e9), i}' > lines.txt";

/// The first 1 M of those lines (mawk's arrays are slower to fill).
const LINES_1M: &str = "awk 'BEGIN{srand(1);for(i=0;i<1000000;i++)printf \"k%d %d\\n\", int(rand()*1e9), i}' > lines.txt";

/// ~60 MB JSON array of 1 M small objects.
const JSON: &str = "awk 'BEGIN{srand(3);printf \"[\";for(i=0;i<1000000;i++){if(i)printf \",\";\
printf \"{\\\"id\\\":%d,\\\"name\\\":\\\"n%d\\\",\\\"v\\\":%d,\\\"tags\\\":[\\\"a%d\\\",\\\"b%d\\\"]}\", \
i, int(rand()*1e9), int(rand()*1000), i%97, i%89};print \"]\"}' > big.json";

/// The corpus. Sizes are chosen so each case runs 3–20 s on a busy
/// 2-core VM.
pub const CASES: &[Case] = &[
    Case {
        name: "xz-9",
        what: "xz -9 (64 MiB dictionary, bt4 match finder) compresses 6 MB of random words",
        tools: &[("xz", "xz-utils")],
        quick: true,
        setup: "awk 'BEGIN{srand(2);for(i=0;i<1000000;i++)printf \"w%d w%d\\n\", int(rand()*50000), int(rand()*300)}' | head -c 6000000 > text.txt",
        command: "exec xz -9 -T1 -k -f text.txt",
    },
    Case {
        name: "zstd-19-long",
        what: "zstd -19 --long=27 (128 MiB window) compresses 6 MB of random words",
        tools: &[("zstd", "zstd")],
        quick: false,
        setup: "awk 'BEGIN{srand(2);for(i=0;i<1000000;i++)printf \"w%d w%d\\n\", int(rand()*50000), int(rand()*300)}' | head -c 6000000 > text.txt",
        command: "exec zstd -q -19 --long=27 -T1 -f text.txt -o text.txt.zst",
    },
    Case {
        name: "sort-S1G",
        what: "sort -S 1G of 3 M random lines: the in-memory buffer fills with the input",
        tools: &[("sort", "coreutils"), ("awk", "mawk")],
        quick: true,
        setup: LINES_3M,
        command: "exec sort -S 1G lines.txt -o sorted.txt",
    },
    Case {
        name: "gcc-O2",
        what: "gcc -O2 -c of a generated 1,200-function C file (cc1's GC heap grows)",
        tools: &[("gcc", "gcc"), ("awk", "mawk")],
        quick: true,
        setup: "awk 'BEGIN{for(i=0;i<1200;i++)printf \"int f%d(int *a,int n){int s=%d;for(int i=0;i<n;i++){s+=a[i]*%d^(s>>3);if(s>%d)s-=a[(i+%d)%%n];}return s;}\\n\",i,i,i,i*7,i;\
printf \"int (*tab[])(int*,int)={\";for(i=0;i<1200;i++)printf \"f%d,\",i;print \"0};\"}' > big.c",
        command: "exec gcc -O2 -c big.c -o big.o",
    },
    Case {
        name: "g++-O2-templates",
        what: "g++ -O2 -c of 40 structs each sorted, put in std::map and std::function (cc1plus)",
        tools: &[("g++", "g++"), ("awk", "mawk")],
        quick: false,
        setup: "awk 'BEGIN{print \"#include <map>\\n#include <vector>\\n#include <string>\\n#include <algorithm>\\n#include <functional>\";\
for(i=0;i<40;i++)printf \"struct S%d{int a;std::string b;bool operator<(const S%d&o)const{return a<o.a;}};\\n\
int g%d(std::vector<S%d>&v,std::map<std::string,S%d>&m){std::sort(v.begin(),v.end());for(auto&x:v)m[x.b]=x;\
std::function<int(const S%d&)> f=[](const S%d&s){return s.a;};int t=0;for(auto&p:m)t+=f(p.second);return t;}\\n\",i,i,i,i,i,i,i}' > tpl.cc",
        command: "exec g++ -O2 -c tpl.cc -o tpl.o",
    },
    Case {
        name: "git-repack",
        what: "git repack -adf --window=250 of a generated 300-commit repository (pack-objects)",
        tools: &[("git", "git"), ("awk", "mawk")],
        quick: false,
        setup: "git init -q repo && cd repo && awk 'BEGIN{srand(4);for(c=1;c<=300;c++){\
print \"commit refs/heads/main\";print \"committer A <a@example.com> \" 1700000000+c \" +0000\";\
print \"data <<EOT\";print \"commit \" c;print \"EOT\";\
for(f=0;f<4;f++){n=int(rand()*300);print \"M 644 inline f\" n \".txt\";print \"data <<EOT\";\
for(l=0;l<150;l++)print \"line \" l \" \" int(rand()*1000) \" of file \" n \" at \" c;print \"EOT\"}print \"\"}}' \
| git fast-import --quiet",
        command: "cd repo && exec git repack -q -adf --window=250 --depth=50",
    },
    Case {
        name: "awk-hash",
        what: "awk (mawk) builds an array of 1 M keys from a file",
        tools: &[("awk", "mawk")],
        quick: true,
        setup: LINES_1M,
        command: "exec awk '{h[$1]=$2} END{n=0;for(k in h)n++;print n}' lines.txt",
    },
    Case {
        name: "perl-hash",
        what: "perl builds a hash of 3 M keys from a file",
        tools: &[("perl", "perl"), ("awk", "mawk")],
        quick: true,
        setup: LINES_3M,
        command: "exec perl -ne '($k,$v)=split; $h{$k}=$v; END{print scalar(keys %h),\"\\n\"}' lines.txt",
    },
    Case {
        name: "python-dict",
        what: "python3 builds a dict of 3 M keys from a file",
        tools: &[("python3", "python3"), ("awk", "mawk")],
        quick: false,
        setup: LINES_3M,
        command: "exec \"$PYTHON\" -c 'import sys\nd={}\nfor l in open(sys.argv[1]):\n    k,v=l.split(); d[k]=v\nprint(len(d))' lines.txt",
    },
    Case {
        name: "node-map",
        what: "node builds a Map of 2 M keys from a file",
        tools: &[("node", "nodejs"), ("awk", "mawk")],
        quick: false,
        setup: LINES,
        command: "exec node -e 'const m=new Map();for(const l of require(\"fs\").readFileSync(process.argv[1],\"utf8\").split(\"\\n\")){const i=l.indexOf(\" \");m.set(l.slice(0,i),l.slice(i+1))};console.log(m.size)' lines.txt",
    },
    Case {
        name: "jq-sum",
        what: "jq reads a 60 MB JSON array and sums a field",
        tools: &[("jq", "jq"), ("awk", "mawk")],
        quick: false,
        setup: JSON,
        command: "exec jq 'map(.v) | add' big.json",
    },
    Case {
        name: "python-json",
        what: "python3 json.load of a 60 MB JSON array",
        tools: &[("python3", "python3"), ("awk", "mawk")],
        quick: false,
        setup: JSON,
        command: "exec \"$PYTHON\" -c 'import json,sys; print(len(json.load(open(sys.argv[1]))))' big.json",
    },
    Case {
        name: "node-json",
        what: "node JSON.parse of a 60 MB JSON array",
        tools: &[("node", "nodejs"), ("awk", "mawk")],
        quick: false,
        setup: JSON,
        command: "exec node -e 'console.log(JSON.parse(require(\"fs\").readFileSync(process.argv[1],\"utf8\")).length)' big.json",
    },
    Case {
        name: "javac-classes",
        what: "javac of 500 generated classes calling each other (the JVM heap grows)",
        tools: &[("javac", "default-jdk-headless"), ("awk", "mawk")],
        quick: false,
        setup: "mkdir -p jsrc classes && awk 'BEGIN{for(i=0;i<500;i++){f=\"jsrc/C\" i \".java\";\
printf \"public class C%d { public static int f(int x){ java.util.List<Integer> l=new java.util.ArrayList<>(); \
for(int i=0;i<x;i++) l.add(i*%d); return l.stream().mapToInt(Integer::intValue).sum() + %s; } }\\n\", \
i, i, (i ? \"C\" (i-1) \".f(x-1)\" : \"0\") > f; close(f)}}'",
        command: "exec javac -d classes jsrc/*.java",
    },
    Case {
        name: "sqlite3-index",
        what: "sqlite3 builds two indexes on a 1 M-row table with a 256 MiB page cache",
        tools: &[("sqlite3", "sqlite3")],
        quick: false,
        setup: "sqlite3 db.sqlite \"CREATE TABLE t(a INTEGER, b TEXT); WITH RECURSIVE c(x) AS \
(SELECT 1 UNION ALL SELECT x+1 FROM c WHERE x<1000000) INSERT INTO t SELECT (x*7919)%1000003, 'row'||(x*104729%1000003) FROM c;\"",
        command: "exec sqlite3 db.sqlite 'PRAGMA cache_size=-262144; CREATE INDEX ib ON t(b); CREATE INDEX ia ON t(a);'",
    },
    Case {
        name: "tar-gzip",
        what: "tar | gzip -6 of 37 MB of text (streaming: flat memory, a control)",
        tools: &[("tar", "tar"), ("gzip", "gzip"), ("awk", "mawk")],
        quick: false,
        setup: LINES,
        command: "tar cf - lines.txt | gzip -6 > lines.tar.gz",
    },
    Case {
        name: "find-sort-u",
        what: "eight prefixed listings of find /usr -xdev piped into sort -u (sort holds every path)",
        tools: &[("find", "findutils"), ("sort", "coreutils")],
        quick: false,
        setup: "true",
        command: "for i in 1 2 3 4 5 6 7 8; do find /usr -xdev -printf \"$i %p\\n\"; done | sort -u > paths.txt",
    },
];

/// The tools of `case` not on PATH, as `(binary, package)`.
pub fn missing_tools(case: &Case) -> Vec<(&'static str, &'static str)> {
    case.tools
        .iter()
        .filter(|(bin, _)| crate::on_path(bin).is_none())
        .copied()
        .collect()
}

/// The Python interpreter for `$PYTHON` (pyenv's `python3` is a shell shim
/// that starts dozens of short processes first), or `python3`.
pub fn python() -> String {
    crate::python_interpreter()
        .map(|p| p.display().to_string())
        .unwrap_or_else(|_| "python3".into())
}

/// Runs `case.setup` in `dir` (created).
pub fn setup(case: &Case, dir: &Path) -> Result<(), CorpusError> {
    std::fs::create_dir_all(dir).map_err(crate::io(format!("creating {}", dir.display())))?;
    crate::build(
        format!("setup of {}", case.name),
        Command::new("sh")
            .arg("-c")
            .arg(case.setup)
            .current_dir(dir)
            .env("PYTHON", python()),
    )
}

/// What one run of a case under `memleak run --fail-on-leak` gave.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub case: &'static str,
    /// memleak's exit code (3: a leak flagged).
    pub memleak_exit: Option<i32>,
    /// The case command's exit code, from the report's recording.
    pub command_exit: Option<i64>,
    /// The process that grew most (anonymous memory): name and pid.
    pub top: Option<(String, i64)>,
    /// Its verdict (`-` when no process was judged).
    pub verdict: String,
    /// Its peak anonymous memory (anon + shmem + swap), bytes.
    pub peak_anon: Option<f64>,
    /// Its fitted anon growth across the analysed window, bytes.
    pub growth: Option<f64>,
    /// Anonymous memory it gave back in the exit teardown, bytes.
    pub released_at_exit: Option<f64>,
    /// Every process with a `leak` verdict: `comm[pid]: why`.
    pub leaks: Vec<String>,
    /// Wall time of the memleak run, seconds.
    pub seconds: f64,
    /// The recording and the JSON report.
    pub recording: PathBuf,
    pub report: PathBuf,
}

/// The anon finding of a process (the one leaks are judged on).
fn anon_finding(p: &serde_json::Value) -> Option<&serde_json::Value> {
    p["findings"]
        .as_array()?
        .iter()
        .find(|f| f["metric"] == "anon")
}

/// Runs `case` (set up already in `dir`) under
/// `memleak run -q --fail-on-leak --format json` at default settings.
pub fn run(memleak: &Path, case: &Case, dir: &Path) -> Result<Outcome, CorpusError> {
    let recording = dir.join(format!("{}.memleak", case.name));
    let report = dir.join(format!("{}.json", case.name));
    let _ = std::fs::remove_file(&recording);
    let started = std::time::Instant::now();
    let out = Command::new(memleak)
        .current_dir(dir)
        .env("PYTHON", python())
        .args(["run", "-q", "--fail-on-leak", "--format", "json", "-o"])
        .arg(&recording)
        .args(["--report"])
        .arg(&report)
        .args(["--", "sh", "-c", case.command])
        .output()
        .map_err(crate::io(format!("starting {}", memleak.display())))?;
    let seconds = started.elapsed().as_secs_f64();
    let text = std::fs::read_to_string(&report).map_err(crate::io(format!(
        "reading the report of {} (memleak said: {})",
        case.name,
        String::from_utf8_lossy(&out.stderr).trim()
    )))?;
    let json: serde_json::Value = serde_json::from_str(&text).map_err(|e| CorpusError::Io {
        what: format!("parsing {}", report.display()),
        source: std::io::Error::other(e),
    })?;
    let procs = json["processes"].as_array().cloned().unwrap_or_default();
    let growth_of = |p: &serde_json::Value| {
        anon_finding(p)
            .and_then(|f| f["growth_bytes"].as_f64())
            .unwrap_or(f64::MIN)
    };
    let top = procs
        .iter()
        .max_by(|a, b| growth_of(a).total_cmp(&growth_of(b)));
    let leaks = procs
        .iter()
        .filter(|p| p["verdict"] == "leak")
        .map(|p| {
            let why = p["findings"]
                .as_array()
                .and_then(|fs| fs.iter().find(|f| f["verdict"] == "leak"))
                .and_then(|f| f["why"].as_str())
                .unwrap_or("-");
            format!(
                "{}[{}]: {why}",
                p["comm"].as_str().unwrap_or("?"),
                p["pid"].as_i64().unwrap_or(0)
            )
        })
        .collect();
    let peak_anon = top.and_then(|p| peak_anon(memleak, &recording, p["pid"].as_i64()?));
    Ok(Outcome {
        case: case.name,
        memleak_exit: out.status.code(),
        command_exit: json["recording"]["exit_code"].as_i64(),
        top: top.map(|p| {
            (
                p["comm"].as_str().unwrap_or("?").to_string(),
                p["pid"].as_i64().unwrap_or(0),
            )
        }),
        verdict: match top {
            Some(p) => p["verdict"].as_str().unwrap_or("-").to_string(),
            // Nothing judged: say why (e.g. too short).
            None => json["skipped"]
                .as_array()
                .and_then(|s| s.first())
                .map_or("-".into(), |s| {
                    format!("not judged ({})", s["reason"].as_str().unwrap_or("?"))
                }),
        },
        peak_anon,
        growth: top
            .and_then(anon_finding)
            .and_then(|f| f["growth_bytes"].as_f64()),
        released_at_exit: top.and_then(|p| p["released_at_exit_bytes"].as_f64()),
        leaks,
        seconds,
        recording,
        report,
    })
}

/// Peak of rss_anon + rss_shmem + swap of `pid` in the recording, from
/// `memleak info --series`.
fn peak_anon(memleak: &Path, recording: &Path, pid: i64) -> Option<f64> {
    let out = Command::new(memleak)
        .arg("info")
        .arg("--series")
        .arg(pid.to_string())
        .arg(recording)
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    let mut lines = text.lines();
    let head: Vec<&str> = lines.next()?.split(',').collect();
    let col = |name: &str| head.iter().position(|h| *h == name);
    let cols = [col("rss_anon")?, col("rss_shmem")?, col("swap")?];
    lines
        .filter_map(|l| {
            let f: Vec<&str> = l.split(',').collect();
            cols.iter()
                .map(|&c| f.get(c)?.parse::<f64>().ok())
                .sum::<Option<f64>>()
        })
        .reduce(f64::max)
}

fn mib(v: Option<f64>) -> String {
    v.map_or("-".into(), |b| format!("{:.0} MiB", b / 1048576.0))
}

/// The table header and one row per outcome (Markdown).
pub fn table(outcomes: &[Outcome]) -> String {
    let mut s = String::from(
        "| case | memleak exit | command exit | grew most | verdict | peak anon | growth | freed at exit | time |\n\
         |---|---|---|---|---|---|---|---|---|\n",
    );
    for o in outcomes {
        s.push_str(&format!(
            "| {} | {} | {} | {} | {} | {} | {} | {} | {:.0} s |\n",
            o.case,
            o.memleak_exit.map_or("signal".into(), |c| c.to_string()),
            o.command_exit.map_or("-".into(), |c| c.to_string()),
            o.top.as_ref().map_or("-".into(), |(c, _)| format!("`{c}`")),
            if o.verdict == "leak" {
                "**leak**".to_string()
            } else {
                o.verdict.clone()
            },
            mib(o.peak_anon),
            mib(o.growth),
            mib(o.released_at_exit),
            o.seconds
        ));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cases_are_named_once_and_the_quick_subset_is_small() {
        let mut names: Vec<&str> = CASES.iter().map(|c| c.name).collect();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), CASES.len());
        assert!(CASES.len() >= 15);
        let quick = CASES.iter().filter(|c| c.quick).count();
        assert!((4..=6).contains(&quick), "{quick}");
    }
}
