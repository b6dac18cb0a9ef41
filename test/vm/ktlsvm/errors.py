"""Exit statuses, the two ways a run ends early (Failure, Stopped), the
parent-death signal, and log()."""

import ctypes
import sys

EXIT_DMESG = 122
EXIT_TIMEOUT = 124
EXIT_PLATFORM = 125


class Stopped(Exception):
    """vm-run was told to stop (SIGTERM, SIGHUP, or its parent died)."""

    def __init__(self, sig):
        super().__init__("stopped by signal %d" % sig)
        self.sig = sig


def raise_stopped(sig, frame):
    raise Stopped(sig)


PR_SET_PDEATHSIG = 1


def die_with_parent(sig):
    """Have the kernel send sig to this process when its parent dies (so a
    killed vm-run takes its qemu with it, and a killed caller its vm-run).
    Best effort: without prctl the signal handlers still cover SIGTERM."""
    try:
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, int(sig), 0, 0, 0)
    except (OSError, AttributeError):
        pass


class Failure(Exception):
    """A platform failure: message for the user and an exit status."""

    def __init__(self, message, status=EXIT_PLATFORM):
        super().__init__(message)
        self.status = status


def log(msg):
    sys.stderr.write("vm-run: %s\n" % msg)
    sys.stderr.flush()
