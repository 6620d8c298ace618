"""pytest plugin: fail the tests that keep memory, and record the session
with memleak.

Two checks, both about memory a test *kept*: anonymous memory (RssAnon +
RssShmem + VmSwap) still held after the test, its fixtures' teardown and a
garbage collection, minus what was held before it started.

1. In every pytest process that runs tests (the session, or each
   pytest-xdist worker), the plugin reads /proc/self/status before and after
   each test. A test that kept at least the floor is rerun in the same
   process, and fails when every rerun kept at least the floor too (a leak
   keeps memory on every run; a cache or an import warmed once does not),
   or, with a stated limit, when its one run kept at least the limit. The
   failure shows in the terminal, in --junitxml, and in the exit code like
   any other failure.

2. With --memleak, the first pytest process runs the same command under
   `memleak run --fail-on-leak -- python -m pytest ARGS`: memleak records
   the whole process tree, and the pytest inside marks each test's start and
   end (MEMLEAK_MARKERS, with its pid). memleak's report then lists
   processes that grew like a leak, and per-test verdicts measured from the
   recording: the cross-check of (1), and the net for leaks in
   subprocesses. A leak flagged by memleak fails the session with pytest's
   TESTS_FAILED (1), never 3 (pytest's INTERNAL_ERROR).
"""

import ctypes
import gc
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import time

import pytest
from _pytest.runner import runtestprotocol

from .markers import ENV, Markers, fit_name

# Set in the re-executed session so it does not re-execute again.
_INNER = "PYTEST_MEMLEAK_INNER"
# File where the inner session writes its exit status for the outer one.
_STATUS = "PYTEST_MEMLEAK_STATUS"
# File where the inner session lists the tests it flagged (one node id a
# line), so the outer one can show where they grew (--memleak-locate).
_FLAGGED = "PYTEST_MEMLEAK_FLAGGED"
# memleak's exit code when it flagged a leak (--fail-on-leak).
_MEMLEAK_EXIT_LEAK = 3
# memleak's exit code for a usage error (a bad --memleak-args).
_MEMLEAK_EXIT_USAGE = 2
# memleak's sampling interval (seconds), passed down to the inner session.
_INTERVAL = "PYTEST_MEMLEAK_INTERVAL_S"
# Set in the inner session with --memleak-locate.
_LOCATE = "PYTEST_MEMLEAK_LOCATE"
# With --memleak-locate, how long a process that ran tests stays after its
# last one (seconds): memleak names the sampled stacks while the process
# lives, and naming the first stacks of a library (reading its symbols and
# debug info) takes up to about a second.
_LOCATE_HOLD_S = 2.0
# Session recordings kept in pytest's cache; older ones are deleted.
_KEEP_IN_CACHE = 5
# memleak's default interval, when the recording was started elsewhere
# (`memleak run -- pytest`) and the plugin cannot know it.
_DEFAULT_INTERVAL_S = 1.0

# What a test must keep to be rerun, and what every rerun must keep to
# fail it: mirrors memleak's TEST_FLOOR_BYTES (memleak-user/src/analyse/
# phases.rs), so the plugin and memleak's report apply one rule.
#
# Half the smallest leak worth naming (1 MiB per run), which clears it
# twice over; above what a test that keeps nothing moves: pytest's own
# per-test bookkeeping (KiB), pages and obmalloc pools, glibc's 128 KiB
# heap-top steps, and obmalloc's 1 MiB arenas (CPython 3.10+), which go
# back only when wholly free, so a test that makes and drops many objects
# can leave a few hundred KiB of pools behind on each run. The reasoning is
# memleak's (TEST_FLOOR_BYTES). One run above it proves nothing (a cache
# or an import warmed once keeps memory too): the reruns decide, as
# CPython's `regrtest -R` and pytest-leaks do.
_KEPT_FLOOR = 512 << 10
# Reruns of a test that kept at least the floor. A leak keeps memory on
# each; a warm-up keeps ~nothing after the first run, so one rerun below
# the floor clears a test and the rest are skipped.
_RERUNS = 3

_UNITS = {
    "": 1,
    "b": 1,
    "k": 1 << 10,
    "kib": 1 << 10,
    "m": 1 << 20,
    "mib": 1 << 20,
    "g": 1 << 30,
    "gib": 1 << 30,
    "kb": 10**3,
    "mb": 10**6,
    "gb": 10**9,
}


