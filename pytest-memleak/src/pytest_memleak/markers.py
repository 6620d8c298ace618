"""Writer side of memleak's phase-marker protocol (docs/markers.md).

The environment variable MEMLEAK_MARKERS names a FIFO; each event is one
line, written with a single write() so lines from many writers never mix:

    begin pid=PID NAME
    end pid=PID NAME
    mark TEXT

`pid=PID` names the sending process, so memleak measures a test on the
process that ran it (each pytest-xdist worker sends its own markers). It is
optional in the protocol; this writer always sends it.
"""

import fcntl
import hashlib
import os
import struct
import termios
import time

ENV = "MEMLEAK_MARKERS"
# Longest name sent, bytes. A line (kind, pid=, name, newline) must fit
# PIPE_BUF (4096) to be written atomically and read as one line: the rest,
# "begin pid=4294967295 " and the newline, takes at most 22 bytes. The same
# budget for every kind and pid, so the begin and the end of a test cut its
# name at the same place.
NAME_MAX = 4000
# Hex digits of the full name's hash kept after a cut: two long ids that
# differ only past the cut stay two phases.
_HASH = 16


def fit_name(name):
    """`name` as one line of at most NAME_MAX UTF-8 bytes, the same every
    call: whitespace runs become one space; a longer name keeps its start,
    cut at a character boundary, then `~` and a hash of the whole name."""
    data = " ".join(str(name).split()).encode("utf-8", "replace")
    if len(data) <= NAME_MAX:
        return data
    digest = hashlib.sha256(data).hexdigest()[:_HASH].encode()
    head = data[: NAME_MAX - len(digest) - 1].decode("utf-8", "ignore").encode("utf-8")
    return head + b"~" + digest


class Markers:
    """Opens the FIFO named by MEMLEAK_MARKERS (if any); no-op otherwise."""

    def __init__(self, path=None):
        self.fd = None
        path = path if path is not None else os.environ.get(ENV)
        if path:
            try:
                # O_NONBLOCK: never hang if the recorder has gone away.
                self.fd = os.open(path, os.O_WRONLY | os.O_NONBLOCK | os.O_CLOEXEC)
            except OSError:
                self.fd = None

    @property
    def active(self):
        return self.fd is not None

    def _send(self, kind, name, pid=True):
        if self.fd is None:
            return
        # getpid() at send time, not at open: a forked child sends its own.
        who = "pid=%d " % os.getpid() if pid else ""
        line = ("%s %s" % (kind, who)).encode() + fit_name(name) + b"\n"
        try:
            os.write(self.fd, line)
        except OSError:
            pass

    def begin(self, name):
        self._send("begin", name)

    def end(self, name):
        self._send("end", name)

    def wait_read(self, timeout=0.05):
        """Waits (at most `timeout` seconds) until memleak has read every
        marker sent so far.

        With --locate, memleak reads its page-fault sample counts the
        moment a marker arrives: what was sampled before goes to the test
        that was running. A test that starts before memleak read the
        previous one's end marker would lend its first samples to it.
        """
        if self.fd is None:
            return
        deadline = time.monotonic() + timeout
        buf = bytearray(4)
        while True:
            try:
                fcntl.ioctl(self.fd, termios.FIONREAD, buf)
            except OSError:
                return
            if struct.unpack("i", bytes(buf))[0] == 0 or time.monotonic() >= deadline:
                return
            time.sleep(0.0002)

    def cleared(self, name):
        """Tells memleak the run of `name` just ended kept less than the
        floor, as measured here at its exact end (`mark cleared pid=PID
        NAME`; memleak's phases.rs CLEARED_MARK): memleak's tick-based
        figure of the same run is coarser, and this one decides."""
        self._mark(b"cleared", name)

    def inconclusive(self, name):
        """Tells memleak the run of `name` just ended failed: what it kept
        confirms nothing (`mark inconclusive pid=PID NAME`; memleak's
        phases.rs INCONCLUSIVE_MARK). The name is cut as begin/end cut it."""
        self._mark(b"inconclusive", name)

    def _mark(self, what, name):
        if self.fd is None:
            return
        line = b"mark " + what + b" pid=%d " % os.getpid() + fit_name(name) + b"\n"
        try:
            os.write(self.fd, line)
        except OSError:
            pass

    def mark(self, text):
        self._send("mark", text, pid=False)

    def close(self):
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None
