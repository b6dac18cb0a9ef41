"""vm-run's command line: argument parsing, --list, and main() with its
signal handling and exit statuses."""

import argparse
import faulthandler
import os
import signal
import sys

from .errors import Failure, Stopped, die_with_parent, log, raise_stopped
from .flavours import list_flavours
from .runner import run


def parse_args(args):
    if "--" in args:
        i = args.index("--")
        args, command = args[:i], args[i + 1:]
    else:
        command = None
    p = argparse.ArgumentParser(
        prog="vm-run",
        usage="vm-run [options] -- COMMAND [ARGS]\n       vm-run --list",
        description="Run COMMAND in a fresh qemu guest with the project's build "
                    "installed; exits with its status. One COMMAND word is a shell "
                    "command line; several words are run as that exact argv.",
        epilog="Exit: the command's status, or 124 timeout, 125 VM failure, "
               "122 BUG/WARNING/Oops in the guest's dmesg. See test/vm/README.")
    p.add_argument("--list", action="store_true", help="list kernel flavours and exit")
    p.add_argument("--kernel", metavar="FLAVOUR",
                   help="kernel flavour (default: $KTLS_VM_KERNEL, else the first "
                        "available one: patched-*, then the newest stock kernel)")
    p.add_argument("--forward", metavar="HOSTPORT:GUESTPORT", action="append", default=[],
                   help="forward 127.0.0.1:HOSTPORT on the host to GUESTPORT in the guest")
    p.add_argument("--put", metavar="HOSTFILE:GUESTPATH", action="append", default=[],
                   help="copy a host file or directory into the guest")
    p.add_argument("--env", metavar="NAME=VALUE", action="append", default=[],
                   help="set an environment variable for the command")
    p.add_argument("--no-module", metavar="NAME", action="append", default=[],
                   help="do not load module NAME (and forbid loading it on demand)")
    p.add_argument("--no-project", action="store_true",
                   default=os.environ.get("KTLS_VM_NO_PROJECT") == "1",
                   help="boot without the project's build ($KTLS_VM_NO_PROJECT=1)")
    p.add_argument("--timeout", type=int, metavar="SECS",
                   default=int(os.environ.get("KTLS_VM_TIMEOUT", "600")),
                   help="limit for boot + command (default $KTLS_VM_TIMEOUT or 600)")
    p.add_argument("--boot-timeout", type=int, metavar="SECS",
                   default=int(os.environ.get("KTLS_VM_BOOT_TIMEOUT", "120")),
                   help="limit for the boot alone (default 120)")
    p.add_argument("--allow-dmesg-warnings", action="store_true",
                   help="do not fail on BUG/WARNING/Oops lines in the guest's dmesg")
    p.add_argument("--dmesg-out", metavar="FILE", default=os.environ.get("KTLS_VM_DMESG_OUT"),
                   help="write the guest's dmesg to FILE ($KTLS_VM_DMESG_OUT)")
    p.add_argument("--result-json", metavar="FILE",
                   help="write status, failure reason, dmesg findings and timings as JSON")
    p.add_argument("--append", metavar="ARGS", default=os.environ.get("KTLS_VM_APPEND", ""),
                   help="extra kernel command line ($KTLS_VM_APPEND)")
    p.add_argument("--memory", type=int, default=1024, metavar="MIB", help="guest memory")
    p.add_argument("--smp", type=int, default=2, metavar="N", help="guest CPUs")
    p.add_argument("--timing", action="store_true", help="print boot and command timings")
    p.add_argument("--crypto-selftests", action="store_true",
                   help="run the kernel's crypto self-tests at module load (+~2 s)")
    p.add_argument("--keep", action="store_true", help="keep the run directory (logs)")
    p.add_argument("--debug", action="store_true", help="print the qemu command line")
    opts = p.parse_args(args)
    if not opts.list and command is None:
        p.error("missing '-- COMMAND'")
    return opts, command


def main():
    opts, command = parse_args(sys.argv[1:])
    # stop (and stop qemu) on SIGTERM/SIGHUP, and when the caller dies
    parent = os.getppid()
    # SIGUSR1 prints every thread's Python stack on stderr: what a caller
    # that waited too long for vm-run to end can ask before it kills it
    faulthandler.register(signal.SIGUSR1, all_threads=True)
    die_with_parent(signal.SIGTERM)
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, raise_stopped)
    try:
        if os.getppid() != parent:
            raise Stopped(signal.SIGTERM)   # the caller died before prctl
        if opts.list:
            return list_flavours()
        return run(opts, command)
    except Failure as e:
        log(str(e))
        return e.status
    except KeyboardInterrupt:
        return 130
    except Stopped as e:
        log(str(e))
        return 128 + e.sig