def parse_size(text):
    """'10 MiB', '10MiB', '512k', '1GB', 1048576 -> bytes (int).

    Units as memleak's: K/KiB/M/MiB/G/GiB are binary, KB/MB/GB decimal.
    """
    if isinstance(text, (int, float)) and not isinstance(text, bool):
        if text < 0:
            raise ValueError("a size must not be negative: %r" % (text,))
        return int(text)
    m = re.fullmatch(r"\s*([0-9]+(?:\.[0-9]*)?)\s*([A-Za-z]*)\s*", str(text))
    if not m or m.group(2).lower() not in _UNITS:
        raise ValueError(
            "%r is not a size (examples: 10MiB, 512KiB, 1GB, 1048576)" % (text,)
        )
    return int(float(m.group(1)) * _UNITS[m.group(2).lower()])


def fmt_size(n):
    """1.5 MiB, 312 B, -2.0 GiB (as memleak prints them)."""
    sign = "-" if n < 0 else ""
    v = float(abs(n))
    if v < 1024:
        return "%s%.0f B" % (sign, v)
    for unit in ("KiB", "MiB", "GiB"):
        v /= 1024
        if v < 1024 or unit == "GiB":
            break
    return "%s%.1f %s" % (sign, v, unit)


def anon_bytes():
    """RssAnon + RssShmem + VmSwap of this process, bytes; None off Linux.

    Anonymous memory only: the virtual size grows with thread stacks and
    reserved arenas that use no memory, and file-backed pages (libraries,
    mmapped files) are the page cache's to drop.
    """
    try:
        with open("/proc/self/status", "rb") as f:
            status = f.read()
    except OSError:
        return None
    total = 0
    found = False
    for line in status.splitlines():
        key, _, rest = line.partition(b":")
        if key in (b"RssAnon", b"RssShmem", b"VmSwap"):
            total += int(rest.split()[0]) * 1024
            found = True
    return total if found else None


def _malloc_trim():
    """glibc's malloc_trim(0), or None where there is none (musl, macOS)."""
    try:
        return ctypes.CDLL(None).malloc_trim
    except (OSError, AttributeError):
        return None


_TRIM = _malloc_trim()


def settle():
    """Frees what nothing references any more and hands it back to the OS.

    gc.collect() frees unreachable reference cycles. Then malloc_trim(0)
    returns glibc's free pages: after a freed large buffer, glibc raises its
    mmap threshold and serves later buffers from the heap, where freed
    memory stays resident until trimmed. Without this, a test that only
    churned memory would look as if it kept it.
    """
    gc.collect()
    if _TRIM is not None:
        _TRIM(0)


# (option, ini type, ini help). Every --memleak-* option has a memleak_*
# ini key of the same name, so a project can switch the plugin on in its
# pytest.ini / pyproject.toml; the command line wins over the ini.
_INI = [
    ("memleak", "bool", "like --memleak: check tests and record the session"),
    ("memleak_bin", None, "like --memleak-bin: the memleak binary"),
    ("memleak_args", None, "like --memleak-args: extra `memleak run` options"),
    ("memleak_no_fail", "bool", "like --memleak-no-fail: report leaks without failing"),
    ("memleak_kept", None, "like --memleak-kept: the per-test kept-memory threshold"),
    ("memleak_dir", None, "like --memleak-dir: where recordings go"),
    ("memleak_locate", "bool", "like --memleak-locate: sample where tests touch new memory"),
    ("memleak_reruns", None, "like --memleak-reruns: reruns confirming a leak"),
]


