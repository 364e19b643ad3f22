"""The sandboxed child's own walls, raised after its imports and before any strategy code runs.

The parent starts the child inside `unshare --pid --fork --kill-child --mount-proc --net` (its own
PID, mount and network namespaces: other processes are invisible, there is no network, and
everything dies with the sandbox). Inside, before strategy code runs, the child:

1. hides folders the strategy must not see (NETTRACE_HOME, the ledger's folder, sockets under
   /run) under empty tmpfs mounts, and replaces /dev with null/zero/full/random/urandom only;
2. makes every mount read-only (recursively), except the scratch folder (no devices, no setuid,
   no exec there);
3. sets no_new_privs and a seccomp filter on every thread: no sockets, no fork/exec (threads are
   allowed), no mount/namespace/ptrace/module/keyring/io_uring calls, no raising rlimits;
4. drops every capability.

Linux x86_64 only (the filter checks the architecture and kills anything else); the parent refuses
to run strategy code where this cannot be applied. Everything here is ctypes on libc: no
dependency.
"""

from __future__ import annotations

import ctypes
import errno
import os
import platform
import struct
from pathlib import Path

_libc = ctypes.CDLL(None, use_errno=True)
_libc.syscall.restype = ctypes.c_long

MS_NOSUID, MS_NODEV, MS_NOEXEC, MS_BIND, MS_MOVE, MS_REC, MS_PRIVATE = 2, 4, 8, 4096, 8192, 16384, 1 << 18
MOUNT_ATTR_RDONLY, MOUNT_ATTR_NOSUID, MOUNT_ATTR_NODEV, MOUNT_ATTR_NOEXEC = 1, 2, 4, 8
AT_FDCWD, AT_RECURSIVE = -100, 0x8000
SYS_MOUNT_SETATTR, SYS_SECCOMP = 442, 317
PR_SET_NO_NEW_PRIVS, PR_CAPBSET_DROP = 38, 24
DEVICES = ("null", "zero", "full", "random", "urandom")


class LockdownError(RuntimeError):
    """A wall could not be raised: the child refuses to run strategy code."""


def _check(ret: int, what: str) -> None:
    if ret < 0:
        err = ctypes.get_errno()
        raise LockdownError(f"{what}: {os.strerror(err)}")


def _mount(source: str | None, target: str, fstype: str | None, flags: int, data: str | None = None) -> None:
    def enc(s):
        return (s.encode() if s is not None else None)
    _check(_libc.mount(enc(source), enc(target), enc(fstype), ctypes.c_ulong(flags), enc(data)), f"mount {target}")


class _MountAttr(ctypes.Structure):
    _fields_ = [("attr_set", ctypes.c_uint64), ("attr_clr", ctypes.c_uint64),
                ("propagation", ctypes.c_uint64), ("userns_fd", ctypes.c_uint64)]


def _setattr(path: str, set_: int, clear: int, recursive: bool) -> None:
    attr = _MountAttr(set_, clear, 0, 0)
    _check(_libc.syscall(SYS_MOUNT_SETATTR, AT_FDCWD, path.encode(), AT_RECURSIVE if recursive else 0,
                         ctypes.byref(attr), ctypes.sizeof(attr)), f"mount_setattr {path}")


def _inside(path: Path, others: list[Path]) -> bool:
    return any(path == o or path in o.parents for o in others)


