"""Apply the seccomp and W^X parts of redactd.service to this process, then exec a command.

Run as ``python confine.py SPEC.json -- PROGRAM ARGS...`` after ``setpriv --no-new-privs`` (an
unprivileged process may load a seccomp filter only with no_new_privs set). The filters are the
ones systemd builds for the unit's settings, with libseccomp, as systemd does:

- ``SystemCallFilter=`` allow-list, everything else fails with ``SystemCallErrorNumber=EPERM``;
- ``RestrictAddressFamilies=AF_UNIX``: socket() of any other family fails with EAFNOSUPPORT;
- ``MemoryDenyWriteExecute=yes`` as systemd 252 (Debian 12) implements it: mmap with PROT_WRITE
  and PROT_EXEC, mprotect/pkey_mprotect adding PROT_EXEC and shmat with SHM_EXEC fail with EPERM;
  and the kernel's own PR_SET_MDWE on top where the kernel has it (newer systemd uses that).

Standalone on purpose (no redactd imports): it runs before the program under test exists.
"""

from __future__ import annotations

import ctypes
import errno
import json
import mmap
import os
import sys

SCMP_ACT_ALLOW = 0x7FFF0000
SCMP_ACT_ERRNO = 0x00050000
SCMP_CMP_NE = 1
SCMP_CMP_MASKED_EQ = 7
PR_SET_MDWE = 65
PR_GET_MDWE = 66
PR_MDWE_REFUSE_EXEC_GAIN = 1
SHM_EXEC = 0o100000
AF_UNIX = 1


class _Arg(ctypes.Structure):
    _fields_ = [("arg", ctypes.c_uint), ("op", ctypes.c_int), ("datum_a", ctypes.c_uint64),
                ("datum_b", ctypes.c_uint64)]


class Filter:
    """One libseccomp filter context; ``load()`` installs it (filters stack, the strictest wins)."""

    def __init__(self, default_action: int) -> None:
        self.lib = ctypes.CDLL("libseccomp.so.2", use_errno=True)
        self.lib.seccomp_init.restype = ctypes.c_void_p
        self.lib.seccomp_init.argtypes = [ctypes.c_uint32]
        self.lib.seccomp_rule_add_array.argtypes = [ctypes.c_void_p, ctypes.c_uint32, ctypes.c_int,
                                                    ctypes.c_uint, ctypes.POINTER(_Arg)]
        self.lib.seccomp_load.argtypes = [ctypes.c_void_p]
        self.lib.seccomp_syscall_resolve_name.argtypes = [ctypes.c_char_p]
        self.ctx = self.lib.seccomp_init(default_action)
        if not self.ctx:
            raise OSError("seccomp_init failed")

    def number(self, name: str) -> int | None:
        nr = self.lib.seccomp_syscall_resolve_name(name.encode())
        return None if nr < 0 else nr  # libseccomp does not know it on this architecture

    def rule(self, action: int, name: str, *conditions: tuple[int, int, int, int]) -> None:
        nr = self.number(name)
        if nr is None:
            return
        args = (_Arg * max(1, len(conditions)))(*[_Arg(*c) for c in conditions])
        rc = self.lib.seccomp_rule_add_array(self.ctx, action, nr, len(conditions), args)
        if rc < 0:
            raise OSError(-rc, f"seccomp_rule_add({name})")

    def load(self) -> None:
        rc = self.lib.seccomp_load(self.ctx)
        if rc < 0:
            raise OSError(-rc, "seccomp_load")


def allow_only(syscalls: list[str]) -> None:
    f = Filter(SCMP_ACT_ERRNO | errno.EPERM)
    for name in syscalls:
        f.rule(SCMP_ACT_ALLOW, name)
    f.load()


def unix_sockets_only() -> None:
    f = Filter(SCMP_ACT_ALLOW)
    f.rule(SCMP_ACT_ERRNO | errno.EAFNOSUPPORT, "socket", (0, SCMP_CMP_NE, AF_UNIX, 0))
    f.load()


def deny_write_execute_seccomp() -> None:
    """systemd 252's seccomp_memory_deny_write_execute()."""
    wx = mmap.PROT_WRITE | mmap.PROT_EXEC
    f = Filter(SCMP_ACT_ALLOW)
    f.rule(SCMP_ACT_ERRNO | errno.EPERM, "mmap", (2, SCMP_CMP_MASKED_EQ, wx, wx))
    f.rule(SCMP_ACT_ERRNO | errno.EPERM, "mprotect", (2, SCMP_CMP_MASKED_EQ, mmap.PROT_EXEC, mmap.PROT_EXEC))
    f.rule(SCMP_ACT_ERRNO | errno.EPERM, "pkey_mprotect", (2, SCMP_CMP_MASKED_EQ, mmap.PROT_EXEC, mmap.PROT_EXEC))
    f.rule(SCMP_ACT_ERRNO | errno.EPERM, "shmat", (2, SCMP_CMP_MASKED_EQ, SHM_EXEC, SHM_EXEC))
    f.load()


def deny_write_execute_kernel() -> bool:
    """The kernel's PR_SET_MDWE (Linux >= 6.3); False when this kernel does not have it."""
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_MDWE, PR_MDWE_REFUSE_EXEC_GAIN, 0, 0, 0) != 0:
        if ctypes.get_errno() == errno.EINVAL:
            return False
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_MDWE)")
    return bool(libc.prctl(PR_GET_MDWE, 0, 0, 0, 0) & PR_MDWE_REFUSE_EXEC_GAIN)


def apply(spec: dict[str, object]) -> None:
    if spec.get("memory_deny_write_execute"):
        deny_write_execute_kernel()
        deny_write_execute_seccomp()
    if spec.get("unix_sockets_only"):
        unix_sockets_only()
    syscalls = spec.get("allowed_syscalls")
    if isinstance(syscalls, list):
        allow_only([str(s) for s in syscalls])


def main(argv: list[str]) -> None:
    spec_path, sep, *command = argv
    if sep != "--" or not command:
        raise SystemExit("usage: confine.py SPEC.json -- PROGRAM ARGS...")
    with open(spec_path) as fh:
        apply(json.load(fh))
    os.execvp(command[0], command)


if __name__ == "__main__":
    main(sys.argv[1:])