def pytest_addoption(parser):
    group = parser.getgroup("memleak", "memory-leak alert (memleak)")
    # Defaults are None so that an unset flag falls back to the ini key.
    group.addoption(
        "--memleak",
        action="store_true",
        default=None,
        help="fail tests that keep memory, and run the session under `memleak run`",
    )
    group.addoption(
        "--no-memleak",
        action="store_false",
        dest="memleak",
        help="turn the plugin off when the ini file turns it on (memleak = true)",
    )
    group.addoption(
        "--memleak-bin",
        default=None,
        metavar="PATH",
        help="memleak binary (default: $MEMLEAK_BIN, else memleak on PATH)",
    )
    group.addoption(
        "--memleak-args",
        default=None,
        metavar="ARGS",
        help='extra `memleak run` options, e.g. "-i 100ms --horizon 2h"',
    )
    group.addoption(
        "--memleak-no-fail",
        action="store_true",
        default=None,
        help="report leaks without failing tests or the session",
    )
    group.addoption(
        "--memleak-kept",
        default=None,
        metavar="SIZE",
        help="a stated limit: fail a test when one run of it keeps this much "
        "anonymous memory, without reruns (default: rerun a test that kept "
        "%s and fail it when every rerun keeps that much too); "
        "turns the per-test check on without --memleak" % fmt_size(_KEPT_FLOOR),
    )
    group.addoption(
        "--memleak-reruns",
        default=None,
        metavar="N",
        help="reruns of a test that kept at least %s, in the same process: "
        "it fails when every rerun keeps that much too (default: %d)"
        % (fmt_size(_KEPT_FLOOR), _RERUNS),
    )
    group.addoption(
        "--memleak-dir",
        default=None,
        metavar="DIR",
        help="folder for the session's recording (default: pytest's cache, "
        ".pytest_cache/d/memleak, which keeps the newest %d)" % _KEEP_IN_CACHE,
    )
    group.addoption(
        "--memleak-locate",
        action="store_true",
        default=None,
        help="with --memleak: also sample where new memory is first touched, with "
        "stacks (`memleak run --locate`), and name the function on top of each "
        "leaking test's stacks",
    )
    for name, kind, text in _INI:
        parser.addini(name, text, type=kind, default=False if kind == "bool" else "")


def _opt(config, name):
    """The --memleak-* option, else its memleak_* ini key."""
    value = config.getoption(name)
    if value is None:
        value = config.getini(name)
    return value


def _memleak_bin(config):
    b = _opt(config, "memleak_bin") or os.environ.get("MEMLEAK_BIN") or "memleak"
    found = shutil.which(b)
    if found is None:
        raise pytest.UsageError(
            "--memleak: cannot find the memleak binary %r; install it or pass --memleak-bin PATH" % b
        )
    return found


def _kept_threshold(config):
    """The fixed threshold from --memleak-kept or the ini, or None."""
    text = _opt(config, "memleak_kept")
    if not text:
        return None
    try:
        return parse_size(text)
    except ValueError as e:
        raise pytest.UsageError("--memleak-kept / memleak_kept: %s" % e)


def _reruns(config):
    text = _opt(config, "memleak_reruns")
    if text in (None, ""):
        return _RERUNS
    try:
        n = int(text)
        if n < 1:
            raise ValueError
    except ValueError:
        raise pytest.UsageError("--memleak-reruns / memleak_reruns: %r is not a count >= 1" % text)
    return n


def _has_output(args):
    """Whether memleak's arguments already name the recording (-o)."""
    return any(
        a in ("-o", "--output") or a.startswith("--output=") or (a.startswith("-o") and len(a) > 2)
        for a in args
    )


def _recording_dir(config):
    """(folder for the recording, whether the plugin owns it and prunes it).

    Not the project folder, where a recording per session piles up and ends
    in commits: --memleak-dir, else pytest's cache, else a temporary folder
    (with -p no:cacheprovider).
    """
    chosen = _opt(config, "memleak_dir")
    if chosen:
        path = os.path.join(str(config.invocation_params.dir), os.path.expanduser(chosen))
        try:
            os.makedirs(path, exist_ok=True)
        except OSError as e:
            raise pytest.UsageError("--memleak-dir / memleak_dir: cannot create %s: %s" % (path, e))
        return path, False
    if config.pluginmanager.has_plugin("cacheprovider"):
        return _cache_subdir(config), True
    return tempfile.mkdtemp(prefix="pytest-memleak-"), False


def _cache_subdir(config):
    """pytest's `config.cache.mkdir("memleak")`, made by hand: this runs in
    pytest_cmdline_main, before the cache provider sets `config.cache`."""
    ini = os.path.expanduser(os.path.expandvars(config.getini("cache_dir")))
    root = os.path.join(str(config.rootpath), ini)
    path = os.path.join(root, "d", "memleak")
    os.makedirs(path, exist_ok=True)
    # pytest writes this only when it creates the cache folder itself: if
    # we made it first, the cache would show up in `git status`.
    ignore = os.path.join(root, ".gitignore")
    if not os.path.exists(ignore):
        with open(ignore, "w") as f:
            f.write("# Created by pytest automatically.\n*\n")
    return path