def restrict_filesystem(scratch: str, hide: list[str], keep: list[str]) -> None:
    """Read-only everything but `scratch`; `hide` folders emptied (never one that holds `keep`)."""
    _mount(None, "/", None, MS_REC | MS_PRIVATE)  # nothing propagates back to the host
    scratch_path = Path(scratch).resolve()
    keep_paths = [Path(k).resolve() for k in keep] + [scratch_path]
    for folder in hide:
        path = Path(folder)
        if path.is_dir() and str(path.resolve()) != "/" and not _inside(path.resolve(), keep_paths):
            _mount("tmpfs", str(path.resolve()), "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, "size=16k,mode=0555")
    _replace_dev(scratch_path)
    _mount(str(scratch_path), str(scratch_path), None, MS_BIND)  # its own mount, to stay writable
    _setattr("/", MOUNT_ATTR_RDONLY, 0, recursive=True)
    _setattr(str(scratch_path), MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV | MOUNT_ATTR_NOEXEC, MOUNT_ATTR_RDONLY,
             recursive=False)
    os.chdir(scratch_path)  # the old cwd is the read-only directory under the new mount


def _replace_dev(scratch: Path) -> None:
    """/dev with the harmless character devices only: a root process can write a raw disk node
    even on a read-only mount, and cannot reach one that is not there."""
    staging = scratch / ".dev"
    staging.mkdir(mode=0o755)
    _mount("tmpfs", str(staging), "tmpfs", MS_NOSUID | MS_NOEXEC, "size=16k,mode=0755")
    for name in DEVICES:
        node = staging / name
        node.touch(mode=0o666)
        _mount(f"/dev/{name}", str(node), None, MS_BIND)
    _mount(str(staging), "/dev", None, MS_MOVE)


# --- seccomp ------------------------------------------------------------------------------------------
AUDIT_ARCH_X86_64 = 0xC000003E
RET_ALLOW, RET_ERRNO, RET_KILL_PROCESS = 0x7FFF0000, 0x00050000, 0x80000000
CLONE_THREAD = 0x00010000
SYS_CLONE, SYS_CLONE3, SYS_PRLIMIT64 = 56, 435, 302
# x86_64 numbers. Sockets; fork/exec; mounts and namespaces; other processes' memory; kernel
# modules, keys, BPF, perf, io_uring (which runs socket calls behind seccomp's back); device
# nodes; file handles; the clock; rlimits (root could raise its own hard limits).
DENIED_SYSCALLS: dict[str, int] = {
    "socket": 41, "connect": 42, "accept": 43, "bind": 49, "listen": 50, "socketpair": 53, "accept4": 288,
    "fork": 57, "vfork": 58, "execve": 59, "execveat": 322,
    "ptrace": 101, "process_vm_readv": 310, "process_vm_writev": 311, "pidfd_getfd": 438,
    "mount": 165, "umount2": 166, "pivot_root": 155, "chroot": 161, "unshare": 272, "setns": 308,
    "open_tree": 428, "move_mount": 429, "fsopen": 430, "fsconfig": 431, "fsmount": 432, "fspick": 433,
    "mount_setattr": 442, "kexec_load": 246, "kexec_file_load": 320, "init_module": 175,
    "finit_module": 313, "delete_module": 176, "reboot": 169, "bpf": 321, "perf_event_open": 298,
    "keyctl": 250, "add_key": 248, "request_key": 249, "swapon": 167, "swapoff": 168, "acct": 163,
    "settimeofday": 164, "clock_settime": 227, "clock_adjtime": 305, "adjtimex": 159, "sethostname": 170,
    "setdomainname": 171, "iopl": 172, "ioperm": 173, "mknod": 133, "mknodat": 259, "userfaultfd": 323,
    "io_uring_setup": 425, "io_uring_enter": 426, "io_uring_register": 427, "open_by_handle_at": 304,
    "name_to_handle_at": 303, "setrlimit": 160, "quotactl": 179, "fanotify_init": 300, "syslog": 103,
    "vhangup": 153,
}


def _insn(code: int, jt: int, jf: int, k: int) -> bytes:
    return struct.pack("HBBI", code, jt, jf, k & 0xFFFFFFFF)


def seccomp_program() -> bytes:
    """The filter as classic BPF (struct sock_filter[]), see the module docstring."""
    ld, jeq, jge, jset, ret = 0x20, 0x15, 0x35, 0x45, 0x06
    eperm, enosys = RET_ERRNO | errno.EPERM, RET_ERRNO | errno.ENOSYS
    prog = [
        _insn(ld, 0, 0, 4), _insn(jeq, 1, 0, AUDIT_ARCH_X86_64), _insn(ret, 0, 0, RET_KILL_PROCESS),
        _insn(ld, 0, 0, 0), _insn(jge, 0, 1, 0x40000000), _insn(ret, 0, 0, eperm),  # x32 ABI: refused
        # clone: threads only (CLONE_THREAD in the flags); anything else is a fork
        _insn(jeq, 0, 4, SYS_CLONE), _insn(ld, 0, 0, 16), _insn(jset, 0, 1, CLONE_THREAD),
        _insn(ret, 0, 0, RET_ALLOW), _insn(ret, 0, 0, eperm),
        # clone3 hides its flags behind a pointer: ENOSYS makes libc fall back to clone
        _insn(jeq, 0, 1, SYS_CLONE3), _insn(ret, 0, 0, enosys),
        # prlimit64: reading a limit (new_limit == NULL) is fine, setting one is not
        _insn(jeq, 0, 6, SYS_PRLIMIT64), _insn(ld, 0, 0, 32), _insn(jeq, 0, 2, 0), _insn(ld, 0, 0, 36),
        _insn(jeq, 1, 0, 0), _insn(ret, 0, 0, eperm), _insn(ret, 0, 0, RET_ALLOW),
    ]
    for nr in sorted(DENIED_SYSCALLS.values()):
        prog += [_insn(jeq, 0, 1, nr), _insn(ret, 0, 0, eperm)]
    prog.append(_insn(ret, 0, 0, RET_ALLOW))
    return b"".join(prog)


class _SockFprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]


def install_seccomp() -> None:
    """no_new_privs, then the filter on every thread of the process (SECCOMP_FILTER_FLAG_TSYNC)."""
    if platform.machine() != "x86_64":
        raise LockdownError(f"the seccomp filter is written for x86_64, not {platform.machine()}")
    _check(_libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), "prctl(NO_NEW_PRIVS)")
    program = seccomp_program()
    buf = ctypes.create_string_buffer(program, len(program))
    fprog = _SockFprog(len(program) // 8, ctypes.cast(buf, ctypes.c_void_p))
    # SECCOMP_SET_MODE_FILTER = 1, SECCOMP_FILTER_FLAG_TSYNC = 1: threads started by polars or
    # numpy before this call get the filter too (a positive return names a thread that could not).
    ret = _libc.syscall(SYS_SECCOMP, 1, 1, ctypes.byref(fprog))
    if ret != 0:
        raise LockdownError(f"seccomp: {os.strerror(ctypes.get_errno()) if ret < 0 else f'thread {ret} refused'}")


def drop_capabilities() -> None:
    """Empty bounding set and capability sets of this thread (root without root's powers)."""
    for cap in range(64):
        if _libc.prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) != 0 and ctypes.get_errno() == errno.EINVAL:
            break  # past the last capability this kernel knows
    header = struct.pack("Ii", 0x20080522, 0)  # _LINUX_CAPABILITY_VERSION_3, this thread
    data = bytes(24)  # two zeroed {effective, permitted, inheritable} structs
    _check(_libc.capset(ctypes.c_char_p(header), ctypes.c_char_p(data)), "capset")


def lock_down(scratch: str, hide: list[str], keep: list[str]) -> None:
    """All of the walls, in order (filesystem first: it needs the mount calls the filter forbids)."""
    restrict_filesystem(scratch, hide, keep)
    install_seccomp()
    drop_capabilities()
