"""A power cut for SQLite: the writer dies and every write it had not fsynced is gone.

The writer runs in a child process (``python -m tests.utils.powercut``) on a SQLite VFS that
wraps the default one (built with ctypes from the SQLite library Python's ``sqlite3`` module is
linked to; no compiler). The VFS passes everything through and, each time SQLite syncs a file
(``xSync``: fsync/fdatasync), copies that file as it is to a *durable* folder: what the storage
holds after a power cut. The parent SIGKILLs the child at some point and "reboots":
:func:`reboot` replaces every file of the database's folder with its durable copy and removes
the files never synced (the ``-shm`` index, which SQLite never syncs and rebuilds). This is the
harshest legal outcome of a power cut, where the kernel wrote back nothing on its own; a
file's directory entry is taken as durable once the file was synced (SQLite fsyncs the folder
of its WAL; the outbox fsyncs the folder of a new database).

The child prints ``accepted <msg_id>`` after each :meth:`Outbox.put` returns ``queued`` and
``acked <msg_id>...`` after each acknowledgement (the rows a sender delivered), so what the
parent reads is at most what was accepted.
"""

from __future__ import annotations

import ctypes
import os
import shutil
import sys
import time
from pathlib import Path
from typing import Any

SQLITE_OK = 0
_PTRS = ctypes.c_void_p


class _Vfs(ctypes.Structure):
    _fields_ = [  # sqlite3_vfs, versions 1-3
        ("iVersion", ctypes.c_int),
        ("szOsFile", ctypes.c_int),
        ("mxPathname", ctypes.c_int),
        ("pNext", ctypes.c_void_p),
        ("zName", ctypes.c_char_p),
        ("pAppData", ctypes.c_void_p),
        ("xOpen", ctypes.c_void_p),
        ("rest", ctypes.c_void_p * 15),  # xDelete ... xNextSystemCall, passed through
    ]


class _IoMethods(ctypes.Structure):
    _fields_ = [  # sqlite3_io_methods, versions 1-3
        ("iVersion", ctypes.c_int),
        ("xClose", ctypes.c_void_p),
        ("xRead", ctypes.c_void_p),
        ("xWrite", ctypes.c_void_p),
        ("xTruncate", ctypes.c_void_p),
        ("xSync", ctypes.c_void_p),
        ("rest", ctypes.c_void_p * 12),  # xFileSize ... xUnfetch, passed through
    ]


_OPEN = ctypes.CFUNCTYPE(ctypes.c_int, _PTRS, _PTRS, _PTRS, ctypes.c_int, _PTRS)
_SYNC = ctypes.CFUNCTYPE(ctypes.c_int, _PTRS, ctypes.c_int)


def sqlite_library() -> ctypes.CDLL | None:
    """The SQLite library of Python's ``sqlite3`` module, if its symbols can be reached."""
    import _sqlite3

    lib = ctypes.CDLL(_sqlite3.__file__)  # dlsym also searches the libraries it links to
    try:
        lib.sqlite3_vfs_find.restype = ctypes.c_void_p
    except AttributeError:
        return None  # SQLite linked statically and hidden: the VFS cannot be registered
    return lib