def _prune(folder, keep):
    """Deletes all but the newest `keep` session recordings (and their WAL)."""
    mine = sorted(
        f for f in os.listdir(folder) if f.startswith("session-") and f.endswith(".memleak")
    )
    for name in mine[: max(0, len(mine) - keep)]:
        for suffix in ("", "-wal", "-shm", "-journal"):
            try:
                os.unlink(os.path.join(folder, name + suffix))
            except OSError:
                pass


def _output_arg(args):
    """The value of -o/--output in memleak's arguments, or None."""
    for k, a in enumerate(args):
        if a in ("-o", "--output"):
            return args[k + 1] if k + 1 < len(args) else None
        if a.startswith("--output="):
            return a.split("=", 1)[1]
        if a.startswith("-o") and not a.startswith("--"):
            return a[2:]
    return None


def top_frame(stack):
    """'function (file:line)' of a located stack's innermost named frame
    (the first frame's address or module when none is named)."""
    frames = stack.get("frames") or []
    named = [f for f in frames if f.get("function")]
    f = named[0] if named else (frames[0] if frames else None)
    if f is None:
        return "?"
    what = f.get("function") or "%#x" % f.get("addr", 0)
    return "%s (%s)" % (what, f["location"]) if f.get("location") else what


def where_tests_grew(report, flagged):
    """Lines naming the top located stack of each flagged test.

    `report` is memleak's JSON report; `flagged` the node ids the plugin
    failed. Tests memleak flagged are added after them.
    """
    names = list(flagged)
    for t in report.get("tests") or []:
        if t.get("flagged") and t.get("name") not in names:
            names.append(t["name"])
    located = report.get("located") or {}
    phases = {p["name"]: p for p in located.get("phases") or []}
    lines = []
    for name in names:
        p = phases.get(fit_name(name).decode("utf-8"))
        if not p or not p.get("stacks"):
            lines.append(
                "LEAK %s: no page fault sampled during it (it touched little new "
                "memory, or in a process memleak did not locate)" % name
            )
            continue
        top = p["stacks"][0]
        share = 100.0 * top["samples"] / max(1, p["samples"])
        who = "%s (pid %d)" % (top["comm"], top["pid"]) if top["comm"] else "pid %d" % top["pid"]
        lines.append(
            "LEAK %s: %s of new memory first touched; %.0f%% at %s in %s"
            % (name, fmt_size(p["estimated_bytes"]), share, top_frame(top), who)
        )
    return lines


def _report_where_tests_grew(config, recording, flagged_path):
    """Outer session, --memleak-locate: memleak's JSON report of the
    recording, then the top stack of each leaking test."""
    flagged = []
    try:
        with open(flagged_path) as f:
            flagged = [line.strip() for line in f if line.strip()]
    except OSError:
        pass
    argv = [_memleak_bin(config), "analyze", recording, "--format", "json"]
    kept = _kept_threshold(config)
    if kept is not None:
        argv += ["--test-kept", str(kept)]
    try:
        out = subprocess.run(argv, capture_output=True, text=True)
        report = json.loads(out.stdout)
    except (OSError, ValueError) as e:
        sys.stderr.write("pytest-memleak: cannot read the located stacks: %s\n" % e)
        return
    lines = where_tests_grew(report, flagged)
    if not lines:
        return
    title = " memleak: where the leaking tests first touched new memory "
    sys.stdout.write("%s\n" % title.center(79, "="))
    for line in lines:
        sys.stdout.write(line + "\n")
    sys.stdout.flush()


def _interval_arg(args):
    """The value of -i/--interval in memleak's arguments, or None."""
    for k, a in enumerate(args):
        if a in ("-i", "--interval"):
            return args[k + 1] if k + 1 < len(args) else None
        if a.startswith("--interval="):
            return a.split("=", 1)[1]
        if a.startswith("-i") and not a.startswith("--"):
            return a[2:]
    return None


def parse_interval(text):
    """'100ms', '1s', '2m', '1.5s' -> seconds; None when not understood."""
    m = re.fullmatch(r"\s*([0-9]+(?:\.[0-9]*)?)\s*(ms|s|m|min)?\s*", str(text))
    if not m:
        return None
    scale = {"ms": 0.001, "s": 1.0, None: 1.0, "m": 60.0, "min": 60.0}[m.group(2)]
    return float(m.group(1)) * scale


