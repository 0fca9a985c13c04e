"""The seccomp filter every bubblewrap sandbox runs under (ADR 0035): the system calls an
untrusted program has no use for and that widen what it can reach of the kernel are refused with
EPERM (namespaces, mounts, tracing, kernel keyrings, BPF, modules, io_uring, faking terminal
input, ...); everything else is allowed. The filter is compiled once by libseccomp (through
pyseccomp) into a BPF program that bwrap loads (``--seccomp FD``) after it has set the sandbox up,
so nothing the sandbox runs can drop it."""

from __future__ import annotations

import errno
import os
import tempfile
from functools import cache

import pyseccomp as seccomp

REFUSED = (
    # other processes' memory, and tracing
    "ptrace",
    "process_vm_readv",
    "process_vm_writev",
    "kcmp",
    "pidfd_getfd",
    # kernel keyrings
    "keyctl",
    "add_key",
    "request_key",
    # mounts, namespaces, the root
    "mount",
    "umount2",
    "pivot_root",
    "chroot",
    "unshare",
    "setns",
    "fsopen",
    "fsconfig",
    "fsmount",
    "fspick",
    "move_mount",
    "open_tree",
    "mount_setattr",
    "open_by_handle_at",
    "name_to_handle_at",
    # the kernel itself
    "bpf",
    "perf_event_open",
    "userfaultfd",
    "kexec_load",
    "kexec_file_load",
    "init_module",
    "finit_module",
    "delete_module",
    "reboot",
    "swapon",
    "swapoff",
    "acct",
    "syslog",
    "quotactl",
    "lookup_dcookie",
    "iopl",
    "ioperm",
    "vhangup",
    "uselib",
    "fanotify_init",
    "settimeofday",
    "clock_settime",
    "clock_adjtime",
    "adjtimex",
    "io_uring_setup",
    "io_uring_enter",
    "io_uring_register",
)
# CLONE_NEWNS, NEWCGROUP, NEWUTS, NEWIPC, NEWUSER, NEWPID, NEWNET
NAMESPACES = (0x00020000, 0x02000000, 0x04000000, 0x08000000, 0x10000000, 0x20000000, 0x40000000)
TIOCSTI = 0x5412  # push characters into a terminal's input
SOCKET_FAMILIES = (1, 2, 10, 16)  # AF_UNIX, AF_INET, AF_INET6, AF_NETLINK


@cache
def program() -> bytes:
    """The compiled filter (BPF), for ``bwrap --seccomp FD``."""
    rules = seccomp.SyscallFilter(defaction=seccomp.ALLOW)
    refuse = seccomp.ERRNO(errno.EPERM)
    for name in REFUSED:
        try:
            rules.add_rule(refuse, name)
        except (RuntimeError, ValueError):  # (a call this kernel's architecture does not have)
            continue
    for flag in NAMESPACES:  # a thread or a process, yes; a new namespace, no
        rules.add_rule(refuse, "clone", seccomp.Arg(0, seccomp.MASKED_EQ, flag, flag))
    rules.add_rule(
        seccomp.ERRNO(errno.ENOSYS), "clone3"
    )  # its flags are out of reach: C libraries fall back to clone
    rules.add_rule(refuse, "ioctl", seccomp.Arg(1, seccomp.MASKED_EQ, 0xFFFFFFFF, TIOCSTI))
    # Sockets of the families programs use (UNIX, IPv4, IPv6, netlink); no other (vsock would
    # reach a VM host's hypervisor past the empty network namespace; packet, ALG, ... are only
    # kernel surface).
    unsupported = seccomp.ERRNO(errno.EAFNOSUPPORT)
    for call in ("socket", "socketpair"):
        rules.add_rule(unsupported, call, seccomp.Arg(0, seccomp.GT, max(SOCKET_FAMILIES)))
        for family in range(max(SOCKET_FAMILIES)):
            if family not in SOCKET_FAMILIES:
                rules.add_rule(unsupported, call, seccomp.Arg(0, seccomp.EQ, family))
    # no local descriptor tables (16-bit segments: old kernel surface)
    rules.add_rule(refuse, "modify_ldt")
    with tempfile.TemporaryFile() as out:
        rules.export_bpf(out)
        out.seek(0)
        return out.read()


def filter_fd() -> int:
    """A readable file descriptor holding the compiled filter, for ``bwrap --seccomp`` (the caller
    closes it once bwrap has started)."""
    read, write = os.pipe()
    os.write(write, program())  # (a few hundred bytes: well within a pipe's buffer)
    os.close(write)
    return read