class SnapshotOnSync:
    """The default VFS, except that every successful sync copies the file to ``durable``."""

    def __init__(self, lib: ctypes.CDLL, durable: Path) -> None:
        self.durable = durable
        self._paths: dict[int, Path] = {}  # sqlite3_file address -> its path
        self._methods: dict[int, Any] = {}  # original io methods address -> patched copy
        self._real_sync: dict[int, Any] = {}  # patched copy address -> original xSync
        lib.sqlite3_vfs_find.argtypes = [ctypes.c_char_p]
        lib.sqlite3_vfs_register.argtypes = [ctypes.c_void_p, ctypes.c_int]
        base_addr = lib.sqlite3_vfs_find(None)
        base = _Vfs.from_address(base_addr)
        self._base_addr = base_addr
        self._real_open = _OPEN(base.xOpen)
        self._open_cb = _OPEN(self._open)
        self._sync_cb = _SYNC(self._sync)
        self.vfs = _Vfs()
        ctypes.memmove(ctypes.addressof(self.vfs), base_addr, ctypes.sizeof(_Vfs))
        self.vfs.zName = b"powercut"
        self.vfs.pNext = None
        self.vfs.xOpen = ctypes.cast(self._open_cb, ctypes.c_void_p).value
        if lib.sqlite3_vfs_register(ctypes.addressof(self.vfs), 1) != SQLITE_OK:
            raise RuntimeError("sqlite3_vfs_register refused the power-cut VFS")

    def _open(self, vfs: int, name: int | None, file: int, flags: int, out: int | None) -> int:
        rc: int = self._real_open(self._base_addr, name, file, flags, out)
        slot = ctypes.c_void_p.from_address(file)  # sqlite3_file.pMethods
        if rc != SQLITE_OK or not slot.value or not name:
            return rc
        self._paths[file] = Path(ctypes.string_at(name).decode())
        slot.value = ctypes.addressof(self._patched(slot.value))
        return rc

    def _patched(self, original: int) -> _IoMethods:
        if original not in self._methods:
            methods = _IoMethods()
            ctypes.memmove(ctypes.addressof(methods), original, ctypes.sizeof(_IoMethods))
            self._real_sync[ctypes.addressof(methods)] = _SYNC(methods.xSync)
            methods.xSync = ctypes.cast(self._sync_cb, ctypes.c_void_p).value
            self._methods[original] = methods
        patched: _IoMethods = self._methods[original]
        return patched

    def _sync(self, file: int, flags: int) -> int:
        methods = ctypes.c_void_p.from_address(file).value
        assert methods is not None
        rc: int = self._real_sync[methods](file, flags)
        path = self._paths.get(file)
        if rc == SQLITE_OK and path is not None and path.exists():
            shutil.copyfile(path, self.durable / path.name)
        return rc


def reboot(folder: Path, durable: Path) -> dict[str, int]:
    """What the storage holds after the cut: each file as of its last sync; never synced, gone.
    Returns the bytes lost per file (what the page cache held beyond the durable copy)."""
    lost: dict[str, int] = {}
    for path in sorted(folder.iterdir()):
        kept = durable / path.name
        lost[path.name] = path.stat().st_size - (kept.stat().st_size if kept.exists() else 0)
        if kept.exists():
            shutil.copyfile(kept, path)
        else:
            path.unlink()
    return lost


def main(argv: list[str]) -> None:
    """``folder durable synchronous count``: put ``count`` results, acknowledging 20 of every
    40 as a sender would, then wait to be killed (or be killed on the way)."""
    folder, durable, synchronous, count = Path(argv[0]), Path(argv[1]), argv[2], int(argv[3])
    lib = sqlite_library()
    assert lib is not None
    vfs = SnapshotOnSync(lib, durable)
    from edgecascade.shared.mqtt import Outgoing
    from edgecascade.shared.outbox import Outbox

    box = Outbox(folder / "outbox.db", synchronous="full" if synchronous == "full" else "normal")
    for n in range(count):
        msg_id = f"m{n:05d}"
        outcome = box.put("result", Outgoing(f"t/{n}", msg_id.encode() * 60), msg_id)
        assert outcome == "queued", outcome
        _say("accepted", msg_id)
        if n % 40 == 39:
            rows = box.peek(20)
            box.ack(rows)
            _say("acked", *(row.message.payload[:6].decode() for row in rows))
    assert vfs.vfs.zName == b"powercut"  # the VFS (and its callbacks) lived until here
    _say("done")
    time.sleep(600)  # the parent cuts the power here
    os._exit(0)  # no clean shutdown: the callbacks must not outlive their objects


def _say(*words: str) -> None:
    sys.stdout.write(" ".join(words) + "\n")
    sys.stdout.flush()


if __name__ == "__main__":
    main(sys.argv[1:])