def let_the_recorder_look():
    """Leaves the CPU for a moment, so memleak re-reads this process now.

    memleak's default eBPF hook refreshes a process's figures when it
    leaves the CPU, and only at 4 Hz while it runs: a CPU-bound session
    going straight into its next test would show the settled figure up to
    250 ms late. A 1 ms sleep per test is cheaper than that error.
    """
    time.sleep(0.001)


def wait_for_locate(markers):
    """With --memleak-locate: returns once memleak has read the marker just
    sent (at most 50 ms), so the samples of the next test are not charged
    to this one."""
    if os.environ.get(_LOCATE):
        markers.wait_read()


def wait_for_a_tick():
    """Under memleak: sleeps three sampling intervals, so the recorder takes
    (at least) one tick of this process now.

    memleak reads a test's figures from its ticks, not at the markers: a
    rerun and the next one both fit between two ticks of a fast test, and
    memleak would see the runs as keeping nothing. A tick of the settled
    process right before each rerun's end marker (which the next rerun's
    begin follows at once) lets it measure each rerun as the plugin does.
    Three intervals: a busy machine delays ticks, and a missed tick moves
    one rerun's memory into the next, so that one looks like it kept
    nothing (seen with two, on 2 cores under load).
    """
    interval = parse_interval(os.environ.get(_INTERVAL, "")) or _DEFAULT_INTERVAL_S
    time.sleep(3 * interval)


def hold_still_for_the_recorder():
    """Lets memleak sample this process once more before it exits.

    memleak reads a test's closing figure from the sampler tick after its
    end marker (the tick before may hold a transient peak). After the last
    test nothing else keeps the process alive: without a pause, that tick
    falls into interpreter shutdown, which frees the heap. 5 intervals:
    memleak looks for that tick up to 5 intervals after a process's last
    end marker (a busy machine delays ticks) and ignores figures taken
    within one interval of its exit, so a tick up to 4 intervals late counts.
    """
    interval = parse_interval(os.environ.get(_INTERVAL, "")) or _DEFAULT_INTERVAL_S
    hold = 5 * interval
    if os.environ.get(_LOCATE):
        hold = max(hold, _LOCATE_HOLD_S)
    time.sleep(hold)


def session_exit_code(memleak_code, inner_code):
    """The outer session's exit code from memleak's and the inner pytest's.

    The tests' own outcome wins. A leak flagged by memleak (its 3) becomes
    pytest's TESTS_FAILED: 3 is pytest's INTERNAL_ERROR, and CI scripts
    treat the two very differently.
    """
    if inner_code is not None and inner_code != 0:
        return inner_code
    if memleak_code == _MEMLEAK_EXIT_LEAK:
        return int(pytest.ExitCode.TESTS_FAILED)
    if inner_code is None and memleak_code == _MEMLEAK_EXIT_USAGE:
        return int(pytest.ExitCode.USAGE_ERROR)
    if memleak_code != 0:
        # memleak itself failed (it said why on stderr): not a pass.
        return int(pytest.ExitCode.TESTS_FAILED)
    return int(pytest.ExitCode.OK)


@pytest.hookimpl(tryfirst=True)
def pytest_cmdline_main(config):
    if not _opt(config, "memleak") or os.environ.get(_INNER):
        return None
    # Only the controlling process re-runs (not xdist workers).
    if hasattr(config, "workerinput"):
        return None
    argv = [_memleak_bin(config), "run", "-q"]
    if not _opt(config, "memleak_no_fail"):
        argv.append("--fail-on-leak")
    user = shlex.split(_opt(config, "memleak_args") or "")
    recording = None
    if not _has_output(user):
        folder, owned = _recording_dir(config)
        if owned:
            _prune(folder, _KEEP_IN_CACHE - 1)
        stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime())
        recording = os.path.join(folder, "session-%s-%d.memleak" % (stamp, os.getpid()))
        argv += ["-o", recording]
    interval = _interval_arg(user)
    if interval is None:
        # memleak's per-test verdict reads the sampler's figures around
        # each marker: at the default 1 s, the last second of a test's
        # growth would land in the next test.
        interval = "100ms"
        argv += ["-i", interval]
    kept = _kept_threshold(config)
    if kept is not None:
        argv += ["--test-kept", str(kept)]
    locate = bool(_opt(config, "memleak_locate"))
    if locate and "--locate" not in user:
        argv.append("--locate")
    argv += user
    if recording is None:
        recording = _output_arg(user)
    argv += ["--", sys.executable, "-m", "pytest"] + list(config.invocation_params.args)
    fd, status_path = tempfile.mkstemp(prefix="pytest-memleak-", suffix=".status")
    os.close(fd)
    fd, flagged_path = tempfile.mkstemp(prefix="pytest-memleak-", suffix=".flagged")
    os.close(fd)
    env = dict(
        os.environ,
        **{_INNER: "1", _STATUS: status_path, _FLAGGED: flagged_path, _INTERVAL: interval}
    )
    if locate:
        env[_LOCATE] = "1"
    sys.stdout.flush()
    sys.stderr.flush()
    try:
        try:
            code = subprocess.call(argv, env=env)
        except KeyboardInterrupt:
            return int(pytest.ExitCode.INTERRUPTED)
        inner = None
        try:
            with open(status_path) as f:
                inner = int(f.read().strip())
        except (OSError, ValueError):
            pass
        if locate and recording is not None and os.path.exists(recording):
            _report_where_tests_grew(config, recording, flagged_path)
    finally:
        for path in (status_path, flagged_path):
            try:
                os.unlink(path)
            except OSError:
                pass
    result = session_exit_code(code, inner)
    if recording is not None and os.path.exists(recording):
        sys.stderr.write("pytest-memleak: recording: %s\n" % recording)
    if code == _MEMLEAK_EXIT_LEAK and inner == 0:
        sys.stderr.write(
            "pytest-memleak: memleak flagged a leak (report above); the session fails\n"
        )
    return result


