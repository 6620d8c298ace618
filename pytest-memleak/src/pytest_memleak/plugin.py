"""pytest plugin: `pytest --memleak` records the session with memleak.

How: the first pytest process re-executes itself under
`memleak run --fail-on-leak [--memleak-args] -- python -m pytest ARGS`
(memleak records the whole process tree and creates the marker FIFO). The
pytest running inside sees MEMLEAK_MARKERS and marks each test's start and
end. memleak analyses when the session ends and prints the report, with the
tests that ran while a process grew; its exit code becomes the session's
(the tests' own failure code wins; 3 means a leak was flagged).
"""

import os
import shlex
import shutil
import sys

import pytest

from .markers import ENV, Markers

# Set in the re-executed session so it does not re-execute again.
_INNER = "PYTEST_MEMLEAK_INNER"


def pytest_addoption(parser):
    group = parser.getgroup("memleak", "memory-leak alert (memleak)")
    group.addoption(
        "--memleak",
        action="store_true",
        default=False,
        help="run the session under `memleak run` and fail on a flagged leak",
    )
    group.addoption(
        "--memleak-bin",
        default=None,
        metavar="PATH",
        help="memleak binary (default: $MEMLEAK_BIN, else memleak on PATH)",
    )
    group.addoption(
        "--memleak-args",
        default="",
        metavar="ARGS",
        help='extra `memleak run` options, e.g. "-i 100ms --horizon 2h"',
    )
    group.addoption(
        "--memleak-no-fail",
        action="store_true",
        default=False,
        help="report leaks without failing the session",
    )


def _memleak_bin(config):
    b = config.getoption("memleak_bin") or os.environ.get("MEMLEAK_BIN") or "memleak"
    found = shutil.which(b)
    if found is None:
        raise pytest.UsageError(
            "--memleak: cannot find the memleak binary %r; install it or pass --memleak-bin PATH" % b
        )
    return found


@pytest.hookimpl(tryfirst=True)
def pytest_cmdline_main(config):
    if not config.getoption("memleak") or os.environ.get(_INNER):
        return None
    # Only the controlling process re-executes (not xdist workers).
    if hasattr(config, "workerinput"):
        return None
    argv = [_memleak_bin(config), "run", "-q"]
    if not config.getoption("memleak_no_fail"):
        argv.append("--fail-on-leak")
    argv += shlex.split(config.getoption("memleak_args") or "")
    argv += ["--", sys.executable, "-m", "pytest"] + list(config.invocation_params.args)
    env = dict(os.environ, **{_INNER: "1"})
    sys.stdout.flush()
    sys.stderr.flush()
    os.execvpe(argv[0], argv, env)
    return None  # not reached


class _MarkerPlugin:
    def __init__(self, markers):
        self.markers = markers

    @pytest.hookimpl(hookwrapper=True)
    def pytest_runtest_protocol(self, item, nextitem):
        self.markers.begin(item.nodeid)
        try:
            yield
        finally:
            self.markers.end(item.nodeid)

    def pytest_unconfigure(self, config):
        self.markers.close()


def pytest_configure(config):
    if os.environ.get(ENV):
        m = Markers()
        if m.active:
            config.pluginmanager.register(_MarkerPlugin(m), "memleak-markers")