@pytest.hookimpl(hookwrapper=True)
def pytest_sessionfinish(session):
    yield
    path = os.environ.get(_STATUS)
    if path and os.environ.get(_INNER) and not hasattr(session.config, "workerinput"):
        try:
            with open(path, "w") as f:
                f.write("%d\n" % int(session.exitstatus))
        except OSError:
            pass
        check = session.config.pluginmanager.get_plugin("memleak-kept")
        flagged_path = os.environ.get(_FLAGGED)
        if flagged_path and check is not None:
            try:
                with open(flagged_path, "w") as f:
                    for nodeid, _ in check.flagged:
                        f.write(nodeid + "\n")
            except OSError:
                pass


class _MarkerPlugin:
    """Markers only (the session is recorded, the per-test check is off)."""

    def __init__(self, markers):
        self.markers = markers
        self.ran = False

    @pytest.hookimpl(hookwrapper=True)
    def pytest_runtest_protocol(self, item, nextitem):
        self.markers.begin(item.nodeid)
        wait_for_locate(self.markers)
        try:
            yield
        finally:
            # Garbage is not kept memory: collect it before the end marker,
            # when memleak takes the test's closing figure.
            settle()
            let_the_recorder_look()
            self.markers.end(item.nodeid)
            wait_for_locate(self.markers)
            self.ran = True

    def pytest_unconfigure(self, config):
        if self.ran:
            hold_still_for_the_recorder()
        self.markers.close()


# Hooks that would make a rerun visible: subtests (pytest's own, unittest's
# subTest) and warnings report from inside the call, straight to every
# plugin. Reruns are measurements, not outcomes: logged, their reports
# would be counted, printed and kept by the terminal and junit plugins,
# and what those keep per report (MiBs for a test with thousands of
# subtests) would look like the test keeping memory on every rerun.
_SILENT_IN_RERUNS = frozenset(
    ["pytest_runtest_logreport", "pytest_warning_recorded", "pytest_exception_interact"]
)


class _Silenced:
    """While active, calls of _SILENT_IN_RERUNS hooks reach no plugin.

    pluggy runs every hook call through the plugin manager's
    `_inner_hookexec` (what its public add_hookcall_monitoring wraps too);
    without it (another pluggy), reruns stay visible but still run.
    """

    def __init__(self, pm):
        self.pm = pm
        self.saved = None

    def __enter__(self):
        inner = getattr(self.pm, "_inner_hookexec", None)
        if inner is not None:
            self.saved = inner

            def filtered(name, methods, kwargs, firstresult):
                if name in _SILENT_IN_RERUNS:
                    return None if firstresult else []
                return inner(name, methods, kwargs, firstresult)

            self.pm._inner_hookexec = filtered
        return self

    def __exit__(self, *exc):
        if self.saved is not None:
            self.pm._inner_hookexec = self.saved
        return False


class _KeptCheck:
    """Measures each test's kept memory; reruns a test that kept at least
    the floor and fails it when every rerun kept that much too (or, with a
    stated limit, when its one run kept at least the limit)."""

    def __init__(self, config, markers):
        self.fixed = _kept_threshold(config)
        self.reruns = _reruns(config)
        self.fail = not _opt(config, "memleak_no_fail")
        self.markers = markers
        self.first = True
        # (node id, why): failed (or, with --memleak-no-fail, would be).
        self.flagged = []
        # (node id, why): kept at least the floor, no confirmed verdict.
        self.unconfirmed = []

    def stated_limit(self, item):
        """limit_leaks(size) on the test, else --memleak-kept, else None."""
        mark = item.get_closest_marker("limit_leaks")
        if mark is not None:
            size = mark.args[0] if mark.args else mark.kwargs.get("limit")
            try:
                return parse_size(size)
            except ValueError as e:
                raise pytest.UsageError("%s: limit_leaks: %s" % (item.nodeid, e))
        return self.fixed

    def run_once(self, item, nextitem, tick=False):
        """One run of the whole protocol (setup, call, teardown), reports
        not logged: (reports, kept bytes or None). `tick`: let memleak take
        a tick of the settled process before the end marker."""
        before = anon_bytes()
        if self.markers is not None:
            self.markers.begin(item.nodeid)
            wait_for_locate(self.markers)
        reports = runtestprotocol(item, nextitem=nextitem, log=False)
        settle()
        after = anon_bytes()
        if self.markers is not None:
            if tick:
                wait_for_a_tick()
            else:
                let_the_recorder_look()
            self.markers.end(item.nodeid)
            wait_for_locate(self.markers)
        kept = after - before if before is not None and after is not None else None
        return reports, kept

    # The whole protocol (setup, call, teardown) runs here, reports logged
    # after it: what a test keeps is known only once its fixtures are torn
    # down, and the failure must go on the *call* report so --junitxml
    # counts a <failure> (a teardown failure would be an <error>).
    @pytest.hookimpl(tryfirst=True)
    def pytest_runtest_protocol(self, item, nextitem):
        ihook = item.ihook
        ihook.pytest_runtest_logstart(nodeid=item.nodeid, location=item.location)
        if self.first:
            # Later tests start right after the previous one settled.
            settle()
            self.first = False
        reports, kept = self.run_once(item, nextitem)
        if kept is not None:
            self.judge(item, nextitem, reports, kept)
        for rep in reports:
            ihook.pytest_runtest_logreport(report=rep)
        ihook.pytest_runtest_logfinish(nodeid=item.nodeid, location=item.location)
        return True

    def rerun(self, item, nextitem):
        """Reruns `item` until one rerun keeps less than the floor, at most
        self.reruns times: (kept bytes of each rerun, None) or (..., why
        inconclusive). The reports are not logged: reruns are not outcomes."""
        kept_each = []
        if self.markers is not None:
            # The first run's end figure, the first rerun's start.
            wait_for_a_tick()
        for _ in range(self.reruns):
            # Each rerun's end figure is the next one's start.
            with _Silenced(item.config.pluginmanager):
                reports, kept = self.run_once(item, nextitem, tick=True)
            bad = next((r for r in reports if r.failed), None)
            why = None
            if bad is not None:
                why = "a rerun failed in %s" % bad.when
            elif any(r.skipped for r in reports):
                why = "a rerun was skipped"
            elif kept is None:
                why = "memory unreadable"
            if why is not None:
                if self.markers is not None:
                    self.markers.inconclusive(item.nodeid)
                return kept_each, why
            kept_each.append(kept)
            if kept < _KEPT_FLOOR:
                if self.markers is not None:
                    self.markers.cleared(item.nodeid)
                break
        return kept_each, None

    def judge(self, item, nextitem, reports, kept):
        # On the last report: --junitxml writes its properties into the
        # <testcase>, and pytest-xdist carries them to the controller.
        props = reports[-1].user_properties
        props.append(("memleak_kept_bytes", kept))
        call = next((r for r in reports if r.when == "call"), None)
        # Only a passed call is rerun or failed: a failed test already
        # fails, a skipped one did not run, an xfail is expected to misbehave.
        ran = call is not None and call.passed and not hasattr(call, "wasxfail")
        limit = self.stated_limit(item)
        if limit is not None:
            # The user stated the limit: one run above it fails, no reruns.
            props.append(("memleak_limit_bytes", limit))
            if kept >= limit and ran:
                props.append(("memleak_verdict", "leak"))
                self.fail_call(
                    call,
                    "memory leak: the test kept %s of anonymous memory (RssAnon + RssShmem"
                    " + VmSwap after the test, its teardown and gc.collect(), minus before"
                    " it); the limit is %s (pid %d)" % (fmt_size(kept), fmt_size(limit), os.getpid()),
                )
            return
        props.append(("memleak_floor_bytes", _KEPT_FLOOR))
        if kept < _KEPT_FLOOR or not ran:
            return
        if item.get_closest_marker("memleak_no_rerun") is not None:
            props.append(("memleak_verdict", "unconfirmed: memleak_no_rerun"))
            return
        kept_each, why = self.rerun(item, nextitem)
        props.append(("memleak_rerun_kept_bytes", ",".join(str(k) for k in kept_each)))
        if why is not None:
            props.append(("memleak_verdict", "inconclusive: " + why))
        elif len(kept_each) == self.reruns and all(k >= _KEPT_FLOOR for k in kept_each):
            props.append(("memleak_verdict", "leak"))
            self.fail_call(
                call,
                "memory leak: kept %s on %d reruns (first run %s; anonymous memory, RssAnon +"
                " RssShmem + VmSwap after the test, its teardown and gc.collect(), minus"
                " before it; a leak keeps memory on every run, the floor is %s; pid %d)"
                % (
                    ", ".join(fmt_size(k) for k in kept_each),
                    len(kept_each),
                    fmt_size(kept),
                    fmt_size(_KEPT_FLOOR),
                    os.getpid(),
                ),
            )
        else:
            props.append(("memleak_verdict", "cleared"))

    def fail_call(self, call, why):
        if self.fail:
            call.outcome = "failed"
            call.longrepr = why

    def pytest_runtest_logreport(self, report):
        # Here, not in judge(): under xdist only the controller has a
        # terminal, and it sees the workers' reports.
        props = dict(p for p in report.user_properties if len(p) == 2)
        kept = props.get("memleak_kept_bytes")
        verdict = props.get("memleak_verdict")
        if kept is None or verdict is None:
            return
        reruns = props.get("memleak_rerun_kept_bytes")
        said = "kept %s" % fmt_size(kept)
        if reruns:
            said += ", then %s on reruns" % ", ".join(
                fmt_size(int(k)) for k in str(reruns).split(",")
            )
        if verdict == "leak":
            limit = props.get("memleak_limit_bytes")
            if limit is not None:
                said += " (limit %s)" % fmt_size(limit)
            self.flagged.append((report.nodeid, said))
        elif verdict != "cleared":
            self.unconfirmed.append((report.nodeid, "%s (%s)" % (said, verdict)))

    def pytest_terminal_summary(self, terminalreporter):
        tr = terminalreporter
        if self.flagged:
            tr.write_sep("=", "memleak: tests that kept memory")
            for nodeid, said in self.flagged:
                tr.write_line("LEAK %s %s" % (nodeid, said))
        if self.unconfirmed:
            tr.write_sep("=", "memleak: tests that kept memory once, not confirmed")
            for nodeid, said in self.unconfirmed:
                tr.write_line("ONCE %s %s" % (nodeid, said))

    def pytest_unconfigure(self, config):
        if self.markers is not None:
            if not self.first:  # this process ran tests
                hold_still_for_the_recorder()
            self.markers.close()


def pytest_configure(config):
    config.addinivalue_line(
        "markers",
        "limit_leaks(size): fail this test when it keeps at least SIZE of "
        'anonymous memory (e.g. "10 MiB"), on its first run, without reruns; '
        "needs --memleak or --memleak-kept",
    )
    config.addinivalue_line(
        "markers",
        "memleak_no_rerun: never rerun this test to confirm a leak (it is not "
        "idempotent): kept memory above the floor is reported as unconfirmed",
    )
    markers = None
    if os.environ.get(ENV):
        m = Markers()
        if m.active:
            markers = m
    # Outer --memleak process: it only re-runs the session under memleak.
    outer = _opt(config, "memleak") and not os.environ.get(_INNER)
    measure = (_opt(config, "memleak") or _opt(config, "memleak_kept")) and not outer
    if measure and anon_bytes() is not None:
        # The xdist controller runs no tests: its workers measure theirs.
        config.pluginmanager.register(_KeptCheck(config, markers), "memleak-kept")
    elif markers is not None:
        config.pluginmanager.register(_MarkerPlugin(markers), "memleak-markers")
